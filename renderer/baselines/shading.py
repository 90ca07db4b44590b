"""Shading of SVBRDF parameters and the reference appearance every method is measured against.

Shading is ``btf_data.btf_render.shade_params`` (``shade`` itself, as it shades a normal-mapped
plane, visibility 1): the BTF value f(wi_local, wo_local) cos(n, wi) / cos(theta_i) in the frame
of the shading normal. So a baseline's level 0 and a normal-mapped plane's BTF are the same numbers.

The reference appearance of level k, for any (wi, wo): the level-0 maps shaded per texel and
box-averaged over each 2^k x 2^k block. For a normal-mapped plane rendered at texel centres this
is the BTF file's box pyramid (``pyramid/<k>``) exactly.
"""

from __future__ import annotations

import math

import torch

from btf_data.btf_render import shade_params
from renderer.baselines.pyramid import box_reduce


def shade_grid(params: dict[str, torch.Tensor], wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """Every texel of maps {field: (*S, C)} shaded for each of D direction pairs wi, wo (D, 3):
    returns (D, *S, 3)."""
    shape = params["normal"].shape[:-1]
    p = int(math.prod(shape))
    d = wi.shape[0]
    flat = {f: v.reshape(1, p, v.shape[-1]).expand(d, p, v.shape[-1]).reshape(d * p, -1)
            for f, v in params.items()}
    wi_q = wi[:, None, :].expand(d, p, 3).reshape(-1, 3)
    wo_q = wo[:, None, :].expand(d, p, 3).reshape(-1, 3)
    return shade_params(flat, wi_q, wo_q).reshape(d, *shape, 3)


def reference_levels(level0: dict[str, torch.Tensor], wi: torch.Tensor, wo: torch.Tensor,
                     n_levels: int) -> list[torch.Tensor]:
    """The reference appearance of levels 0..n_levels-1: level-0 maps {field: (*B, R, R, C)}
    shaded per texel for D pairs and box-averaged; returns [(D, *B, R / 2^k, R / 2^k, 3)]."""
    cur = shade_grid(level0, wi, wo)
    out = [cur]
    for _ in range(1, n_levels):
        cur = box_reduce(cur)
        out.append(cur)
    return out


def sample_directions(n: int, z_min: float, generator: torch.Generator,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """n cosine-weighted unit directions (n, 3) with z >= z_min, stratified in the first
    coordinate (a randomly shifted Hammersley-like set), to train and fit over (wi, wo)."""
    u1 = (torch.arange(n, dtype=torch.float32) + torch.rand(n, generator=generator)) / n
    u2 = torch.rand(n, generator=generator)
    r2 = u1 * (1.0 - z_min * z_min)
    r = r2.sqrt()
    phi = 2.0 * math.pi * u2
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), (1.0 - r2).sqrt()], dim=-1)
    return dirs[torch.randperm(n, generator=generator)].to(device)
