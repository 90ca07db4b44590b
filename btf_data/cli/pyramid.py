"""``btf-pyramid FILE [--filter box|gaussian] [--sigma-scale S]``: (re)compute the filtered
ground-truth pyramid of an existing BTF file, atomically."""

from __future__ import annotations

import argparse
import sys

from btf_data.btf_file import BTFFile, rewrite_pyramid
from plumbing.user_errors import user_errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="btf-pyramid", description=__doc__)
    p.add_argument("file")
    p.add_argument("--filter", choices=("box", "gaussian"), default="box")
    p.add_argument("--sigma-scale", type=float, default=0.5,
                   help="gaussian: sigma_k = S * 2^k level-0 texels (default 0.5)")
    args = p.parse_args(argv)
    with user_errors("btf-pyramid"):
        rewrite_pyramid(args.file, args.filter, args.sigma_scale)
        with BTFFile(args.file) as btf:
            print(f"{args.file}: levels {btf.n_levels} (level 0 and {btf.n_levels - 1} filtered), "
                  f"filter {btf.filter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
