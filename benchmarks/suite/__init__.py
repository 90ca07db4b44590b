"""The evaluation suite (``neumip-bench``): every table and plot of the project's results from
one command. It sits at the top of the house: it uses the data, the model,
the baselines and the renderer, and nothing imports it.

Work is split into cells (one material x method quality score, one material's rendered
comparison, the speed measurements); each finished cell's result is kept under
``outputs/bench/cells`` keyed by everything that determines it, so a rerun or a second
invocation reuses it, and a cell that fails is recorded as failed while the rest goes on.
"""
