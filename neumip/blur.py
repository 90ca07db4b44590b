"""Differentiable Gaussian blur of tileable latent textures (wrap-around borders).

NeuMIP blurs its latent textures during early training (sigma decaying from 8 texels) so that
gradients from a query spread over many texels; this is that blur. It is applied as two
circulant matrices (rows, then columns): the kernel wrapped around the tile for any sigma, even
one wider than the texture, and plain matrix products forwards and backwards.
"""

from __future__ import annotations

import math

import torch

#: Below this sigma (texels) the kernel is nearly a delta and the blur is skipped.
MIN_SIGMA = 0.25


def circulant_gaussian(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) matrix M of the Gaussian kernel's taps t in [-ceil(3 sigma), ceil(3 sigma)] wrapped
    around the tile: M[i, (i - t) mod n] += g(t), normalised by the sum of all taps. Taps that
    land on the same texel add up, as the official code's circular convolution does, so a kernel
    wider than the tile averages towards the mean instead of folding its tails back."""
    k = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-k, k + 1, device=device)
    g = torch.exp(-0.5 * (taps.to(dtype) / sigma) ** 2)
    g = g / g.sum()
    rows = torch.arange(n, device=device)[:, None].expand(n, taps.numel())
    cols = torch.remainder(rows - taps[None, :], n)
    m = torch.zeros(n, n, dtype=dtype, device=device)
    return m.index_put_((rows.reshape(-1), cols.reshape(-1)), g.repeat(n), accumulate=True)


def blur_wrapped(texture: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur a channels-last texture (B, H, W, C) with a wrapped Gaussian of ``sigma`` texels.

    Returns the input itself when sigma < MIN_SIGMA. Differentiable. Computed in the texture's
    own precision even under autocast: a blurred texture is a texture (read by the lookups, kept
    by the neural offset's cache), not an activation. Contiguous channels-last, as the lookups
    read it (a permuted view would be copied by every lookup that reads the cached texture).
    """
    if sigma < MIN_SIGMA:
        return texture
    _, h, w, _ = texture.shape
    mh = circulant_gaussian(h, sigma, texture.dtype, texture.device)
    mw = circulant_gaussian(w, sigma, texture.dtype, texture.device)
    x = texture.permute(0, 3, 1, 2)  # (B, C, H, W)
    with torch.autocast(texture.device.type, enabled=False):
        x = mh @ x @ mw.t()
    return x.permute(0, 2, 3, 1).contiguous()
