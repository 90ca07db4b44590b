"""``btf-info FILE [--check] [--preview sheet.png]``: a human summary of a BTF file, and
optionally a preview sheet of a few images across pyramid levels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from btf_data.atomic import atomic_path, check_output_file
from btf_data.btf_file import BTFFile
from btf_data.cli.user_errors import user_errors
from btf_data.tonemap import to_uint8


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _theta_range(d: np.ndarray) -> str:
    t = np.degrees(np.arccos(np.clip(d[:, 2], -1, 1)))
    return f"theta {t.min():.1f}..{t.max():.1f} deg"


def describe(btf: BTFFile) -> str:
    """A multi-line summary: material, resolution, directions, split, levels, size, values."""
    n_wo, n_wi, h, w = btf.shape
    a = btf.attrs
    rad = btf.level(0)
    maps = ", ".join(btf.svbrdf_names) or "none (measured)"
    levels = " ".join(f"{btf.resolution(k)[0]}x{btf.resolution(k)[1]}" for k in range(btf.n_levels))
    if not btf.has_pyramid:
        levels += " (no pyramid stored: run btf-pyramid)"
    uncompressed = rad.size * rad.dtype.itemsize * (4 / 3 if btf.has_pyramid else 1)
    texel = a.get("texel_size_mm", float("nan"))
    lines = [
        f"file        {btf.path}",
        f"material    {btf.name}  (source: {a.get('source', '?')}, format v{a.get('format_version')})",
        f"resolution  {h} x {w} texels" + ("" if np.isnan(texel) else f", {texel:.4f} mm/texel"),
        f"directions  {n_wo} views ({_theta_range(btf.wo_dirs)}) x {n_wi} lights "
        f"({_theta_range(btf.wi_dirs)}) = {n_wo * n_wi} images",
        f"split       {int((btf.split == 0).sum())} training pairs, "
        f"{int((btf.split == 1).sum())} held-out",
        f"levels      {btf.n_levels}: {levels}; filter {btf.filter}"
        + (f" (sigma_k = {btf.sigma_scale} * 2^k texels)" if btf.filter == "gaussian" else ""),
        f"storage     {rad.dtype}, {rad.compression or 'uncompressed'}; "
        f"{_size(btf.nbytes_on_disk)} on disk ({_size(uncompressed)} uncompressed)",
        values_line(btf),
        f"svbrdf      {maps}",
    ]
    return "\n".join(lines)


def values_line(btf: BTFFile) -> str:
    """The radiance's min / max / mean: measured when the open read every value (small files,
    ``--check``), else the statistics the writer stored, labelled as such."""
    if btf.value_stats is not None:
        lo, hi, mean = btf.value_stats
        source = "measured over every value"
    else:
        a = btf.attrs
        lo, hi, mean = (float(a.get(k, float("nan"))) for k in ("value_min", "value_max", "value_mean"))
        source = "as stored by the writer; --check measures them"
    return f"values      min {lo:.4g}, max {hi:.4g}, mean {mean:.4g} ({source})"


def preview_pairs(btf: BTFFile, count: int = 4) -> list[tuple[int, int]]:
    """A few telling (wo, wi) pairs: head-on, grazing light, grazing view, both grazing."""
    tw = btf.wo_dirs[:, 2]
    ti = btf.wi_dirs[:, 2]
    head_o, graze_o = int(np.argmax(tw)), int(np.argmin(tw))
    head_i, graze_i = int(np.argmax(ti)), int(np.argmin(ti))
    pairs = [(head_o, head_i), (head_o, graze_i), (graze_o, head_i), (graze_o, graze_i)]
    return list(dict.fromkeys(pairs))[:count]


def write_preview(btf: BTFFile, out: str | Path, max_levels: int = 6) -> Path:
    """A PNG sheet: one row per preview pair, one column per level (upsampled, nearest)."""
    from PIL import Image

    h, w = btf.resolution(0)
    n_lv = min(btf.n_levels if btf.has_pyramid else 1, max_levels)
    rows = []
    for i_wo, i_wi in preview_pairs(btf):
        tiles = []
        for k in range(n_lv):
            img = btf.image(i_wo, i_wi, k)
            img = np.repeat(np.repeat(img, 2**k, axis=0), 2**k, axis=1)
            tiles.append(to_uint8(img))
            tiles.append(np.full((h, 2, 3), 255, np.uint8))
        rows.append(np.concatenate(tiles, axis=1))
        rows.append(np.full((2, rows[-1].shape[1], 3), 255, np.uint8))
    sheet = np.concatenate(rows, axis=0)
    out = Path(out)
    with atomic_path(out) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="btf-info", description=__doc__)
    p.add_argument("file")
    p.add_argument("--check", action="store_true", help="check everything: every value of level 0 and of "
                   "the pyramid (finite, non-negative) and every image's pyramid against its filter")
    p.add_argument("--preview", metavar="PNG", help="write a preview sheet (rows: view/light "
                   "pairs, columns: levels 0..5)")
    p.add_argument("--json", action="store_true", help="print the attributes as JSON too")
    args = p.parse_args(argv)
    with user_errors("btf-info"):
        if args.preview:
            check_output_file(args.preview)
        with BTFFile(args.file, full_check=args.check) as btf:
            print(describe(btf))
            if args.json:
                attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in btf.attrs.items()}
                print(json.dumps(attrs, indent=2, default=str))
            if args.preview:
                print(f"preview     {write_preview(btf, args.preview)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
