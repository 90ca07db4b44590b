"""The one microfacet BRDF of the project: anisotropic GGX with a 2x2 slope covariance,
height-correlated Smith masking-shadowing, Schlick Fresnel and a Lambertian diffuse term.

It serves the synthetic BTF renderer and (later) the SVBRDF mipmapping baselines, so that a
normal-mapped plane's BTF and a baseline's reference are the same numbers.

Roughness is a slope covariance ``sigma = [[a, c], [c, b]]`` stored as (a, b, c); isotropic GGX
with width alpha is (alpha^2, alpha^2, 0). The distribution of microfacet slopes
s = -(h.x, h.y) / h.z is D(h) = 1 / (pi sqrt(det sigma) h.z^4 (1 + s^T sigma^-1 s)^2), and
Lambda(w) = (sqrt(1 + w_xy^T sigma w_xy / w_z^2) - 1) / 2.
"""

from __future__ import annotations

import math

import torch


def isotropic_tensor(alpha: torch.Tensor) -> torch.Tensor:
    """GGX width alpha (...,) -> slope covariance (..., 3) = (alpha^2, alpha^2, 0)."""
    a2 = alpha * alpha
    return torch.stack([a2, a2, torch.zeros_like(a2)], dim=-1)


def tensor_sqrt(tensor: torch.Tensor) -> torch.Tensor:
    """Symmetric positive square root of (..., 3) = (a, b, c): (m0, m1, m2) with S^2 = T,
    S = (T + sqrt(det T) I) / sqrt(tr T + 2 sqrt(det T))."""
    a, b, c = tensor.unbind(-1)
    s = (a * b - c * c).clamp_min(0.0).sqrt()
    t = (a + b + 2.0 * s).clamp_min(1e-20).sqrt()
    return torch.stack([(a + s) / t, (b + s) / t, c / t], dim=-1)


def tensor_from_sqrt(m: torch.Tensor) -> torch.Tensor:
    """(..., 3) = (m0, m1, m2) of S -> T = S^2 as (a, b, c)."""
    m0, m1, m2 = m.unbind(-1)
    return torch.stack([m0 * m0 + m2 * m2, m1 * m1 + m2 * m2, (m0 + m1) * m2], dim=-1)


def ggx_ndf(h: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Normal distribution D(h): h (N, 3) unit, local frame; sigma (N, 3). Returns (N,)."""
    a, b, c = sigma.unbind(-1)
    det = (a * b - c * c).clamp_min(1e-12)
    hz = h[:, 2].clamp_min(1e-6)
    sx = -h[:, 0] / hz
    sy = -h[:, 1] / hz
    quad = (b * sx * sx - 2.0 * c * sx * sy + a * sy * sy) / det  # s^T sigma^-1 s
    return 1.0 / (math.pi * det.sqrt() * hz**4 * (1.0 + quad) ** 2)


def smith_lambda(w: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Smith Lambda for GGX: w (N, 3) unit with z > 0, sigma (N, 3). Returns (N,)."""
    a, b, c = sigma.unbind(-1)
    wx, wy, wz = w.unbind(-1)
    proj = a * wx * wx + 2.0 * c * wx * wy + b * wy * wy
    return 0.5 * (torch.sqrt(1.0 + proj / wz.clamp_min(1e-6) ** 2) - 1.0)


def schlick_fresnel(f0: torch.Tensor, cos_theta: torch.Tensor) -> torch.Tensor:
    """Schlick's Fresnel: f0 (N, 3), cos_theta (N,). Returns (N, 3).

    The grazing value f90 = min(1, 50 f0) is 1 for every real material (f0 >= 0.02) and 0 for
    f0 = 0, so that specular = 0 turns the lobe off entirely (a pure Lambertian surface).
    """
    m = (1.0 - cos_theta.clamp(0.0, 1.0)).unsqueeze(-1)
    f90 = (50.0 * f0).clamp(max=1.0)
    return f0 + (f90 - f0) * m**5


def microfacet_brdf(
    wi: torch.Tensor,
    wo: torch.Tensor,
    albedo: torch.Tensor,
    sigma: torch.Tensor,
    metallic: torch.Tensor,
    specular: torch.Tensor,
) -> torch.Tensor:
    """BRDF value f(wi, wo) in 1/sr, in the local shading frame (z = shading normal).

    wi, wo: (N, 3) unit vectors; albedo: (N, 3) linear RGB; sigma: (N, 3) slope covariance;
    metallic: (N,) in [0, 1]; specular: (N,) dielectric F0 (0.04 for most dielectrics; 0 turns
    the specular lobe off). Metals take F0 = albedo and lose the diffuse term.
    Returns (N, 3), zero where wi or wo is below the shading horizon.
    """
    valid = (wi[:, 2] > 0) & (wo[:, 2] > 0)
    h = wi + wo
    h = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    m = metallic.unsqueeze(-1)
    f0 = specular.unsqueeze(-1) * (1.0 - m) + albedo * m
    d = ggx_ndf(h, sigma)
    g = 1.0 / (1.0 + smith_lambda(wi, sigma) + smith_lambda(wo, sigma))
    f = schlick_fresnel(f0, (wi * h).sum(-1))
    cos_i = wi[:, 2].clamp_min(1e-6)
    cos_o = wo[:, 2].clamp_min(1e-6)
    spec = f * (d * g / (4.0 * cos_i * cos_o)).unsqueeze(-1)
    diffuse = albedo * (1.0 - m) / math.pi
    return torch.where(valid.unsqueeze(-1), diffuse + spec, torch.zeros_like(spec))


def to_local_frame(v: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Express directions v (N, 3) in the frame whose z axis is the unit normal n (N, 3).

    Uses the minimal rotation taking n to z (about the axis n x z), so a flat normal leaves v
    unchanged and the local x, y stay close to the macro tangent's.
    """
    nx, ny, nz = n.unbind(-1)
    vx, vy, vz = v.unbind(-1)
    k = 1.0 / (1.0 + nz).clamp_min(1e-6)
    # Rotation R (z -> n) is [[1 - nx^2 k, -nx ny k, nx], [-nx ny k, 1 - ny^2 k, ny], [-nx, -ny, nz]];
    # the local vector is R^T v.
    lx = (1.0 - nx * nx * k) * vx - nx * ny * k * vy - nx * vz
    ly = -nx * ny * k * vx + (1.0 - ny * ny * k) * vy - ny * vz
    lz = nx * vx + ny * vy + nz * vz
    return torch.stack([lx, ly, lz], dim=-1)
