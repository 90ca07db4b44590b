"""NeuMIP quality on the displaced materials: the faithful model (model=full) beside the variant
(model=plus), two seeds each, the `cpu` preset on 2 cores; held-out tone-mapped PSNR per level,
mean of the seeds, and the grazing-light band. Resumable: a finished run (its eval.json) is read
back, an interrupted one continues from its checkpoint. Run alone (one torch job on the cores).

    .venv/bin/python benchmarks/bench_quality.py [--materials weave bumps ...] [--models full plus]
        [--seeds 0 1] [--dirs grid] [--out outputs/quality] [--steps-plus 12000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DISPLACED = ("weave", "bumps", "tiles", "scratched_metal")  # procedural.MATERIALS with displaced=True
GRAZING = "light 60-90 deg"


def run_dir(out: Path, material: str, model: str, seed: int, dirs: str) -> Path:
    return out / f"{material}_{dirs}" / model / f"seed{seed}"


def train(out_dir: Path, material: str, model: str, seed: int, dirs: str, steps: int | None) -> dict:
    """Train one cell (or resume it) and return its eval.json rows and training time."""
    ckpt = out_dir / "checkpoints"
    if not (ckpt / "eval.json").exists():
        cmd = [str(Path(sys.executable).parent / "neumip-train"), f"data={material}", f"model={model}",
               f"dirs={dirs}", "preset=cpu", f"seed={seed}", f"out_dir={out_dir}", "logger.mode=disabled",
               "progress=false"]
        if steps:
            cmd.append(f"schedule.steps={steps}")
        if (ckpt / "last.safetensors").exists():
            cmd.append("resume=true")
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)
    rows = json.loads((ckpt / "eval.json").read_text())
    timing = json.loads((ckpt / "train_time.json").read_text())
    return {"rows": rows, "minutes": timing["seconds"] / 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--materials", nargs="+", default=list(DISPLACED))
    p.add_argument("--models", nargs="+", default=["full", "plus"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--dirs", default="grid", choices=("grid", "random"))
    p.add_argument("--out", default="outputs/quality")
    p.add_argument("--steps-plus", type=int, default=None, help="steps for model=plus (default: preset's)")
    args = p.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()
    lines = [f"# NeuMIP quality, `cpu` preset, dirs={args.dirs}, seeds {args.seeds} (mean)", "",
             "| material | model | L0 | L1 | L2 | L3 | L4 | L5 | min | L0 grazing light | L0 x cos | "
             "seed spread L0 / L5 | train min |", "|---" * 13 + "|"]
    results = {}
    for material in args.materials:
        for model in args.models:
            steps = args.steps_plus if model == "plus" else None
            cells = [train(run_dir(out, material, model, s, args.dirs), material, model, s, args.dirs, steps)
                     for s in args.seeds]
            psnr = np.array([[r["psnr"] for r in c["rows"]] for c in cells])  # (seeds, levels)
            mse = np.array([[r["mse_tonemapped"] for r in c["rows"]] for c in cells]).mean(0)
            mean = 10 * np.log10(1.0 / mse)  # PSNR of the seeds' mean MSE
            grazing = np.mean([c["rows"][0]["psnr_by_light"][GRAZING] for c in cells])
            cos = np.mean([c["rows"][0]["psnr_cos"] for c in cells])
            spread = psnr.max(0) - psnr.min(0)
            minutes = np.mean([c["minutes"] for c in cells])
            results[f"{material}/{model}"] = {"psnr_per_seed": psnr.tolist(), "psnr_mean": mean.tolist(),
                                              "grazing_l0": grazing, "cos_l0": cos, "minutes": minutes}
            lines.append(f"| {material} | {model} | " + " | ".join(f"{v:.2f}" for v in mean) +
                         f" | {mean.min():.2f} | {grazing:.2f} | {cos:.2f} | {spread[0]:.2f} / "
                         f"{spread[-1]:.2f} | {minutes:.1f} |")
            print(lines[-1], flush=True)
    lines += ["", f"({(time.perf_counter() - t0) / 60:.1f} min for this invocation, finished cells reused)"]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"quality_{args.dirs}.md").write_text("\n".join(lines) + "\n")
    (out / f"quality_{args.dirs}.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
