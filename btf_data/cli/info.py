"""``btf-info FILE [--check] [--preview sheet.png]``: a human summary of a BTF file, and
optionally a preview sheet of a few images across pyramid levels."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from btf_data.btf_file import BTFFile
from plumbing.atomic import check_output_file
from plumbing.figures import image_grid
from plumbing.tonemap import to_uint8
from plumbing.user_errors import user_errors


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


def _json_value(v: Any) -> Any:
    """An HDF5 attribute as JSON: numpy scalars unwrapped, NaN as null, JSON strings parsed."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def summary_json(btf: BTFFile) -> dict[str, Any]:
    """What ``btf-info --json`` prints: valid JSON only (no NaN), the config as an object."""
    n_wo, n_wi, h, w = btf.shape
    out = {
        "file": str(btf.path),
        "attributes": {k: _json_value(v) for k, v in btf.attrs.items()},
        "resolution": [h, w],
        "n_wo": n_wo,
        "n_wi": n_wi,
        "training_pairs": int((btf.split == 0).sum()),
        "held_out_pairs": int((btf.split == 1).sum()),
        "levels": btf.n_levels,
        "level_resolutions": [list(btf.resolution(k)) for k in range(btf.n_levels)],
        "has_pyramid": btf.has_pyramid,
        "svbrdf_maps": btf.svbrdf_names,
        "bytes_on_disk": btf.nbytes_on_disk,
    }
    if btf.value_stats is not None:
        out["values_measured"] = dict(zip(("min", "max", "mean"), btf.value_stats, strict=True))
    if btf.full_check:
        out["check"] = "passed"
    return out


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


def _angles(d: np.ndarray) -> str:
    theta = np.degrees(np.arccos(np.clip(d[2], -1, 1)))
    phi = np.degrees(np.arctan2(d[1], d[0])) % 360
    return f"theta {theta:.0f}, phi {phi:.0f}"


def write_preview(btf: BTFFile, out: str | Path, max_levels: int = 6, exposure: float = 1.0) -> Path:
    """A labelled PNG sheet: one row per preview pair (view and light angles), one column per
    level (its resolution), each level shown at level-0 size; values times ``exposure`` before
    tone mapping."""
    n_lv = min(btf.n_levels if btf.has_pyramid else 1, max_levels)
    cells, rows = [], []
    for i_wo, i_wi in preview_pairs(btf):
        row = []
        for k in range(n_lv):
            img = btf.image(i_wo, i_wi, k) * exposure
            row.append(to_uint8(np.repeat(np.repeat(img, 2**k, axis=0), 2**k, axis=1)))
        cells.append(row)
        rows.append(f"view {_angles(btf.wo_dirs[i_wo])}\nlight {_angles(btf.wi_dirs[i_wi])}")
    cols = [f"level {k} ({btf.resolution(k)[0]}x{btf.resolution(k)[1]})" for k in range(n_lv)]
    title = f"{btf.name}: {btf.filter} pyramid" + (f", exposure x{exposure:g}" if exposure != 1 else "")
    return image_grid(cells, out, row_labels=rows, col_labels=cols, title=title, panel_inches=1.7)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="btf-info", description=__doc__)
    p.add_argument("file")
    p.add_argument("--check", action="store_true", help="check everything: every value of level 0 and of "
                   "the pyramid (finite, non-negative) and every image's pyramid against its filter")
    p.add_argument("--preview", metavar="PNG", help="write a preview sheet (rows: view/light "
                   "pairs, columns: levels 0..5)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON only (valid JSON: no NaN)")
    p.add_argument("--exposure", type=float, default=1.0, help="preview: multiply values by this "
                   "before tone mapping (default 1)")
    args = p.parse_args(argv)
    with user_errors("btf-info"):
        if args.preview:
            check_output_file(args.preview)
        with BTFFile(args.file, full_check=args.check) as btf:
            if args.json:
                print(json.dumps(summary_json(btf), indent=2, allow_nan=False))
            else:
                print(describe(btf))
                if args.check:
                    print(f"check       passed: every value finite and >= 0 in level 0 and the pyramid, "
                          f"the pyramid matches the {btf.filter} filter on all {btf.split.size} images")
            if args.preview:
                path = write_preview(btf, args.preview, exposure=args.exposure)
                print(f"preview     {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
