"""Differentiable Gaussian blur of tileable latent textures (wrap-around borders).

NeuMIP blurs its latent textures during early training (sigma decaying from 8 texels) so that
gradients from a query spread over many texels; this is that blur. It is applied as two
circulant matrices (rows, then columns): exact wrap-around for any sigma, even one wider than
the texture, and plain matrix products forwards and backwards.
"""

from __future__ import annotations

import torch

#: Below this sigma (texels) the kernel is nearly a delta and the blur is skipped.
MIN_SIGMA = 0.25


def circulant_gaussian(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) matrix M with M[i, j] = normalised Gaussian weight of the wrapped distance i - j,
    truncated at 3 sigma (or at the period when that is shorter)."""
    idx = torch.arange(n, device=device)
    d = (idx[:, None] - idx[None, :]).to(dtype)
    d = torch.remainder(d + n / 2, n) - n / 2  # wrapped distance in [-n/2, n/2)
    w = torch.exp(-0.5 * (d / sigma) ** 2) * (d.abs() <= 3 * sigma)
    return w / w.sum(dim=1, keepdim=True)


def blur_wrapped(texture: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur a channels-last texture (B, H, W, C) with a wrapped Gaussian of ``sigma`` texels.

    Returns the input itself when sigma < MIN_SIGMA. Differentiable.
    """
    if sigma < MIN_SIGMA:
        return texture
    _, h, w, _ = texture.shape
    mh = circulant_gaussian(h, sigma, texture.dtype, texture.device)
    mw = circulant_gaussian(w, sigma, texture.dtype, texture.device)
    x = texture.permute(0, 3, 1, 2)  # (B, C, H, W)
    x = mh @ x @ mw.t()
    return x.permute(0, 2, 3, 1)
