"""Shadow-aware latents (issue 20, lever 1, beyond the paper): light-dependent visibility given to
the decoder as structure instead of something its MLP must discover.

Horizon mapping (Max 1988; Sloan and Cohen 2000) stores, per texel and for K azimuths, the
elevation of the horizon: a light below it is shadowed, one above it is not. Here the horizons
are *learned*: a pyramid of K + 1 numbers per texel and level (K horizons and one softness) read
with the latents, so captures without heightfields get them too, and a coarse level can hold a
soft fraction lit. For a direction w the decoder reads

    v(w) = sigmoid((elevation(w) - h(phi_w)) / tau),

h(phi) linearly interpolated between the two azimuths around phi (periodic), for the light (wi:
cast shadows) and the view (wo: masking): two numbers beside the latent that switch where shadows
switch, at the light's elevation, where the paper's xy encoding moves slowest.

:func:`horizon_map` computes the classic horizon map of a heightfield: the tests check the learned
form against it and against the BTF renderer's shadow rays.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from neumip.latent_pyramid import LatentPyramid

#: Raw starting values: horizons at sigmoid(-2) * 90 deg = 10.7 deg, softness tau = 0.1 rad.
_START_HORIZON = -2.0


def elevation(w: torch.Tensor) -> torch.Tensor:
    """Elevation above the tangent plane (N,) in radians of unit vectors w (N, 3), z up."""
    return torch.asin(w[:, 2].clamp(-1.0, 1.0))


def horizon_at(horizon: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Horizons (N, K) at azimuths 2 pi k / K, linearly interpolated (periodically) at phi (N,)
    radians: (N,)."""
    k = horizon.shape[1]
    x = torch.remainder(phi, 2.0 * math.pi) / (2.0 * math.pi) * k
    i0 = torch.floor(x).long().clamp(max=k - 1)
    t = x - i0
    i1 = (i0 + 1) % k
    h0 = horizon.gather(1, i0[:, None])[:, 0]
    h1 = horizon.gather(1, i1[:, None])[:, 0]
    return h0 + (h1 - h0) * t


def soft_visibility(horizon: torch.Tensor, tau: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sigmoid((elevation(w) - h(phi_w)) / tau): (N,) in (0, 1) for horizons (N, K) in radians,
    softness tau (N,) > 0 and unit directions w (N, 3)."""
    phi = torch.atan2(w[:, 1], w[:, 0])
    return torch.sigmoid((elevation(w) - horizon_at(horizon, phi)) / tau)


def horizon_map(height: np.ndarray, azimuths: int, max_distance: float | None = None,
                step: float = 0.25) -> np.ndarray:
    """The horizon map of a tileable heightfield ``height`` (H, W) in texel units (x along
    columns, y along rows): (H, W, K) elevations in radians >= 0, the highest angle
    atan((height(p + t d_k) - height(p)) / t) over distances t in (0, max_distance] along the K
    azimuths d_k = (cos 2 pi k / K, sin 2 pi k / K), height read bilinearly with wrap-around.
    ``max_distance`` defaults to the tile's side."""
    h, w = height.shape
    t_max = float(max(h, w)) if max_distance is None else max_distance
    ts = np.arange(step, t_max + 1e-9, step)
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    out = np.zeros((h, w, azimuths))
    for k in range(azimuths):
        phi = 2.0 * math.pi * k / azimuths
        dx, dy = math.cos(phi), math.sin(phi)
        best = np.zeros((h, w))
        for t in ts:
            z = _bilinear_wrapped(height, xx + t * dx, yy + t * dy)
            best = np.maximum(best, np.arctan2(z - height, t))
        out[..., k] = best
    return out


def _bilinear_wrapped(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """a (H, W) at texel coordinates (x, y) measured between texel centres, wrapped."""
    h, w = a.shape
    x0, y0 = np.floor(x), np.floor(y)
    tx, ty = x - x0, y - y0
    x0i, y0i = x0.astype(int) % w, y0.astype(int) % h
    x1i, y1i = (x0i + 1) % w, (y0i + 1) % h
    top = a[y0i, x0i] * (1 - tx) + a[y0i, x1i] * tx
    bottom = a[y1i, x0i] * (1 - tx) + a[y1i, x1i] * tx
    return top * (1 - ty) + bottom * ty


class HorizonFeatures(nn.Module):
    """The learned horizons: a pyramid (as the latents', read at the same uv and lod with the same
    blur) of K raw horizons and one raw softness per texel. h = sigmoid(raw) pi / 2 (0 to 90 deg),
    tau = 0.1 exp(raw) radians. Gives the decoder v(wi), v(wo): (N, 2)."""

    def __init__(self, resolution: int, azimuths: int, n_levels: int | None = None) -> None:
        super().__init__()
        if azimuths < 2:
            raise ValueError(f"horizon features need at least 2 azimuths, got {azimuths}")
        self.azimuths = azimuths
        self.pyramid = LatentPyramid(resolution, azimuths + 1, n_levels, init_std=0.0)
        with torch.no_grad():
            for t in self.pyramid.levels:
                t[..., :azimuths] = _START_HORIZON
                t[..., azimuths] = 0.0

    def forward(self, uv: torch.Tensor, lod: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                blur_sigma: float = 0.0) -> torch.Tensor:
        """uv (N, 2), lod (N,), wi and wo (N, 3) unit -> (N, 2) soft visibility of the light and
        of the view."""
        raw = self.pyramid(uv, lod, blur_sigma)
        horizon = torch.sigmoid(raw[:, : self.azimuths]) * (0.5 * math.pi)
        tau = 0.1 * torch.exp(raw[:, self.azimuths])
        return torch.stack([soft_visibility(horizon, tau, wi), soft_visibility(horizon, tau, wo)], dim=1)
