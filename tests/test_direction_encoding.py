"""Direction encodings of the decoder (neumip/direction_encoding.py): closed forms, invertibility
and the rate at grazing elevations that motivates the equidistant code (issue 20, lever 3)."""

from __future__ import annotations

import math

import pytest
import torch

from neumip.direction_encoding import (
    ENCODINGS,
    encode_direction,
    encoding_width,
    equidistant,
    from_equidistant,
    tan_features,
)


def _dirs(theta_deg: list[float], phi_deg: list[float]) -> torch.Tensor:
    """Unit vectors (N, 3) float64 of elevations and azimuths in degrees."""
    t = torch.deg2rad(torch.tensor(theta_deg, dtype=torch.float64))
    p = torch.deg2rad(torch.tensor(phi_deg, dtype=torch.float64))
    return torch.stack([t.sin() * p.cos(), t.sin() * p.sin(), t.cos()], dim=1)


def test_equidistant_known_values_and_round_trip() -> None:
    w = _dirs([0.0, 70.0, 45.0, 89.9], [0.0, 30.0, 200.0, 90.0])
    e = equidistant(w)
    # Closed form: (theta / 90 deg) (cos phi, sin phi).
    assert torch.allclose(e[0], torch.zeros(2, dtype=e.dtype), atol=1e-12)
    c30, s30 = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert torch.allclose(e[1], torch.tensor([70 / 90 * c30, 70 / 90 * s30], dtype=e.dtype), atol=1e-12)
    assert e[3].norm().item() == pytest.approx(89.9 / 90, abs=1e-9)
    g = torch.Generator().manual_seed(0)
    v = torch.randn(1000, 3, generator=g, dtype=torch.float64)
    v[:, 2] = v[:, 2].abs() + 1e-3
    v = v / v.norm(dim=1, keepdim=True)
    assert torch.allclose(from_equidistant(equidistant(v)), v, atol=1e-10)
    assert torch.allclose(from_equidistant(equidistant(w)), w, atol=1e-10)


def test_equidistant_moves_as_fast_at_grazing_angles_as_at_the_pole() -> None:
    """d(encoding)/d(theta) per radian: xy moves cos(theta) as fast (0.34 at 70 deg), equi at the
    same rate 2/pi everywhere."""
    d = 1e-4
    for theta in (10.0, 70.0, 85.0):
        a, b = _dirs([theta, theta + math.degrees(d)], [40.0, 40.0])
        rate_xy = (b[:2] - a[:2]).norm().item() / d
        rate_equi = (equidistant(b[None])[0] - equidistant(a[None])[0]).norm().item() / d
        assert rate_xy == pytest.approx(math.cos(math.radians(theta)), rel=1e-3)
        assert rate_equi == pytest.approx(2 / math.pi, rel=1e-6)


def test_tan_features_are_the_squashed_shadow_length() -> None:
    w = _dirs([45.0, 0.0, 80.0], [90.0, 0.0, 180.0])
    f = tan_features(w)
    assert torch.allclose(f[0], torch.tensor([0.0, 0.5], dtype=f.dtype), atol=1e-9)  # tan 45 = 1
    assert torch.allclose(f[1], torch.zeros(2, dtype=f.dtype))
    t = math.tan(math.radians(80.0))
    assert torch.allclose(f[2], torch.tensor([-t / (1 + t), 0.0], dtype=f.dtype), atol=1e-9)


@pytest.mark.parametrize("kind", ENCODINGS)
def test_every_encoding_has_its_width_and_is_finite_at_the_pole(kind: str) -> None:
    w = _dirs([0.0, 30.0, 89.0], [0.0, 100.0, 300.0]).float()
    out = encode_direction(w, kind)
    assert out.shape == (3, encoding_width(kind))
    assert torch.isfinite(out).all()


def test_unknown_encoding_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="xy, sh3, equi, equi_tan"):
        encoding_width("polar")
