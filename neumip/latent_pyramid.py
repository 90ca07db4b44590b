"""NeuMIP's latent mip pyramid: a trainable feature texture at every level, read trilinearly."""

from __future__ import annotations

import math

import torch
from torch import nn

from btf_data.lookup import lookup_trilinear, pack_levels
from btf_data.lookup_native import Layout
from neumip.blur import blur_wrapped


def latent_level_count(resolution: int) -> int:
    """Levels from ``resolution`` down to 2 x 2: log2(resolution)."""
    if resolution < 2 or resolution & (resolution - 1):
        raise ValueError(f"latent resolution must be a power of two >= 2, got {resolution}")
    return int(math.log2(resolution))


class LatentPyramid(nn.Module):
    """Per-level latent textures (1, R / 2^k, R / 2^k, C), channels last, initialised N(0, 0.1^2).

    ``n_levels`` None gives the full pyramid (finest at R, coarsest 2 x 2); 1 gives the
    single-level ablation (every lod reads level 0).
    """

    def __init__(self, resolution: int, channels: int, n_levels: int | None = None,
                 init_std: float = 0.1) -> None:
        super().__init__()
        full = latent_level_count(resolution)
        n = full if n_levels is None else n_levels
        if not 1 <= n <= full:
            raise ValueError(f"n_levels must be in 1..{full} for resolution {resolution}, got {n}")
        self.resolution, self.channels = resolution, channels
        self.levels = nn.ParameterList(
            nn.Parameter(torch.randn(1, resolution >> k, resolution >> k, channels) * init_std)
            for k in range(n)
        )

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def blurred_levels(self, blur_sigma: float = 0.0) -> list[torch.Tensor]:
        """The levels as read: level k blurred by blur_sigma / 2^k of its own texels (blur_sigma
        in level-0 texels)."""
        return [blur_wrapped(t, blur_sigma / 2**k) for k, t in enumerate(self.levels)]

    def forward(self, uv: torch.Tensor, lod: torch.Tensor, blur_sigma: float = 0.0,
                beside: list[torch.Tensor] | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """uv (N, 2), lod (N,) continuous -> latents (N, C), read from :meth:`blurred_levels`.
        ``beside``: more textures of the same level sizes (e.g. the lobe pyramid), read in the same
        lookup: then (N, C + their channels), theirs after the latent's (one lookup for every
        channel group: the same numbers as separate lookups, in one pass). ``out``: an (N, C...)
        view to write into and return (the decoder's input columns)."""
        levels = self.blurred_levels(blur_sigma)
        if beside is not None:
            levels = [torch.cat([a, b], dim=-1) for a, b in zip(levels, beside, strict=True)]
        return lookup_trilinear(levels, uv, lod, out=out)

    def packed_levels(self, blur_sigma: float = 0.0) -> tuple[torch.Tensor, Layout]:
        """:meth:`blurred_levels` packed in one table (rows, C) without autograd, and its layout,
        as the native kernels read them (neumip/query_native.py); kept until the levels or the
        blur change, so that chunked queries pack them once."""
        key = (blur_sigma, *[(t._version, t.data_ptr()) for t in self.levels])
        if getattr(self, "_packed_key", None) != key:
            with torch.no_grad():
                packed = pack_levels(self.blurred_levels(blur_sigma))
            self._packed = (packed.table, Layout(packed.offsets, packed.heights, packed.widths))
            self._packed_key = key
        return self._packed

    @torch.no_grad()
    def fuse_blur(self, weight: float, sigma: float) -> None:
        """Blend every level towards its own blur, T <- (1 - weight) T + weight blur(T, sigma
        texels of the level): the official code's ``fuse_blur`` of early training."""
        for t in self.levels:
            t.copy_((1.0 - weight) * t + weight * blur_wrapped(t, sigma))
