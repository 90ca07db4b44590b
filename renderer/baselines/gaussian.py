"""``gaussian``: the maps low-passed with the ground truth's Gaussian, then treated as naive.

Level k is each map convolved (with wrap-around) with the Gaussian of ``pyramid=gaussian``
(sigma_k = sigma_scale * 2^k level-0 texels, truncated at 3 sigma) and sampled at the level-k
texel centres; normals are renormalised. A smoother filter than the box, with the same flaw as
``naive``: averaged normals and roughness lose the shine's spread.
"""

from __future__ import annotations

import torch

from btf_data.brdf import isotropic_tensor
from btf_data.pyramid import gaussian_matrix, level_count
from btf_data.svbrdf import SVBRDFMaps
from renderer.baselines.pyramid import SVBRDFPyramid, level0_fields, normalize, pyramid_from_levels


def gaussian_pyramid(maps: SVBRDFMaps, sigma_scale: float = 0.5) -> SVBRDFPyramid:
    level0 = level0_fields(maps)
    r = maps.resolution[0]
    n = level_count(r, r)
    stack = torch.cat([torch.as_tensor(level0[f], dtype=torch.float64)
                       for f in ("albedo", "normal", "metallic", "specular")]
                      + [torch.as_tensor(maps.roughness, dtype=torch.float64)[..., None]], dim=-1)
    levels = [{f: torch.as_tensor(v) for f, v in level0.items()}]
    for k in range(1, n):
        m = gaussian_matrix(r, k, sigma_scale)
        low = torch.einsum("ih,hwc,jw->ijc", m, stack, m).float()
        levels.append({
            "albedo": low[..., 0:3],
            "normal": normalize(low[..., 3:6]),
            "metallic": low[..., 6:7],
            "specular": low[..., 7:8],
            "tensor": isotropic_tensor(low[..., 8].clamp_min(1e-3)),
        })
    return pyramid_from_levels(levels, "gaussian")
