"""Two of the project's commands at once, default settings: ``btf-generate`` of a displaced 128^2
material beside a short ``neumip-train``, each timed alone and together, ``--runs`` times. Bar
(issue 22): together each at most 2.5x its lone time. Run it on an otherwise idle machine; it
starts its own commands (nothing else of the project may run meanwhile).

    .venv/bin/python benchmarks/bench_side_by_side.py [--runs 3] [--steps 600] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def commands(out: Path, steps: int, data: Path) -> dict[str, list[str]]:
    """The two commands, with the project's defaults except where files go and how long."""
    py = sys.executable
    return {
        "btf-generate": [py, "-m", "btf_data.cli.generate", "material=bumps", "resolution=128",
                         f"out={out / 'generated.h5'}", "progress=false"],
        "neumip-train": [py, "-m", "neumip.cli.train", "data=file", f"data.path={data}", "data.name=bumps",
                         f"schedule.steps={steps}", "logger.mode=disabled", "logger.eval_every=0",
                         f"out_dir={out / 'train'}", "overwrite=true", "progress=false", "ckpt_every=0"],
    }


def timed(cmds: dict[str, list[str]]) -> dict[str, float]:
    """Start every command at once; seconds each took."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the defaults, as a user's
    t0 = time.perf_counter()
    procs = {name: subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True) for name, cmd in cmds.items()}
    out = {}
    pending = dict(procs)
    while pending:
        for name, p in list(pending.items()):
            if p.poll() is not None:
                out[name] = time.perf_counter() - t0
                if p.returncode:
                    raise RuntimeError(f"{name} failed: {p.stderr.read()[-2000:] if p.stderr else ''}")
                del pending[name]
        time.sleep(0.05)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="side_by_side_"))
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.h5"
    if not data.exists():
        subprocess.run([sys.executable, "-m", "btf_data.cli.generate", "material=bumps", "resolution=128",
                        f"out={data}", "progress=false"], check=True, stdout=subprocess.DEVNULL)
    cmds = commands(out, args.steps, data)
    alone: dict[str, list[float]] = {n: [] for n in cmds}
    together: dict[str, list[float]] = {n: [] for n in cmds}
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            alone[name] += [timed({name: cmd})[name]]
        for name, t in timed(cmds).items():
            together[name] += [t]
    print(f"{'command':14s} {'alone (s)':>22s} {'together (s)':>22s} {'slowdown':>9s}  (bar: <= 2.5x)")
    for name in cmds:
        a, b = statistics.median(alone[name]), statistics.median(together[name])
        spread = lambda xs: f"{min(xs):.1f}-{max(xs):.1f}"  # noqa: E731
        print(f"{name:14s} {a:8.1f} ({spread(alone[name]):>11s}) {b:8.1f} ({spread(together[name]):>11s}) "
              f"{b / a:8.2f}x")


if __name__ == "__main__":
    main()
