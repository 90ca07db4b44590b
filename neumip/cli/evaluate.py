"""``neumip-eval CHECKPOINT [--data FILE] [--levels 6] [--subset held_out] [--out DIR]``:
per-level PSNR of a trained material on the held-out direction pairs (overall, times cos theta_i
as rendered, and per light elevation); writes eval.md, eval.json and eval_psnr.png next to the
checkpoint, or in --out (e.g. a model trained on random directions scored on the grid file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from btf_data.btf_file import BTFFile
from neumip.checkpoint import training_data_path
from neumip.evaluate import evaluate_levels, scores_markdown, write_report
from neumip.model import NeuMIP
from plumbing.atomic import check_output_dir
from plumbing.resources import check_device
from plumbing.user_errors import user_errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neumip-eval", description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--data", help="BTF file (default: the one the checkpoint was trained on)")
    p.add_argument("--levels", type=int, default=6)
    p.add_argument("--subset", default="held_out", choices=("held_out", "train", "all"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "tcnn"))
    p.add_argument("--out", help="folder of the report (default: the checkpoint's)")
    args = p.parse_args(argv)
    with user_errors("neumip-eval"):
        if args.levels < 1:
            raise ValueError(f"--levels={args.levels}: must be >= 1 (levels 0..N-1 are scored)")
        check_device(args.device, "--device")
        model = NeuMIP.load(args.checkpoint, args.device, args.backend)
        out = Path(args.out) if args.out else Path(args.checkpoint).parent
        check_output_dir(out)
        data = args.data or training_data_path(args.checkpoint, model.metadata, "--data FILE")
        with BTFFile(data) as btf:
            scores = evaluate_levels(model, btf, args.levels, args.subset, args.device)
            title = f"{btf.name} ({Path(data).name}): {Path(args.checkpoint).name}, {args.subset} pairs"
        paths = write_report(scores, out, title)
    print(scores_markdown(scores, title))
    print(f"report      {paths['md']}, {paths['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
