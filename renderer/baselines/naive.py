"""``naive``: the classic mipmap of an SVBRDF, each map box-averaged on its own.

Normals are averaged and renormalised, the GGX alpha and the albedo averaged. It loses the spread
of the normals inside a texel, so coarse levels shine too narrowly: the floor every other method
is measured from.
"""

from __future__ import annotations

import torch

from btf_data.brdf import isotropic_tensor
from btf_data.pyramid import level_count
from btf_data.svbrdf import SVBRDFMaps
from renderer.baselines.pyramid import (
    SVBRDFPyramid,
    box_levels,
    box_reduce,
    level0_fields,
    pyramid_from_levels,
)


def box_alpha_levels(maps: SVBRDFMaps, n_levels: int) -> list[torch.Tensor]:
    """The GGX alpha (R_k, R_k) box-averaged per level (level 0: the map)."""
    cur = torch.as_tensor(maps.roughness, dtype=torch.float32)[..., None]
    out = [cur[..., 0]]
    for _ in range(1, n_levels):
        cur = box_reduce(cur)
        out.append(cur[..., 0])
    return out


def naive_pyramid(maps: SVBRDFMaps) -> SVBRDFPyramid:
    level0 = level0_fields(maps)
    n = level_count(*maps.resolution)
    levels = box_levels(level0, n)
    for lv, alpha in zip(levels, box_alpha_levels(maps, n), strict=True):
        lv["tensor"] = isotropic_tensor(alpha)
    return pyramid_from_levels(levels, "naive")
