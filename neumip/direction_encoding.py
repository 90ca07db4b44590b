"""How a view or light direction enters NeuMIP's decoder.

``xy``: the tangent-plane projection (x, y), as the paper (z follows from them on the upper
hemisphere). ``sh3``: the 16 real spherical harmonics of degrees 0..3, as NeuralBTF (Xu et al.
2025) encode directions: smooth in the direction, so a decoder interpolates between training
directions rather than memorising them, and more expressive for a shadow's edge than two
coordinates.
"""

from __future__ import annotations

import math

import torch

ENCODINGS = ("xy", "sh3")

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


def encode_direction(w: torch.Tensor, kind: str) -> torch.Tensor:
    """w (N, 3) unit, tangent frame -> (N, encoding_width(kind))."""
    if kind == "xy":
        return w[:, :2]
    if kind == "sh3":
        return real_sh3(w)
    encoding_width(kind)  # raises the message
    raise AssertionError
