"""Scene shapes (ground plane, sphere, cylinder): ray intersection, uv parameterisation, tangent
frames and the uv footprint of a pixel from ray differentials (Igehy 1999).

Every shape parameterises its surface so that texels are square and the tangent frame is
(T, B, N) = (dp/du, dp/dv, outward normal) normalised and right-handed, which is the frame of
the BTF data (x along +u, y along +v, z up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_EPS = 1e-6


def dot3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of (N, 3) vectors (either may be a (3,) constant): (N,).
    Column by column, which is twice as fast as ``(a * b).sum(1)`` (a reduction over 3 elements)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


@dataclass
class Hit:
    """Per-ray intersection results (N rays)."""

    valid: torch.Tensor  # (N,) bool
    t: torch.Tensor  # (N,)
    p: torch.Tensor  # (N, 3)
    n: torch.Tensor  # (N, 3) unit outward normal
    uv: torch.Tensor  # (N, 2), tiled: period 1 is one copy of the material
    dpdu: torch.Tensor  # (N, 3)
    dpdv: torch.Tensor  # (N, 3)

    def frame(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Orthonormal tangent frame (T, B, N), T along dp/du."""
        t = self.dpdu - self.n * dot3(self.dpdu, self.n)[:, None]
        t = t / dot3(t, t).sqrt().clamp_min(_EPS)[:, None]
        b = torch.linalg.cross(self.n, t)
        return t, b, self.n


def uv_derivatives(
    hit: Hit, d: torch.Tensor, ddx: torch.Tensor, ddy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """duv/dx, duv/dy (N, 2) of a pinhole camera's rays (origins fixed) at their hits.

    The hit point moves by dp = t (dd - (dd . n) / (d . n) d) for a one-pixel change dd of the
    direction; dp is expressed in (dp/du, dp/dv) by least squares.
    """
    dn = dot3(d, hit.n)[:, None]
    dn = torch.where(dn.abs() < _EPS, torch.full_like(dn, -_EPS), dn)
    a11 = dot3(hit.dpdu, hit.dpdu)
    a12 = dot3(hit.dpdu, hit.dpdv)
    a22 = dot3(hit.dpdv, hit.dpdv)
    det = (a11 * a22 - a12 * a12).clamp_min(1e-20)
    out = []
    for dd in (ddx, ddy):
        dp = hit.t[:, None] * (dd - dot3(dd, hit.n)[:, None] / dn * d)
        b1 = dot3(hit.dpdu, dp)
        b2 = dot3(hit.dpdv, dp)
        out.append(torch.stack([(a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det], 1))
    return out[0], out[1]


@dataclass
class GroundPlane:
    """The plane y = height, normal +y; uv = (x, -z) / texture_size (square texels)."""

    height: float = 0.0
    texture_size: float = 1.0
    """World size of one copy of the material."""

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> Hit:
        dy = d[:, 1]
        safe = torch.where(dy.abs() < _EPS, torch.full_like(dy, -_EPS), dy)
        t = (self.height - o[:, 1]) / safe
        valid = (t > _EPS) & (dy < -_EPS)  # seen from above only
        p = o + t[:, None] * d
        s = self.texture_size
        uv = torch.stack([p[:, 0] / s, -p[:, 2] / s], 1)
        n = torch.zeros_like(p)
        n[:, 1] = 1.0
        dpdu = torch.zeros_like(p)
        dpdu[:, 0] = s
        dpdv = torch.zeros_like(p)
        dpdv[:, 2] = -s
        return Hit(valid, t, p, n, uv, dpdu, dpdv)


@dataclass
class Sphere:
    """Sphere at ``center`` with ``radius``; u = tiles * phi / 2 pi around the y axis,
    v = tiles * theta / (2 pi) from the north pole (square texels at the equator)."""

    center: tuple[float, float, float] = (0.0, 1.0, 0.0)
    radius: float = 1.0
    tiles: float = 8.0

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> Hit:
        c = torch.tensor(self.center, dtype=o.dtype, device=o.device)
        oc = o - c
        b = dot3(oc, d)
        disc = b * b - (dot3(oc, oc) - self.radius**2)
        sq = disc.clamp_min(0).sqrt()
        t0, t1 = -b - sq, -b + sq
        t = torch.where(t0 > _EPS, t0, t1)
        valid = (disc > 0) & (t > _EPS)
        p = o + t[:, None] * d
        n = (p - c) / self.radius
        theta = torch.acos(n[:, 1].clamp(-1, 1))
        phi = torch.atan2(n[:, 2], n[:, 0])
        k = self.tiles / (2 * math.pi)
        uv = torch.stack([phi * k, theta * k], 1)
        st = torch.sin(theta).clamp_min(1e-4)
        # dp/dphi = r sin(theta) (-sin phi, 0, cos phi); dp/dtheta = r (cos th cos ph, -sin th, cos th sin ph)
        zero = torch.zeros_like(phi)
        dpdphi = self.radius * torch.stack([-st * torch.sin(phi), zero, st * torch.cos(phi)], 1)
        dpdth = self.radius * torch.stack([torch.cos(theta) * torch.cos(phi), -torch.sin(theta),
                                          torch.cos(theta) * torch.sin(phi)], 1)
        return Hit(valid, t, p, n, uv, dpdphi / k, dpdth / k)


@dataclass
class Cylinder:
    """Open cylinder around the y axis through ``base`` (its bottom centre), ``radius`` and
    ``height``; u = tiles * phi / 2 pi, v = -tiles * y / (2 pi r) (square texels)."""

    base: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 1.0
    height: float = 2.0
    tiles: float = 8.0

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> Hit:
        c = torch.tensor(self.base, dtype=o.dtype, device=o.device)
        oc = o - c
        a = d[:, 0] ** 2 + d[:, 2] ** 2
        b = oc[:, 0] * d[:, 0] + oc[:, 2] * d[:, 2]
        cc = oc[:, 0] ** 2 + oc[:, 2] ** 2 - self.radius**2
        a_safe = a.clamp_min(_EPS)
        disc = b * b - a * cc
        sq = disc.clamp_min(0).sqrt()
        t0, t1 = (-b - sq) / a_safe, (-b + sq) / a_safe
        y0 = oc[:, 1] + t0 * d[:, 1]
        y1 = oc[:, 1] + t1 * d[:, 1]
        in0 = (t0 > _EPS) & (y0 >= 0) & (y0 <= self.height)
        in1 = (t1 > _EPS) & (y1 >= 0) & (y1 <= self.height)
        t = torch.where(in0, t0, t1)
        valid = (disc > 0) & (a > _EPS) & (in0 | in1)
        p = o + t[:, None] * d
        local = p - c
        phi = torch.atan2(local[:, 2], local[:, 0])
        n = torch.stack([torch.cos(phi), torch.zeros_like(phi), torch.sin(phi)], 1)
        k = self.tiles / (2 * math.pi)
        uv = torch.stack([phi * k, -local[:, 1] * k / self.radius], 1)
        dpdphi = self.radius * torch.stack([-torch.sin(phi), torch.zeros_like(phi), torch.cos(phi)], 1)
        dpdy = torch.zeros_like(p)
        dpdy[:, 1] = -self.radius / k
        return Hit(valid, t, p, n, uv, dpdphi / k, dpdy)
