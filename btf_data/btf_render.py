"""Render the BTF of an SVBRDF heightfield material for a set of (wo, wi) direction pairs.

For every texel of the reference plane (the top of the heightfield, z = 0; heights are <= 0 in
level-0 texels) and every sample inside it, the view ray along -wo is marched until it hits the
heightfield (parallax). The hit point is shaded with the microfacet BRDF of its maps, times the
visibility of the light (a shadow ray towards wi that must clear the heightfield), times
cos(n, wi) / cos(theta_i) so that values are BRDF-like (a white Lambertian plane reads 1/pi).
The samples of a texel are averaged.

Shadow rays are traced once per light direction on a grid finer than the texels
(``shadow_scale`` x), and looked up bilinearly at the hit points: one shadow map per wi instead of
one shadow ray per (wo, wi, sample). This softens shadow edges by about 1/shadow_scale texel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from btf_data.brdf import isotropic_tensor, microfacet_brdf, to_local_frame
from btf_data.lookup import lookup_bilinear
from btf_data.svbrdf import SVBRDFMaps
from plumbing.config_checks import require


@dataclass
class RenderConfig:
    """How the synthetic BTF is traced (conf/render/default.yaml)."""

    samples_per_axis: int = 2
    """Stratified, jittered samples per texel along each axis (s x s per texel), for displaced
    materials. A normal-mapped plane is shaded once at each texel centre: its level 0 is the
    per-texel BRDF of its maps, which is also the SVBRDF baselines' level 0, so its box pyramid is
    their reference exactly (sub-texel samples would shade bilinearly blended normals, a smoother
    material than the maps')."""
    march_step: float = 0.5
    """Largest step of a ray march, in level-0 texels (horizontal or vertical)."""
    refine_steps: int = 8
    """Bisection steps that refine a view ray's hit after the march brackets it."""
    shadow_scale: int = 2
    """Resolution of the per-light shadow map relative to the texels."""
    shadow_bias: float = 0.02
    """A shadow ray is blocked where it passes more than this many texels below the surface."""
    max_steps: int = 256
    """Most march steps of a ray. Only rays within a few degrees of the horizon need more (a view
    ray then stops at its last step; a shadow ray counts as lit)."""
    jitter: bool = True
    """Jitter samples inside their strata (False: stratum centres, whose mean is the texel
    centre)."""
    seed: int = 0
    """Seed of the sample jitter."""

    def __post_init__(self) -> None:
        require(self.samples_per_axis >= 1, "render.samples_per_axis", self.samples_per_axis, ">= 1")
        require(self.march_step > 0, "render.march_step", self.march_step, "> 0")
        require(self.shadow_scale >= 1, "render.shadow_scale", self.shadow_scale, ">= 1")
        require(self.max_steps >= 1, "render.max_steps", self.max_steps, ">= 1")


class HeightfieldMaterial:
    """An SVBRDF heightfield as torch textures, ready to be traced and shaded."""

    def __init__(self, maps: SVBRDFMaps, device: str | torch.device = "cpu") -> None:
        maps.validate("HeightfieldMaterial")
        self.resolution = maps.resolution
        h, w = self.resolution

        def tex(a: np.ndarray) -> torch.Tensor:
            a = np.asarray(a, dtype=np.float32)
            return torch.from_numpy(a.reshape(1, h, w, -1).copy()).to(device)

        self.device = torch.device(device)
        self.height = tex(maps.height)
        self.h_min = float(maps.height.min())
        self.flat = not maps.displaced
        self.albedo = tex(maps.albedo)
        self.normal = tex(maps.normal)
        self.roughness = tex(maps.roughness)
        self.metallic = tex(maps.metallic)
        self.specular = tex(maps.specular)

    def uv(self, xy: torch.Tensor) -> torch.Tensor:
        """Texel coordinates (N, 2) (x along columns) -> uv (N, 2)."""
        h, w = self.resolution
        return xy / torch.tensor([w, h], dtype=xy.dtype, device=xy.device)

    def height_at(self, xy: torch.Tensor) -> torch.Tensor:
        """Bilinear height (N,) in texels at texel coordinates xy (N, 2)."""
        return lookup_bilinear(self.height, self.uv(xy))[:, 0]


def texel_samples(
    resolution: tuple[int, int], per_axis: int, jitter: bool, seed: int, device: torch.device
) -> torch.Tensor:
    """Stratified sample positions in texel coordinates, (H * W * s * s, 2), ordered texel by
    texel (row-major), the s * s samples of a texel contiguous; jittered inside their strata or
    at the strata centres."""
    h, w = resolution
    g = torch.Generator().manual_seed(seed)
    s = per_axis
    if jitter:
        jitter = torch.rand(h, w, s, s, 2, generator=g)
    else:
        jitter = torch.full((h, w, s, s, 2), 0.5)
    sy, sx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    iy, ix = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    x = ix[:, :, None, None] + (sx[None, None] + jitter[..., 0]) / s
    y = iy[:, :, None, None] + (sy[None, None] + jitter[..., 1]) / s
    return torch.stack([x, y], dim=-1).reshape(-1, 2).to(device)


def trace_view(
    mat: HeightfieldMaterial, start_xy: torch.Tensor, wo: torch.Tensor, cfg: RenderConfig
) -> torch.Tensor:
    """Where the view rays along -wo (N, 3), entering at start_xy (N, 2) on the reference plane
    z = 0, first hit the heightfield: (N, 2) texel coordinates."""
    if mat.flat or start_xy.shape[0] == 0:
        return start_xy
    d_xy = -wo[:, :2]
    s_max = -mat.h_min / wo[:, 2]
    ds = cfg.march_step / torch.maximum(wo[:, :2].norm(dim=1), wo[:, 2])
    n_steps = min(cfg.max_steps, max(1, math.ceil(float((s_max / ds).max()))))
    lo = torch.zeros_like(s_max)
    hi = torch.minimum(s_max, n_steps * ds)
    hit = mat.height_at(start_xy) >= 0.0  # on the top plane: hit at s = 0
    hi[hit] = 0.0
    for k in range(1, n_steps + 1):
        todo = torch.nonzero(~hit, as_tuple=True)[0]
        if todo.numel() == 0:
            break
        s = torch.minimum(k * ds[todo], s_max[todo])
        pos = start_xy[todo] + s[:, None] * d_xy[todo]
        below = (-s * wo[todo, 2]) <= mat.height_at(pos)
        newly = todo[below]
        lo[newly] = torch.minimum((k - 1) * ds[newly], s_max[newly])
        hi[newly] = s[below]
        hit[newly] = True
    for _ in range(cfg.refine_steps):
        mid = 0.5 * (lo + hi)
        below = (-mid * wo[:, 2]) <= mat.height_at(start_xy + mid[:, None] * d_xy)
        hi = torch.where(below, mid, hi)
        lo = torch.where(below, lo, mid)
    return start_xy + hi[:, None] * d_xy


def light_visible(
    mat: HeightfieldMaterial, xy: torch.Tensor, wi: torch.Tensor, cfg: RenderConfig
) -> torch.Tensor:
    """Whether rays from the surface at xy (N, 2) towards wi (N, 3) clear the heightfield: (N,)
    bool. A ray is blocked where it passes more than shadow_bias texels below the surface."""
    lit = torch.ones(xy.shape[0], dtype=torch.bool, device=xy.device)
    if mat.flat or xy.shape[0] == 0:
        return lit
    z0 = mat.height_at(xy)
    ds = cfg.march_step / torch.maximum(wi[:, :2].norm(dim=1), wi[:, 2])
    s_max = (-z0 / wi[:, 2]).clamp_min(0.0)  # the ray is above every height once z > 0
    n_steps = min(cfg.max_steps, max(1, math.ceil(float((s_max / ds).max()))))
    for step in range(1, n_steps + 1):
        todo = torch.nonzero(lit & (step * ds < s_max), as_tuple=True)[0]
        if todo.numel() == 0:
            break
        s = step * ds[todo]
        pos = xy[todo] + s[:, None] * wi[todo, :2]
        blocked = z0[todo] + s * wi[todo, 2] < mat.height_at(pos) - cfg.shadow_bias
        lit[todo[blocked]] = False
    return lit


def shadow_map(mat: HeightfieldMaterial, wi: torch.Tensor, cfg: RenderConfig) -> torch.Tensor:
    """Light visibility (1, H*k, W*k, 1) in {0, 1} on a grid k = shadow_scale times finer than the
    texels, for one light direction wi (3,)."""
    h, w = mat.resolution
    k = cfg.shadow_scale
    if mat.flat:
        return torch.ones(1, h * k, w * k, 1, device=mat.device)
    gy, gx = torch.meshgrid(
        (torch.arange(h * k, device=mat.device) + 0.5) / k,
        (torch.arange(w * k, device=mat.device) + 0.5) / k,
        indexing="ij",
    )
    q = torch.stack([gx, gy], dim=-1).reshape(-1, 2)
    lit = light_visible(mat, q, wi.expand(q.shape[0], 3), cfg)
    return lit.to(torch.float32).reshape(1, h * k, w * k, 1)


@dataclass
class ViewHits:
    """What shading needs at each view ray's hit point."""

    xy: torch.Tensor  # (N, 2) texel coordinates of the hit
    normal: torch.Tensor  # (N, 3) unit shading normal
    wo_local: torch.Tensor  # (N, 3) wo in the shading frame
    albedo: torch.Tensor  # (N, 3)
    sigma: torch.Tensor  # (N, 3) slope covariance
    metallic: torch.Tensor  # (N,)
    specular: torch.Tensor  # (N,)


def view_hits(
    mat: HeightfieldMaterial, samples: torch.Tensor, wo: torch.Tensor, cfg: RenderConfig
) -> ViewHits:
    """Trace view rays (wo (N, 3) or (3,) for all) and read the maps at their hit points."""
    wo = wo.expand(samples.shape[0], 3)
    xy = trace_view(mat, samples, wo, cfg)
    uv = mat.uv(xy)
    normal = lookup_bilinear(mat.normal, uv)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return ViewHits(
        xy=xy,
        normal=normal,
        wo_local=to_local_frame(wo, normal),
        albedo=lookup_bilinear(mat.albedo, uv),
        sigma=isotropic_tensor(lookup_bilinear(mat.roughness, uv)[:, 0]),
        metallic=lookup_bilinear(mat.metallic, uv)[:, 0],
        specular=lookup_bilinear(mat.specular, uv)[:, 0],
    )


def shade(hits: ViewHits, wi: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """BTF value at each hit for light directions wi ((N, 3) or (3,)) and light visibility (N,):
    f * cos(n, wi) / cos(theta_i) * visibility, (N, 3)."""
    wi = wi.expand(hits.xy.shape[0], 3)
    wi_local = to_local_frame(wi, hits.normal)
    f = microfacet_brdf(
        wi_local, hits.wo_local, hits.albedo, hits.sigma, hits.metallic, hits.specular
    )
    cos_ratio = wi_local[:, 2].clamp_min(0.0) / wi[:, 2]
    return f * (cos_ratio * visibility).unsqueeze(-1)


def shade_params(params: dict[str, torch.Tensor], wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """BTF values (N, 3) of per-query parameters {field: (N, C)} for directions wi, wo (N, 3)
    (unit, tangent frame, z up)."""
    normal = params["normal"]
    hits = ViewHits(
        xy=normal[:, :2],  # unused by shading; it only carries the batch size
        normal=normal,
        wo_local=to_local_frame(wo, normal),
        albedo=params["albedo"],
        sigma=params["tensor"],
        metallic=params["metallic"][:, 0],
        specular=params["specular"][:, 0],
    )
    return shade(hits, wi, torch.ones_like(normal[:, 0]))


def eval_level0(
    mat: HeightfieldMaterial, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
    cfg: RenderConfig | None = None,
) -> torch.Tensor:
    """The material's exact level-0 BTF at points uv (N, 2) for per-query directions wi, wo
    (N, 3): one view ray and one shadow ray each (no shadow map, no supersampling)."""
    cfg = cfg or RenderConfig()
    h, w = mat.resolution
    start = torch.remainder(uv, 1.0) * torch.tensor([w, h], dtype=uv.dtype, device=uv.device)
    hits = view_hits(mat, start, wo, cfg)
    vis = light_visible(mat, hits.xy, wi, cfg).to(uv.dtype)
    return shade(hits, wi, vis)


def render_btf(
    maps: SVBRDFMaps,
    wo_dirs: np.ndarray,
    wi_dirs: np.ndarray,
    cfg: RenderConfig | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (i_wo, images (n_wi, H, W, 3) float32) view by view, so a writer can stream them.

    wo_dirs: (n_wo, 3), wi_dirs: (n_wi, 3) unit vectors with z > 0 (tangent frame, z up).
    """
    cfg = cfg or RenderConfig()
    if not maps.displaced:
        cfg = replace(cfg, samples_per_axis=1, jitter=False)
    for name, dirs in (("wo_dirs", wo_dirs), ("wi_dirs", wi_dirs)):
        dirs = np.asarray(dirs)
        if dirs.ndim != 2 or dirs.shape[1] != 3:
            raise ValueError(f"{name} must have shape (n, 3), got {dirs.shape}")
        if np.any(dirs[:, 2] <= 0) or not np.allclose(np.linalg.norm(dirs, axis=1), 1, atol=1e-4):
            raise ValueError(f"{name} must be unit vectors above the horizon (z > 0)")
    mat = HeightfieldMaterial(maps, device)
    h, w = mat.resolution
    s2 = cfg.samples_per_axis**2
    samples = texel_samples(
        mat.resolution, cfg.samples_per_axis, cfg.jitter, cfg.seed, mat.device
    )
    wi_t = torch.as_tensor(np.asarray(wi_dirs), dtype=torch.float32, device=mat.device)
    wo_t = torch.as_tensor(np.asarray(wo_dirs), dtype=torch.float32, device=mat.device)
    shadows = [shadow_map(mat, wi, cfg) for wi in wi_t]
    for i_wo in range(wo_t.shape[0]):
        hits = view_hits(mat, samples, wo_t[i_wo], cfg)
        images = np.empty((wi_t.shape[0], h, w, 3), dtype=np.float32)
        for i_wi in range(wi_t.shape[0]):
            vis = lookup_bilinear(shadows[i_wi], mat.uv(hits.xy))[:, 0]
            val = shade(hits, wi_t[i_wi], vis)
            images[i_wi] = val.reshape(h, w, s2, 3).mean(dim=2).cpu().numpy()
        yield i_wo, images
