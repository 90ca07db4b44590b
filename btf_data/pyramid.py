"""Filtered ground truth: the level-0 appearance averaged over each level's footprint.

- ``box``: level k is the exact mean of each 2^k x 2^k block of level-0 texels (the default, and
  the target of every SVBRDF method). It preserves the image mean exactly.
- ``gaussian``: level k is the level-0 image convolved (with wrap-around, since materials tile)
  with a Gaussian of standard deviation sigma_k = sigma_scale * 2^k level-0 texels, sampled at
  the centres of the level-k texels. The default sigma_scale = 0.5 gives sigma_1 = 1 texel,
  sigma_2 = 2, ...; the kernel is truncated at 3 sigma (and wraps when the image is smaller), so
  sigma_scale must be at least 1/12: level 1's kernel then reaches the nearest level-0 texel
  centres, half a texel away (a smaller one would weigh no texel at all).

Levels exist while both sides halve exactly: k = 1..log2(R) for a 2^n x 2^n image.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

FilterKind = Literal["box", "gaussian"]

#: Smallest sigma_scale: 3 sigma_1 = 3 * sigma_scale * 2 reaches the texels half a texel away.
MIN_SIGMA_SCALE = 1 / 12


def check_sigma_scale(sigma_scale: float, key: str = "sigma_scale") -> None:
    """Refuse a Gaussian width no kernel can be made of: not finite or below MIN_SIGMA_SCALE."""
    if not (math.isfinite(sigma_scale) and sigma_scale >= MIN_SIGMA_SCALE):
        raise ValueError(f"{key}={sigma_scale}: must be a finite number >= 1/12 ({MIN_SIGMA_SCALE:.4f}; "
                         "sigma_k = sigma_scale * 2^k level-0 texels, the default is 0.5)")


def level_count(height: int, width: int) -> int:
    """Number of levels, level 0 included: halve while both sides are even."""
    n = 1
    while height % 2 == 0 and width % 2 == 0 and height > 1 and width > 1:
        height //= 2
        width //= 2
        n += 1
    return n


def gaussian_matrix(size: int, level: int, sigma_scale: float) -> torch.Tensor:
    """(size / 2^level, size) row-stochastic matrix: wrapped Gaussian weights of each level-k
    texel centre over the level-0 texels."""
    check_sigma_scale(sigma_scale)
    step = 2**level
    sigma = sigma_scale * step
    out = size // step
    centres = (np.arange(out) + 0.5) * step - 0.5  # in level-0 texel indices
    j = np.arange(size)
    d = j[None, :] - centres[:, None]
    d = (d + size / 2) % size - size / 2  # wrap-around distance
    wgt = np.exp(-0.5 * (d / sigma) ** 2)
    wgt[np.abs(d) > 3 * sigma] = 0.0
    wgt /= wgt.sum(axis=1, keepdims=True)
    return torch.from_numpy(wgt.astype(np.float64))


def filtered_pyramid(
    images: np.ndarray | torch.Tensor, kind: FilterKind = "box", sigma_scale: float = 0.5
) -> list[np.ndarray]:
    """Levels 1..L-1 of a batch of level-0 images.

    images: (..., H, W, C). Returns a list of (..., H / 2^k, W / 2^k, C) float32 arrays for
    k = 1..L-1 (level 0 is the input itself). Computed in float64 so that the box mean is exact
    to float32 precision. Every value is checked finite before it is returned, so that no writer
    stores (or swaps in) a pyramid of NaNs.
    """
    x = torch.as_tensor(np.asarray(images), dtype=torch.float64)
    *lead, h, w, c = x.shape
    n_levels = level_count(h, w)
    out: list[np.ndarray] = []
    if kind == "box":
        cur = x
        for _ in range(1, n_levels):
            hh, ww = cur.shape[-3] // 2, cur.shape[-2] // 2
            cur = cur.reshape(*lead, hh, 2, ww, 2, c).mean(dim=(-4, -2))
            out.append(cur.to(torch.float32).numpy())
    elif kind == "gaussian":
        for k in range(1, n_levels):
            my = gaussian_matrix(h, k, sigma_scale)
            mx = gaussian_matrix(w, k, sigma_scale)
            lvl = torch.einsum("ih,...hwc,jw->...ijc", my, x, mx)
            out.append(lvl.to(torch.float32).numpy())
    else:
        raise ValueError(f"unknown pyramid filter {kind!r}; use 'box' or 'gaussian'")
    for k, lvl in enumerate(out, start=1):
        if not np.isfinite(lvl).all():
            raise ValueError(f"the {kind} pyramid has NaN or infinite values at level {k}"
                             + (f" (sigma_scale={sigma_scale})" if kind == "gaussian" else ""))
    return out
