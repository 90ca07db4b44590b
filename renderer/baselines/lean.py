"""``lean``: LEAN mapping (Olano & Baker 2010) in the project's GGX.

Every level-0 texel becomes its first and second slope moments, B = (n_x / n_z, n_y / n_z) and
M = (B_x^2, B_y^2, B_x B_y) + T / 2, the base roughness folded in as its slope variance (T the
GGX tensor, sigma^2 = alpha^2 / 2 by the moment match of Kaplanyan et al. 2016). Moments are
linear, so each level is their box average; the covariance M - B B^T, times 2, is the level's
GGX tensor and B gives its mean normal (``renderer.baselines.pyramid``). The result is
anisotropic where the normals spread along one axis.

Because the project shades the filtered tensor with its own anisotropic Smith masking, this is
also what LEADR (Dupuy et al. 2013) adds to LEAN for normal maps: the masking of the filtered
distribution comes with the tensor. LEADR's displacement part has no counterpart here (the
SVBRDF methods shade planes).
"""

from __future__ import annotations

import torch

from btf_data.pyramid import level_count
from btf_data.svbrdf import SVBRDFMaps
from renderer.baselines.pyramid import (
    SVBRDFPyramid,
    box_levels,
    box_reduce,
    from_moments,
    level0_fields,
    pyramid_from_levels,
    to_moments,
)


def lean_levels(maps: SVBRDFMaps) -> list[dict[str, torch.Tensor]]:
    """The LEAN pyramid as per-level tensors {field: (R_k, R_k, C)} (the ``fit`` method's start)."""
    level0 = level0_fields(maps)
    n = level_count(*maps.resolution)
    levels = box_levels(level0, n)
    moments = to_moments(torch.as_tensor(level0["normal"]), torch.as_tensor(level0["tensor"]))
    for k in range(1, n):
        moments = box_reduce(moments)
        levels[k]["normal"], levels[k]["tensor"] = from_moments(moments)
    return levels


def lean_pyramid(maps: SVBRDFMaps) -> SVBRDFPyramid:
    return pyramid_from_levels(lean_levels(maps), "lean")
