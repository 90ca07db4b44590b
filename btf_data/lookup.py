"""Bilinear and trilinear lookups in channels-last texture pyramids with wrap-around.

One lookup serves everything that reads a texture at continuous coordinates: the ground-truth
sampler, the synthetic BTF renderer (heights and maps at hit points), the NeuMIP latent pyramid
and the renderer's materials. Texel (i, j) of a level of resolution (H, W) has its centre at
uv = ((j + 0.5) / W, (i + 0.5) / H); uv has period 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def lookup_bilinear(
    texture: torch.Tensor, uv: torch.Tensor, index: torch.Tensor | None = None
) -> torch.Tensor:
    """Bilinear, wrapped lookup.

    texture: (B, H, W, C); uv: (N, 2) any real values (period 1); index: (N,) int64 in [0, B),
    which texture of the batch each query reads (None: all read texture 0).
    Returns (N, C). Differentiable in ``texture`` and ``uv``.
    """
    b, h, w, c = texture.shape
    x = uv[:, 0] * w - 0.5
    y = uv[:, 1] * h - 0.5
    x0f = torch.floor(x)
    y0f = torch.floor(y)
    tx = (x - x0f).unsqueeze(1)
    ty = (y - y0f).unsqueeze(1)
    x0 = torch.remainder(x0f.long(), w)
    y0 = torch.remainder(y0f.long(), h)
    x1 = torch.remainder(x0 + 1, w)
    y1 = torch.remainder(y0 + 1, h)
    base = torch.zeros_like(x0) if index is None else index.long() * (h * w)
    flat = texture.reshape(b * h * w, c)
    r0 = base + y0 * w
    r1 = base + y1 * w
    t00 = flat[r0 + x0]
    t01 = flat[r0 + x1]
    t10 = flat[r1 + x0]
    t11 = flat[r1 + x1]
    top = t00 + (t01 - t00) * tx
    bottom = t10 + (t11 - t10) * tx
    return top + (bottom - top) * ty


def lookup_trilinear(
    levels: Sequence[torch.Tensor],
    uv: torch.Tensor,
    lod: torch.Tensor,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Trilinear lookup: bilinear inside the two levels around ``lod``, linear between them.

    levels: L tensors (B, H_k, W_k, C), level 0 finest; uv: (N, 2); lod: (N,) continuous,
    clamped to [0, L - 1]; index: (N,) or None as in :func:`lookup_bilinear`.
    Returns (N, C). At integer lod and texel centres it returns the texel values exactly.
    """
    n_levels = len(levels)
    lod = lod.clamp(0.0, float(n_levels - 1))
    lo = torch.floor(lod).long().clamp(max=n_levels - 1)
    frac = (lod - lo.to(lod.dtype)).unsqueeze(1)
    c = levels[0].shape[-1]
    out = torch.zeros(uv.shape[0], c, dtype=levels[0].dtype, device=uv.device)
    for k in range(n_levels):
        # Level k contributes with weight (1 - frac) where lo == k and frac where lo == k - 1.
        w = torch.where(lo == k, 1.0 - frac[:, 0], torch.where(lo == k - 1, frac[:, 0], 0.0))
        sel = torch.nonzero(w > 0, as_tuple=True)[0]
        if sel.numel() == 0:
            continue
        idx = None if index is None else index[sel]
        val = lookup_bilinear(levels[k], uv[sel], idx)
        out = out.index_add(0, sel, val * w[sel].unsqueeze(1).to(val.dtype))
    return out
