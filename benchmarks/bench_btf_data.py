"""Time the data layer on this machine: BTF generation of every procedural material at the
default settings (128 x 128, ``medium`` directions), file sizes, and sampler throughput.

Run: .venv/bin/python benchmarks/bench_btf_data.py [--materials weave bumps ...] [--out DIR]
Prints a markdown table; long measurements live here, not in the tests.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from btf_data.btf_file import BTFFile
from btf_data.generate import GenerateConfig, MaterialConfig, generate
from btf_data.procedural import MATERIALS
from btf_data.sampler import PyramidSampler, SamplerConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--materials", nargs="*", default=sorted(MATERIALS))
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--directions", default="medium")
    p.add_argument("--out", default=None, help="keep the files here (default: a temp dir)")
    args = p.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="neumip-bench-"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print("| material | resolution | directions | images | generate (s) | file (MiB) |")
    print("|---|---|---|---|---|---|")
    files = []
    for name in args.materials:
        cfg = GenerateConfig(material=MaterialConfig(name=name), resolution=args.resolution,
                             directions=args.directions, out=str(out / f"{name}.h5"), progress=False)
        path, seconds = generate(cfg)
        with BTFFile(path) as btf:
            n_wo, n_wi, h, w = btf.shape
            size = btf.nbytes_on_disk / 2**20
        files.append(path)
        print(f"| {name} | {h} | {args.directions} | {n_wo * n_wi} | {seconds:.1f} | {size:.1f} |")
    print()
    print("| sampler mode | batch | batches/s | queries/s |")
    print("|---|---|---|---|")
    with BTFFile(files[0]) as btf:
        for mode, budget in (("in memory", 4096), ("streamed, 16 images/step", 0)):
            s = PyramidSampler(btf, SamplerConfig(batch_size=2**16, memory_budget_mib=budget))
            s.sample()
            t0 = time.perf_counter()
            n = 10
            for _ in range(n):
                s.sample()
            dt = (time.perf_counter() - t0) / n
            print(f"| {mode} | 65536 | {1 / dt:.1f} | {2**16 / dt:,.0f} |")


if __name__ == "__main__":
    main()
