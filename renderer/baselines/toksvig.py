"""``toksvig``: roughness widened by the shortening of the averaged normal (Toksvig 2005).

The mean of unit normals over a block has length r <= 1; the shorter it is, the more the normals
spread. Toksvig's factor, carried to GGX through the Beckmann moment match, gives
alpha'^2 = alpha^2 + 2 (1 - r) / r, with alpha the box-averaged alpha. Isotropic: it widens the
lobe by the right amount but in every direction, where the normals of an anisotropic bump pattern
spread along one axis only.
"""

from __future__ import annotations

import torch

from btf_data.brdf import isotropic_tensor
from btf_data.pyramid import level_count
from btf_data.svbrdf import SVBRDFMaps
from renderer.baselines.naive import box_alpha_levels
from renderer.baselines.pyramid import (
    SVBRDFPyramid,
    box_levels,
    box_reduce,
    level0_fields,
    pyramid_from_levels,
)


def toksvig_alpha(alpha: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Widened GGX alpha (...,) from the averaged alpha and the mean normal's length r in (0, 1]."""
    r = r.clamp(1e-4, 1.0)
    return torch.sqrt(alpha * alpha + 2.0 * (1.0 - r) / r)


def toksvig_pyramid(maps: SVBRDFMaps) -> SVBRDFPyramid:
    level0 = level0_fields(maps)
    n = level_count(*maps.resolution)
    levels = box_levels(level0, n)
    mean_normal = torch.as_tensor(level0["normal"])
    for k, (lv, alpha) in enumerate(zip(levels, box_alpha_levels(maps, n), strict=True)):
        if k > 0:
            mean_normal = box_reduce(mean_normal)
        lv["tensor"] = isotropic_tensor(toksvig_alpha(alpha, mean_normal.norm(dim=-1)))
    return pyramid_from_levels(levels, "toksvig")
