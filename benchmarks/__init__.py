"""The top floor of the house: measurements of everything below (plumbing -> btf_data -> neumip ->
renderer -> benchmarks; nothing imports this package). ``benchmarks.suite`` is ``neumip-bench``,
the evaluation suite that writes docs/RESULTS.md; the ``bench_*.py`` scripts beside it are
diagnostics run by hand (``python benchmarks/bench_speed.py CKPT DATA``)."""
