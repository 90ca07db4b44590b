"""How a view or light direction enters NeuMIP's decoder.

``xy``: the tangent-plane projection (x, y), as the paper (z follows from them on the upper
hemisphere). ``sh3``: the 16 real spherical harmonics of degrees 0..3, as NeuralBTF (Xu et al.
2025) encode directions: smooth in the direction, so a decoder interpolates between training
directions rather than memorising them, and more expressive for a shadow's edge than two
coordinates. ``equi``: the azimuthal equidistant projection (theta / (pi/2)) (cos phi, sin phi):
the encoding moves as fast per radian of elevation at 70 deg as at the pole, where ``xy`` moves
cos(theta) as fast (a third at 70 deg), exactly where shadows change fastest (issue 20, lever 3).
``equi_tan`` adds tan-aware features (tan(theta) / (1 + tan(theta))) (cos phi, sin phi): a
shadow's length grows as tan(theta), so its edge moves linearly in this feature.
"""

from __future__ import annotations

import math

import torch

ENCODINGS = ("xy", "sh3", "equi", "equi_tan")

# Normalisation constants of the real spherical harmonics, degrees 0..3 (Sloan 2008).
_C0 = 0.5 * math.sqrt(1.0 / math.pi)
_C1 = math.sqrt(3.0 / (4.0 * math.pi))
_C2 = (0.5 * math.sqrt(15.0 / math.pi), 0.25 * math.sqrt(5.0 / math.pi), 0.25 * math.sqrt(15.0 / math.pi))
_C3 = (
    0.25 * math.sqrt(35.0 / (2.0 * math.pi)),
    0.5 * math.sqrt(105.0 / math.pi),
    0.25 * math.sqrt(21.0 / (2.0 * math.pi)),
    0.25 * math.sqrt(7.0 / math.pi),
    0.25 * math.sqrt(105.0 / math.pi),
)


def encoding_width(kind: str) -> int:
    """Numbers per direction of an encoding."""
    if kind == "xy":
        return 2
    if kind == "sh3":
        return 16
    if kind == "equi":
        return 2
    if kind == "equi_tan":
        return 4
    raise ValueError(f"direction encoding must be one of {', '.join(ENCODINGS)}, got {kind!r}")


def real_sh3(w: torch.Tensor) -> torch.Tensor:
    """The 16 real spherical harmonics Y_lm (l = 0..3, m = -l..l in order) of unit vectors
    w (N, 3): (N, 16), orthonormal over the sphere."""
    x, y, z = w[:, 0], w[:, 1], w[:, 2]
    xx, yy, zz = x * x, y * y, z * z
    return torch.stack(
        [
            torch.full_like(x, _C0),
            -_C1 * y,
            _C1 * z,
            -_C1 * x,
            _C2[0] * x * y,
            -_C2[0] * y * z,
            _C2[1] * (3 * zz - 1),
            -_C2[0] * x * z,
            _C2[2] * (xx - yy),
            -_C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            -_C3[2] * y * (5 * zz - 1),
            _C3[3] * z * (5 * zz - 3),
            -_C3[2] * x * (5 * zz - 1),
            0.5 * _C3[1] * z * (xx - yy),
            -_C3[0] * x * (xx - 3 * yy),
        ],
        dim=1,
    )


def equidistant(w: torch.Tensor) -> torch.Tensor:
    """Unit vectors w (N, 3) with z >= 0 -> (N, 2) = (theta / (pi/2)) (cos phi, sin phi), in the
    unit disk: the distance from the centre is the elevation, uniformly (invertible:
    :func:`from_equidistant`)."""
    s = w[:, :2].norm(dim=1, keepdim=True)
    theta = torch.atan2(s, w[:, 2:3])
    # (cos phi, sin phi) = xy / sin(theta); at the pole the limit of theta / sin(theta) is 1.
    scale = torch.where(s > 1e-7, theta / s.clamp_min(1e-7), torch.ones_like(s))
    return w[:, :2] * scale / (0.5 * math.pi)


def from_equidistant(e: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`equidistant`: e (N, 2) in the unit disk -> unit vectors (N, 3)."""
    r = e.norm(dim=1, keepdim=True)
    theta = r * (0.5 * math.pi)
    scale = torch.where(r > 1e-7, torch.sin(theta) / r.clamp_min(1e-7), torch.full_like(r, 0.5 * math.pi))
    return torch.cat([e * scale, torch.cos(theta)], dim=1)


def tan_features(w: torch.Tensor) -> torch.Tensor:
    """w (N, 3) unit, z > 0 -> (N, 2) = t / (1 + t) (cos phi, sin phi) with t = tan(theta): the
    direction and length of a unit height's shadow, squashed into the unit disk."""
    s = w[:, :2].norm(dim=1, keepdim=True)
    t = s / w[:, 2:3].clamp_min(1e-6)
    return w[:, :2] / s.clamp_min(1e-7) * (t / (1.0 + t))


def encode_direction(w: torch.Tensor, kind: str) -> torch.Tensor:
    """w (N, 3) unit, tangent frame -> (N, encoding_width(kind))."""
    if kind == "xy":
        return w[:, :2]
    if kind == "sh3":
        return real_sh3(w)
    if kind == "equi":
        return equidistant(w)
    if kind == "equi_tan":
        return torch.cat([equidistant(w), tan_features(w)], dim=1)
    encoding_width(kind)  # raises the message
    raise AssertionError
