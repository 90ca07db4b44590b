"""Differentiable Gaussian blur of tileable latent textures (wrap-around borders).

NeuMIP blurs its latent textures during early training (sigma decaying from 8 texels) so that
gradients from a query spread over many texels; this is that blur. It is applied as two
circulant matrices (rows, then columns): the kernel wrapped around the tile for any sigma, even
one wider than the texture, and plain matrix products forwards and backwards; for float32 on the
CPU, by the native kernel (blur_kernel.c) where it is built: the same sums tap by tap.
"""

from __future__ import annotations

import ctypes
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from plumbing.native_build import data_pointer as ptr
from plumbing.native_build import load_or_none

#: Below this sigma (texels) the kernel is nearly a delta and the blur is skipped.
MIN_SIGMA = 0.25


def gaussian_taps(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The kernel's taps g(t) for t in [-ceil(3 sigma), ceil(3 sigma)], normalised to sum 1
    (symmetric: g(-t) = g(t) exactly)."""
    k = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-k, k + 1, device=device)
    g = torch.exp(-0.5 * (taps.to(dtype) / sigma) ** 2)
    return g / g.sum()


def circulant_gaussian(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) matrix M of the Gaussian kernel's taps t in [-ceil(3 sigma), ceil(3 sigma)] wrapped
    around the tile: M[i, (i - t) mod n] += g(t), normalised by the sum of all taps. Taps that
    land on the same texel add up, as the official code's circular convolution does, so a kernel
    wider than the tile averages towards the mean instead of folding its tails back."""
    g = gaussian_taps(sigma, dtype, device)
    k = (g.numel() - 1) // 2
    taps = torch.arange(-k, k + 1, device=device)
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
    float32 on the CPU: by the native kernel where it is built (a multiply-add per tap and value
    instead of the dense circulant products; the same numbers to float32 round-off).
    """
    if sigma < MIN_SIGMA:
        return texture
    if texture.device.type == "cpu" and texture.dtype == torch.float32 and _library() is not None:
        return _NativeBlur.apply(texture, gaussian_taps(sigma, torch.float32, texture.device))
    _, h, w, _ = texture.shape
    mh = circulant_gaussian(h, sigma, texture.dtype, texture.device)
    mw = circulant_gaussian(w, sigma, texture.dtype, texture.device)
    x = texture.permute(0, 3, 1, 2)  # (B, C, H, W)
    with torch.autocast(texture.device.type, enabled=False):
        x = mh @ x @ mw.t()
    return x.permute(0, 2, 3, 1).contiguous()


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    return load_or_none(Path(__file__).with_name("blur_kernel.c"), {
        "blur_wrapped_forward": ([p, p, i64, i64, i64, i64, p, i64, ctypes.c_int], ctypes.c_int),
    }, "the circulant matrix products")


def _native_blur(texture: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """The blur of a contiguous float32 texture (B, H, W, C) by the native kernel (blur_kernel.c:
    along x and y, a multiply-add per tap and value, the same sums as the circulant products to
    float32 round-off)."""
    x = texture.contiguous()
    out = torch.empty_like(x)
    b, h, w, c = x.shape
    k = (taps.numel() - 1) // 2
    if _library().blur_wrapped_forward(ptr(x), ptr(out), b, h, w, c, ptr(taps.contiguous()), k,
                                       torch.get_num_threads()):
        raise MemoryError("native blur: no memory for its intermediate")
    return out


class _NativeBlur(torch.autograd.Function):
    """texture (B, H, W, C) float32, taps (2k + 1) symmetric -> the wrapped blur; its own adjoint,
    so the backward pass blurs the gradient."""

    @staticmethod
    def forward(ctx: Any, texture: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(taps)
        return _native_blur(texture.detach(), taps)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (taps,) = ctx.saved_tensors
        return _native_blur(grad.float(), taps), None
