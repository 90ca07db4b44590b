"""The microfacet BRDF against closed forms."""

from __future__ import annotations

import math

import torch

from btf_data.brdf import isotropic_tensor, microfacet_brdf, to_local_frame


def _dirs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, 3, generator=g, dtype=torch.float64)
    v[:, 2] = v[:, 2].abs() + 0.05
    return v / v.norm(dim=1, keepdim=True)


def reference_isotropic_ggx(wi, wo, albedo, alpha, f0):
    """Textbook isotropic GGX (Walter et al. 2007) with height-correlated Smith, written with
    angles: D = alpha^2 / (pi cos^4 (alpha^2 + tan^2)^2)."""
    h = wi + wo
    h = h / h.norm(dim=1, keepdim=True)
    cos_h = h[:, 2]
    tan2 = (1 - cos_h**2) / cos_h**2
    d = alpha**2 / (math.pi * cos_h**4 * (alpha**2 + tan2) ** 2)

    def lam(w):
        t2 = (1 - w[:, 2] ** 2) / w[:, 2] ** 2
        return (-1 + torch.sqrt(1 + alpha**2 * t2)) / 2

    g = 1 / (1 + lam(wi) + lam(wo))
    f = f0 + (1 - f0) * (1 - (wi * h).sum(1, keepdim=True)) ** 5
    return albedo / math.pi + f * (d * g / (4 * wi[:, 2] * wo[:, 2]))[:, None]


def test_isotropic_ggx_matches_textbook_formula():
    wi, wo = _dirs(500, 0), _dirs(500, 1)
    n = wi.shape[0]
    albedo = torch.full((n, 3), 0.3, dtype=torch.float64)
    alpha = torch.full((n,), 0.25, dtype=torch.float64)
    got = microfacet_brdf(wi, wo, albedo, isotropic_tensor(alpha), torch.zeros(n, dtype=torch.float64),
                          torch.full((n,), 0.04, dtype=torch.float64))
    want = reference_isotropic_ggx(wi, wo, albedo, 0.25, 0.04)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_ndf_is_normalised_projected_area():
    """The integral of D(h) cos(theta_h) over the hemisphere is 1 (here anisotropic, with a
    correlation term), by midpoint quadrature."""
    from btf_data.brdf import ggx_ndf

    nt, nph = 800, 400
    t = (torch.arange(nt, dtype=torch.float64) + 0.5) / nt * (math.pi / 2)
    p = (torch.arange(nph, dtype=torch.float64) + 0.5) / nph * (2 * math.pi)
    tt, pp = torch.meshgrid(t, p, indexing="ij")
    h = torch.stack([tt.sin() * pp.cos(), tt.sin() * pp.sin(), tt.cos()], -1).reshape(-1, 3)
    sigma = torch.tensor([[0.3**2, 0.5**2, 0.02]], dtype=torch.float64).expand(h.shape[0], 3)
    integrand = ggx_ndf(h, sigma) * h[:, 2] * tt.sin().reshape(-1)
    total = integrand.sum() * (math.pi / 2 / nt) * (2 * math.pi / nph)
    assert abs(total.item() - 1.0) < 2e-3


def test_white_lambertian_is_one_over_pi_and_below_horizon_is_zero():
    wi, wo = _dirs(10, 2), _dirs(10, 3)
    n = 10
    ones = torch.ones(n, 3, dtype=torch.float64)
    f = microfacet_brdf(wi, wo, ones, isotropic_tensor(torch.full((n,), 0.5, dtype=torch.float64)),
                        torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64))
    torch.testing.assert_close(f, ones / math.pi)
    below = wi.clone()
    below[:, 2] = -below[:, 2]
    f = microfacet_brdf(below, wo, ones, isotropic_tensor(torch.full((n,), 0.5, dtype=torch.float64)),
                        torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64))
    assert torch.all(f == 0)


def test_local_frame_is_a_rotation_taking_the_normal_to_z():
    n = _dirs(50, 4)
    v = _dirs(50, 5)
    torch.testing.assert_close(to_local_frame(n, n), torch.tensor([[0.0, 0.0, 1.0]],
                               dtype=torch.float64).expand(50, 3), atol=1e-12, rtol=0)
    local = to_local_frame(v, n)
    torch.testing.assert_close(local.norm(dim=1), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(local[:, 2], (v * n).sum(1))
    flat = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(50, 3)
    torch.testing.assert_close(to_local_frame(v, flat), v)
