"""``btf-pyramid FILE [--filter box|gaussian] [--sigma-scale S]``: (re)compute the filtered
ground-truth pyramid of an existing BTF file, atomically: the options are checked first, the new
pyramid is checked finite before the new file replaces the old, and on any refusal the file is
left as it was."""

from __future__ import annotations

import argparse
import sys

from btf_data.btf_file import BTFFile, rewrite_pyramid
from btf_data.pyramid import check_sigma_scale
from plumbing.user_errors import user_errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="btf-pyramid", description=__doc__)
    p.add_argument("file")
    p.add_argument("--filter", choices=("box", "gaussian"), default="box")
    p.add_argument("--sigma-scale", type=float, default=0.5,
                   help="gaussian: sigma_k = S * 2^k level-0 texels (default 0.5)")
    args = p.parse_args(argv)
    with user_errors("btf-pyramid"):
        check_sigma_scale(args.sigma_scale, "--sigma-scale")
        try:
            rewrite_pyramid(args.file, args.filter, args.sigma_scale)  # filtered_pyramid checks it
        except ValueError as e:
            if args.file in str(e):
                raise
            raise ValueError(f"{args.file}: {e}; the file is unchanged") from None
        with BTFFile(args.file) as btf:
            print(f"{args.file}: levels {btf.n_levels} (level 0 and {btf.n_levels - 1} filtered), "
                  f"filter {btf.filter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
