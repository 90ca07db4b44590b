"""A newcomer's first read: make every procedural material, render two telling (wo, wi) pairs of
its BTF straight from the SVBRDF maps, and put them side by side with their box-filtered
level 3 — the appearance a mipmap must reproduce.

Run: .venv/bin/python examples/material_gallery.py [out.png]
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

from btf_data.btf_render import render_btf
from btf_data.directions import spherical_to_cartesian
from btf_data.procedural import MATERIALS, procedural_maps
from btf_data.pyramid import filtered_pyramid
from btf_data.tonemap import to_uint8

RESOLUTION = 128
LEVEL = 3


def main(out: str = "docs/materials.png") -> None:
    head_on = np.array([[0.0, 0.0, 1.0]])
    view = spherical_to_cartesian(np.array([np.radians(30.0)]), np.array([np.radians(90.0)]))
    lights = spherical_to_cartesian(np.radians([20.0, 70.0]), np.radians([45.0, 0.0]))
    rows = []
    for name in MATERIALS:
        maps = procedural_maps(name, RESOLUTION)
        tiles = []
        for wo in (head_on, view):
            (_, imgs), = list(render_btf(maps, wo, lights))
            for img in imgs:  # two lights: high, grazing
                coarse = filtered_pyramid(img, "box")[LEVEL - 1]
                coarse = np.repeat(np.repeat(coarse, 2**LEVEL, 0), 2**LEVEL, 1)
                tiles += [to_uint8(img), to_uint8(coarse)]
        gap = np.full((RESOLUTION, 3, 3), 255, np.uint8)
        rows.append(np.concatenate(sum(([t, gap] for t in tiles), [])[:-1], axis=1))
        print(f"{name}: {'displaced' if maps.displaced else 'normal-mapped'}")
    sheet = np.concatenate(sum(([r, np.full((3, r.shape[1], 3), 255, np.uint8)] for r in rows), [])[:-1])
    Image.fromarray(sheet).save(out)
    print(f"wrote {out}: rows = materials, columns = (view, light) pairs at level 0 and level {LEVEL}")


if __name__ == "__main__":
    main(*sys.argv[1:])
