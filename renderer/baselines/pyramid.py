"""The one format every SVBRDF mipmapping method returns, and the parameter algebra they share.

An :class:`SVBRDFPyramid` holds, for every level k = 0..L-1 (level 0 the material's own maps,
level k at R / 2^k), per-texel BRDF parameters of the project's one BRDF (``btf_data.brdf``):
albedo (3), unit shading normal (3), slope covariance ``(a, b, c) = [[a, c], [c, b]]`` in the
frame of that normal (3; isotropic GGX alpha is (alpha^2, alpha^2, 0)), metallic (1), specular
(1). The methods differ only in how they fill levels 1..L-1.

Slope moments (LEAN, Olano & Baker 2010) are the space in which mixing texels is exact: a texel
with normal n and covariance T has first moments B = (n_x / n_z, n_y / n_z) and second moments
M = T / 2 + B B^T (T / 2 is the slope variance of a GGX tensor by the moment match
alpha^2 = 2 sigma^2, Kaplanyan et al. 2016). Averaging (B, M) over texels and turning them back
(covariance M - B B^T, normal from B) adds the spread of the normals to the roughness, and the
result is positive semi-definite for any convex weights. LEAN builds its pyramid this way, and
:class:`~renderer.baselines.material.SVBRDFPyramidMaterial` interpolates every method's levels
this way. Treating the covariance around the mean slope as the covariance in the mean normal's
frame is LEAN's small-tilt approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from btf_data.brdf import isotropic_tensor
from btf_data.pyramid import level_count
from btf_data.svbrdf import SVBRDFMaps

#: The fields of a pyramid level and their channels.
FIELDS: dict[str, int] = {"albedo": 3, "normal": 3, "tensor": 3, "metallic": 1, "specular": 1}

MIN_NORMAL_Z = 1e-3
"""Normals are kept above this z so that their slopes B = n_xy / n_z stay finite."""
MIN_VARIANCE = 1e-6
"""Smallest eigenvalue a covariance keeps, so that the GGX tensor stays positive definite
(GGX alpha >= 1e-3)."""


@dataclass
class SVBRDFPyramid:
    """Per-level SVBRDF maps: every field is a list over levels of float32 arrays (R_k, R_k, C)."""

    albedo: list[np.ndarray]
    normal: list[np.ndarray]
    tensor: list[np.ndarray]
    metallic: list[np.ndarray]
    specular: list[np.ndarray]
    method: str = ""
    build_seconds: float = 0.0
    """How long the method took to build it (set by ``build_pyramid``)."""

    @property
    def n_levels(self) -> int:
        return len(self.albedo)

    @property
    def resolution(self) -> int:
        return int(self.albedo[0].shape[0])

    def level(self, k: int, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Level k as float32 tensors {field: (R_k, R_k, C)} on ``device``."""
        return {f: torch.as_tensor(getattr(self, f)[k], dtype=torch.float32, device=device)
                for f in FIELDS}

    def validate(self) -> None:
        """Refuse a pyramid with wrong shapes, non-unit normals or a tensor that is not positive
        definite: what a method returns must be shadeable as it is."""
        for f, c in FIELDS.items():
            levels = getattr(self, f)
            if len(levels) != self.n_levels:
                raise ValueError(f"{self.method}: field {f!r} has {len(levels)} levels, "
                                 f"expected {self.n_levels}")
            for k, arr in enumerate(levels):
                r = self.resolution >> k
                if arr.shape != (r, r, c):
                    raise ValueError(f"{self.method}: {f}[{k}] has shape {arr.shape}, expected {(r, r, c)}")
                if not np.isfinite(arr).all():
                    raise ValueError(f"{self.method}: {f}[{k}] has NaN or infinite values")
        for k in range(self.n_levels):
            n = self.normal[k]
            if np.abs(np.linalg.norm(n, axis=-1) - 1).max() > 1e-3 or (n[..., 2] <= 0).any():
                raise ValueError(f"{self.method}: normal[{k}] is not unit above the horizon")
            a, b, c = np.moveaxis(self.tensor[k], -1, 0)
            if (a <= 0).any() or (b <= 0).any() or (a * b - c * c <= 0).any():
                raise ValueError(f"{self.method}: tensor[{k}] is not positive definite")


def level0_fields(maps: SVBRDFMaps) -> dict[str, np.ndarray]:
    """The material's own maps in the pyramid's fields, float32 (R, R, C)."""
    maps.validate("SVBRDF pyramid")
    h, w = maps.resolution
    if h != w or level_count(h, w) < 2:
        raise ValueError(f"SVBRDF pyramids need square maps with even sides, got {h}x{w}")
    alpha = torch.as_tensor(maps.roughness, dtype=torch.float32)
    return {
        "albedo": maps.albedo.astype(np.float32),
        "normal": maps.normal.astype(np.float32),
        "tensor": isotropic_tensor(alpha).numpy(),
        "metallic": maps.metallic[..., None].astype(np.float32),
        "specular": maps.specular[..., None].astype(np.float32),
    }


def box_reduce(x: torch.Tensor | np.ndarray, factor: int = 2) -> torch.Tensor:
    """Mean of each factor x factor block of (..., H, W, C): the box filter of the ground truth."""
    x = torch.as_tensor(x)
    *lead, h, w, c = x.shape
    return x.reshape(*lead, h // factor, factor, w // factor, factor, c).mean(dim=(-4, -2))


def normalize(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors (..., 3), lifted above the horizon by MIN_NORMAL_Z."""
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    z = v[..., 2:].clamp_min(MIN_NORMAL_Z)
    v = torch.cat([v[..., :2], z], dim=-1)
    return v / v.norm(dim=-1, keepdim=True)


def to_moments(normal: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """(normal (..., 3), tensor (..., 3)) -> slope moments (..., 5) = (Bx, By, Mxx, Myy, Mxy)."""
    nz = normal[..., 2].clamp_min(MIN_NORMAL_Z)
    bx, by = normal[..., 0] / nz, normal[..., 1] / nz
    a, b, c = tensor.unbind(-1)
    return torch.stack([bx, by, 0.5 * a + bx * bx, 0.5 * b + by * by, 0.5 * c + bx * by], dim=-1)


def from_moments(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slope moments (..., 5) -> (unit normal (..., 3), tensor (..., 3)): covariance M - B B^T,
    made positive definite (eigenvalues >= MIN_VARIANCE), times 2 for the GGX tensor."""
    bx, by, mxx, myy, mxy = moments.unbind(-1)
    normal = normalize(torch.stack([bx, by, torch.ones_like(bx)], dim=-1))
    cov = torch.stack([mxx - bx * bx, myy - by * by, mxy - bx * by], dim=-1)
    return normal, 2.0 * clamp_covariance(cov, MIN_VARIANCE)


def clamp_covariance(cov: torch.Tensor, min_eig: float) -> torch.Tensor:
    """Symmetric 2x2 matrices (..., 3) = (a, b, c) with their eigenvalues raised to >= min_eig
    (the eigenvectors kept), in closed form."""
    a, b, c = cov.unbind(-1)
    mean = 0.5 * (a + b)
    half = torch.sqrt((0.5 * (a - b)) ** 2 + c * c + 1e-30)
    l1 = (mean + half).clamp_min(min_eig)
    l2 = (mean - half).clamp_min(min_eig)
    # Projector onto the first eigenvector: (S - l2_old I) / (l1_old - l2_old).
    cos2 = (0.5 * (a - b)) / half  # cos(2 theta) of the first eigenvector
    sin2 = c / half
    mid, dif = 0.5 * (l1 + l2), 0.5 * (l1 - l2)
    return torch.stack([mid + dif * cos2, mid - dif * cos2, dif * sin2], dim=-1)


def pyramid_from_levels(levels: list[dict[str, torch.Tensor | np.ndarray]], method: str) -> SVBRDFPyramid:
    """Assemble per-level {field: (R_k, R_k, C)} dicts into a validated pyramid."""
    fields = {f: [np.asarray(torch.as_tensor(lv[f]).detach().cpu(), dtype=np.float32) for lv in levels]
              for f in FIELDS}
    pyramid = SVBRDFPyramid(**fields, method=method)
    pyramid.validate()
    return pyramid


def box_levels(level0: dict[str, np.ndarray], n_levels: int) -> list[dict[str, torch.Tensor]]:
    """Box-averaged pyramid of every field, the normals averaged over each level's whole block of
    level-0 texels and then renormalised: the naive pyramid, and the starting point of the
    methods that change only some fields."""
    cur = {f: torch.as_tensor(v, dtype=torch.float32) for f, v in level0.items()}
    levels = [cur]
    for _ in range(1, n_levels):
        cur = {f: box_reduce(v) for f, v in cur.items()}  # normals stay unnormalised means here
        levels.append({**cur, "normal": normalize(cur["normal"])})
    return levels
