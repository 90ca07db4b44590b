"""A newcomer's first read: make every procedural material, render two telling (wo, wi) pairs of
its BTF straight from the SVBRDF maps, and put them side by side with their box-filtered
level 3 — the appearance a mipmap must reproduce.

Run from anywhere (a few seconds on 2 cores):

    .venv/bin/python examples/material_gallery.py [out.png] [exposure]

It writes outputs/gallery/materials.png under the current folder unless told otherwise; rows are
materials, columns (view, light) pairs at level 0 and level 3, all labelled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from btf_data.btf_render import render_btf
from btf_data.directions import spherical_to_cartesian
from btf_data.procedural import MATERIALS, procedural_maps
from btf_data.pyramid import filtered_pyramid
from plumbing.figures import image_grid
from plumbing.tonemap import to_uint8

RESOLUTION = 128
LEVEL = 3


def main(out: str = "outputs/gallery/materials.png", exposure: str = "1.0") -> None:
    gain = float(exposure)
    views = {"view 0": np.array([[0.0, 0.0, 1.0]]),
             "view 30": spherical_to_cartesian(np.array([np.radians(30.0)]), np.array([np.radians(90.0)]))}
    lights = spherical_to_cartesian(np.radians([20.0, 70.0]), np.radians([45.0, 0.0]))
    light_names = ("light 20", "light 70 (grazing)")
    cells, rows, cols = [], [], []
    for name, (_, displaced) in MATERIALS.items():
        maps = procedural_maps(name, RESOLUTION)
        row = []
        for view_name, wo in views.items():
            (_, imgs), = list(render_btf(maps, wo, lights))
            for light_name, img in zip(light_names, imgs, strict=True):
                coarse = filtered_pyramid(img, "box")[LEVEL - 1]
                coarse = np.repeat(np.repeat(coarse, 2**LEVEL, 0), 2**LEVEL, 1)
                row += [to_uint8(img * gain), to_uint8(coarse * gain)]
                if len(cells) == 0:
                    pair = f"{view_name}, {light_name}"
                    cols += [f"{pair}\nlevel 0", f"{pair}\nlevel {LEVEL}"]
        cells.append(row)
        rows.append(f"{name}\n({'displaced' if displaced else 'normal-mapped'})")
        print(f"{name}: {'displaced' if displaced else 'normal-mapped'}")
    path = image_grid(cells, Path(out), row_labels=rows, col_labels=cols, panel_inches=1.5,
                      title=f"procedural materials, {RESOLUTION}x{RESOLUTION}, angles in degrees"
                      + (f", exposure x{gain:g}" if gain != 1 else ""))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
