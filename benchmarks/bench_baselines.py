"""Held-out PSNR per level of every SVBRDF mipmapping method on every procedural material.

For each named material (both families) the BTF file is made if missing (outputs/data/<name>.h5,
the ``btf-generate`` defaults: 128^2, medium directions, 2x2 jittered samples per texel, box
pyramid); each method's pyramid is built from the file's SVBRDF maps and scored by the same code
as ``neumip-eval`` (tone-mapped PSNR on the held-out pairs against level 0 and ``pyramid/<k>``).
Writes a markdown table, JSON and a labelled plot. Run alone: it uses both cores.

    .venv/bin/python benchmarks/bench_baselines.py [--materials leather bumps_flat] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from btf_data.btf_file import BTFFile
from btf_data.generate import GenerateConfig, MaterialConfig, generate
from btf_data.procedural import MATERIALS
from neumip.evaluate import evaluate_query
from renderer.baselines import METHODS, BaselineConfig, SVBRDFPyramidMaterial, build_pyramid


def ensure_file(name: str, data_dir: Path) -> Path:
    path = data_dir / f"{name}.h5"
    if not path.exists():
        generate(GenerateConfig(material=MaterialConfig(name=name), out=str(path), progress=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--materials", nargs="*", default=list(MATERIALS))
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--levels", type=int, default=6)
    ap.add_argument("--data-dir", default="outputs/data")
    ap.add_argument("--out", default="outputs/bench_baselines")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    cfg = BaselineConfig()
    cfg.fit.progress = False
    for name in args.materials:
        path = ensure_file(name, Path(args.data_dir))
        with BTFFile(path) as btf:
            maps = btf.svbrdf()
            family = "displaced" if maps.displaced else "normal-mapped"
            results[name] = {"family": family, "methods": {}}
            for method in args.methods:
                pyramid = build_pyramid(method, maps, cfg)
                material = SVBRDFPyramidMaterial(pyramid)
                t0 = time.perf_counter()
                scores = evaluate_query(material.eval, btf, args.levels, "held_out")
                results[name]["methods"][method] = {
                    "psnr": [s.psnr for s in scores], "build_s": pyramid.build_seconds,
                    "eval_s": time.perf_counter() - t0}
                print(f"{name:16s} {method:9s} build {pyramid.build_seconds:6.1f} s  "
                      + " ".join(f"{s.psnr:6.2f}" for s in scores), flush=True)
    (out / "baselines.json").write_text(json.dumps(results, indent=2))
    lines = [f"Held-out PSNR (dB, tone-mapped) per level, {torch.get_num_threads()} threads", ""]
    for name, r in results.items():
        header = " | ".join(f"L{k}" for k in range(args.levels))
        lines += [f"#### {name} ({r['family']})", "",
                  f"| method | {header} | mean 1-5 | build (s) |",
                  "|---|" + "---|" * (args.levels + 2)]
        for method, m in r["methods"].items():
            coarse = m["psnr"][1:6]
            lines.append(f"| {method} | " + " | ".join(f"{p:.2f}" for p in m["psnr"])
                         + f" | {sum(coarse) / len(coarse):.2f} | {m['build_s']:.1f} |")
        lines.append("")
    (out / "baselines.md").write_text("\n".join(lines))
    plot(results, out / "baselines.png", args.levels)
    print(f"wrote {out / 'baselines.md'}, {out / 'baselines.json'}, {out / 'baselines.png'}")
    print("\n".join(lines))


def plot(results: dict, path: Path, levels: int) -> None:
    """One panel per material, PSNR per level 1.. per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), dpi=110, squeeze=False)
    for ax, (name, r) in zip(axes.flat, results.items(), strict=False):
        for method, m in r["methods"].items():  # level 0 is the maps for every method
            ax.plot(range(1, levels), m["psnr"][1:levels], "o-", ms=3, label=method)
        ax.set_title(f"{name} ({r['family']})", fontsize=9)
        ax.set_xlabel("level")
        ax.set_ylabel("held-out PSNR (dB)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("SVBRDF mipmaps: held-out PSNR per level (level 0, the maps, is the same for all)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
