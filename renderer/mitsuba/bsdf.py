"""Any material of the renderer's interface (``eval(uv, wi, wo, lod) -> rgb``: a NeuMIP checkpoint,
the measured BTF, every SVBRDF baseline) as a Mitsuba 3 BSDF ``neumip``, evaluated by the
project's torch code through Dr.Jit's torch interop, one batched call per wavefront; and the
integrator ``neumip_path`` that gives the camera rays' hits their uv footprints.

Conventions. Mitsuba's BSDF ``eval(si, wo)`` returns f(si.wi, wo) cos(theta_o), with si.wi
towards the viewer and wo towards the light, both in the shading frame (s, t, n). The project's
tangent frame is x along +u, y along +v, z the normal, with wi towards the light and wo towards
the viewer. s is dp/du made orthogonal to n, so x = s; y = t when dp/dv points along t and
y = -t on a mirrored parameterisation (the sign is taken per hit).

Level of detail: on the camera ray's hit, from the hit's uv derivatives (Mitsuba's ray
differentials, via ``si.compute_uv_partials``) through the project's own footprint -> lod
(``lod_mode`` max / mean / aniso, as the demo renderer). Secondary bounces have no
differentials and read lod 0, the unfiltered material: unbiased, and their noise averages out.

Sampling (``sampling``): ``cosine`` (cosine-weighted hemisphere), or ``lobe``: a mixture of
cosine sampling and a GGX lobe around the mirror direction, the lobe's roughness fitted to the
material when the BSDF is built (:func:`fit_lobe_alpha`: the material probed at random texels and
views; an analytic proxy of the lobe, as Zeltner et al. 2024 sample their neural materials).
``sample`` and ``pdf`` are exact for the mixture's density, so either choice is unbiased; the
lobe reduces variance on glossy materials.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import drjit as dr
import mitsuba as mi
import torch

from renderer.materials import Material
from renderer.mitsuba.render import DEMO_MAX_DEPTH
from renderer.render import RenderSettings, eval_footprint

#: Share of cosine sampling in the ``lobe`` mixture (keeps every direction reachable, so the
#: diffuse part and lobes the proxy misses are still sampled).
LOBE_COSINE_SHARE = 0.3


@dataclass
class Registered:
    material: Material
    settings: RenderSettings
    sampling: str
    alpha: float


_MATERIALS: dict[str, Registered] = {}
_ids = itertools.count()


@torch.no_grad()
def fit_lobe_alpha(
    material: Any, n_texels: int = 32, n_views: int = 4, grid: int = 64, seed: int = 0, device: str = "cpu"
) -> float:
    """GGX roughness of the material's average lobe: for random texels and views, the material's
    luminance over a grid of cosine-distributed light directions (so that the luminance is each
    direction's weight in the reflected light), and the weighted median of the half-vector's
    slope tan(theta_h), which is alpha for a GGX lobe (its slopes have P(|s| < r) =
    r^2 / (alpha^2 + r^2); the mean of s^2, LEAN's measure, diverges for GGX). Clamped to
    [0.02, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = (torch.arange(grid) + 0.5) / grid
    r, phi = torch.sqrt(t)[:, None], 2 * math.pi * t[None, :]
    x, y = (r * torch.cos(phi)).flatten(), (r * torch.sin(phi)).flatten()  # uniform on the disk
    wi = torch.stack([x, y, (1 - x * x - y * y).clamp_min(1e-6).sqrt()], 1)  # cosine-distributed
    weights, slopes = [], []
    for _ in range(n_views):
        theta = torch.rand((), generator=g) * 1.1
        ph = torch.rand((), generator=g) * 2 * math.pi
        wo = torch.stack(
            [torch.sin(theta) * torch.cos(ph), torch.sin(theta) * torch.sin(ph), torch.cos(theta)]
        )
        uv = torch.rand(n_texels, 1, 2, generator=g).expand(n_texels, wi.shape[0], 2).reshape(-1, 2)
        wi_all = wi.repeat(n_texels, 1)
        rgb = material.eval(uv.to(device), wi_all.to(device), wo.expand_as(wi_all).to(device),
                            torch.zeros(uv.shape[0], device=device)).cpu()
        h = torch.nn.functional.normalize(wi_all + wo, dim=1)
        weights.append(rgb.mean(1).clamp_min(0))
        slopes.append((h[:, 0] ** 2 + h[:, 1] ** 2).sqrt() / h[:, 2].clamp_min(1e-3))
    w, s = torch.cat(weights), torch.cat(slopes)
    if float(w.sum()) <= 0:
        return 1.0
    order = torch.argsort(s)
    cdf = torch.cumsum(w[order], 0)
    median = float(s[order][torch.searchsorted(cdf, cdf[-1] / 2).clamp(max=len(s) - 1)])
    return float(min(max(median, 0.02), 1.0))


def register_named(key: str, material: Material, lod_mode: str = "max", sampling: str = "cosine") -> None:
    """Make a project material available to ``<bsdf type="neumip">`` entries whose
    ``material_id`` is ``key`` (XML scenes name their materials this way)."""
    if sampling not in ("cosine", "lobe"):
        raise ValueError(f"sampling must be cosine or lobe, got {sampling!r}")
    device = "cuda" if mi.variant().startswith("cuda") else "cpu"  # where Dr.Jit hands torch its arrays
    alpha = fit_lobe_alpha(material, device=device) if sampling == "lobe" else 1.0
    _MATERIALS[key] = Registered(material, RenderSettings(lod_mode=lod_mode, progress=False), sampling, alpha)


def registered_names() -> set[str]:
    """The material_ids a ``neumip`` BSDF may name now."""
    return set(_MATERIALS)


def material_bsdf(material: Material, lod_mode: str = "max", sampling: str = "cosine") -> dict[str, Any]:
    """A Mitsuba scene-dict entry ``{"type": "neumip", ...}`` for a project material (its
    resolution and levels turn the hit's uv footprint into lods)."""
    key = f"_material{next(_ids)}"
    register_named(key, material, lod_mode, sampling)
    return {"type": "neumip", "material_id": key}


def _local_to_project(v: mi.Vector3f, flip_y: mi.Bool) -> mi.Vector3f:
    return mi.Vector3f(v.x, dr.select(flip_y, -v.y, v.y), v.z)


class ProjectBSDF(mi.BSDF):
    """The Mitsuba BSDF of one registered project material."""

    def __init__(self, props: mi.Properties) -> None:
        mi.BSDF.__init__(self, props)
        key = props.get("material_id", "")
        if key not in _MATERIALS:
            raise ValueError(
                f"neumip BSDF: unknown material_id {key!r}; register it (register_named(), or "
                f"neumip-mitsuba --material {key}=SPEC) or build the entry with material_bsdf()"
            )
        reg = _MATERIALS[key]
        self.material, self.settings = reg.material, reg.settings
        self.sampling, self.alpha = reg.sampling, reg.alpha
        self.lobe = mi.MicrofacetDistribution(mi.MicrofacetType.GGX, reg.alpha, False)
        flags = (
            mi.BSDFFlags.GlossyReflection
            | mi.BSDFFlags.DiffuseReflection
            | mi.BSDFFlags.FrontSide
            | mi.BSDFFlags.SpatiallyVarying
        )
        self.m_components = [flags]
        self.m_flags = flags

    def _query(self, si: mi.SurfaceInteraction3f, wo: mi.Vector3f) -> mi.Color3f:
        """The material's value f (no cosine) for the hit ``si`` and light direction ``wo``."""
        flip_y = dr.dot(si.dp_dv, si.sh_frame.t) < 0
        light = _local_to_project(wo, flip_y)
        view = _local_to_project(si.wi, flip_y)
        finite = (
            dr.isfinite(si.duv_dx.x)
            & dr.isfinite(si.duv_dx.y)
            & dr.isfinite(si.duv_dy.x)
            & dr.isfinite(si.duv_dy.y)
        )
        duv_dx = dr.select(finite, si.duv_dx, mi.Vector2f(0.0))
        duv_dy = dr.select(finite, si.duv_dy, mi.Vector2f(0.0))
        material, settings = self.material, self.settings

        @dr.wrap(source="drjit", target="torch")
        def project_eval(u, v, lx, ly, lz, vx, vy, vz, dxu, dxv, dyu, dyv):
            uv = torch.stack([u, v], 1)
            wi = torch.nn.functional.normalize(torch.stack([lx, ly, lz], 1), dim=1)
            wo_t = torch.nn.functional.normalize(torch.stack([vx, vy, vz], 1), dim=1)
            dx, dy = torch.stack([dxu, dxv], 1), torch.stack([dyu, dyv], 1)
            with torch.no_grad():
                rgb = eval_footprint(material, uv, wi, wo_t, dx, dy, settings)
            return rgb[:, 0].contiguous(), rgb[:, 1].contiguous(), rgb[:, 2].contiguous()

        r, g, b = project_eval(
            si.uv.x,
            si.uv.y,
            light.x,
            light.y,
            light.z,
            view.x,
            view.y,
            view.z,
            duv_dx.x,
            duv_dx.y,
            duv_dy.x,
            duv_dy.y,
        )
        return mi.Color3f(r, g, b)

    def eval(self, ctx, si, wo, active=True):
        cos_o = mi.Frame3f.cos_theta(wo)
        ok = active & (cos_o > 0) & (mi.Frame3f.cos_theta(si.wi) > 0)
        value = self._query(si, dr.select(ok, wo, mi.Vector3f(0, 0, 1)))
        return dr.select(ok, value * cos_o, 0.0)

    def pdf(self, ctx, si, wo, active=True):
        ok = active & (mi.Frame3f.cos_theta(wo) > 0) & (mi.Frame3f.cos_theta(si.wi) > 0)
        cosine = mi.warp.square_to_cosine_hemisphere_pdf(wo)
        if self.sampling == "cosine":
            return dr.select(ok, cosine, 0.0)
        h = dr.normalize(wo + si.wi)
        lobe = self.lobe.pdf(si.wi, h) / (4 * dr.abs(dr.dot(wo, h)))
        return dr.select(ok, LOBE_COSINE_SHARE * cosine + (1 - LOBE_COSINE_SHARE) * lobe, 0.0)

    def eval_pdf(self, ctx, si, wo, active=True):
        return self.eval(ctx, si, wo, active), self.pdf(ctx, si, wo, active)

    def sample(self, ctx, si, sample1, sample2, active=True):
        bs = dr.zeros(mi.BSDFSample3f)
        bs.wo = mi.warp.square_to_cosine_hemisphere(sample2)
        if self.sampling == "lobe":
            pick_lobe = sample1 >= LOBE_COSINE_SHARE
            h, _ = self.lobe.sample(si.wi, sample2)
            bs.wo = dr.select(pick_lobe, mi.reflect(si.wi, h), bs.wo)
        bs.pdf = self.pdf(ctx, si, bs.wo, active)
        bs.eta = 1.0
        bs.sampled_type = mi.UInt32(+mi.BSDFFlags.GlossyReflection)
        bs.sampled_component = mi.UInt32(0)
        value = self.eval(ctx, si, bs.wo, active)
        return bs, dr.select(bs.pdf > 0, value / bs.pdf, 0.0)

    def to_string(self) -> str:
        return f"ProjectBSDF[{getattr(self.material, 'name', type(self.material).__name__)}]"


def _mis(a: mi.Float, b: mi.Float) -> mi.Float:
    """Power heuristic weight of a strategy with pdf a against one with pdf b."""
    a2 = a * a
    return dr.detach(dr.select(a2 > 0, a2 / (a2 + b * b), 0.0))


class FootprintPathIntegrator(mi.SamplingIntegrator):
    """A unidirectional path tracer (emitter sampling + BSDF sampling, MIS) whose camera-ray hits
    carry their uv derivatives, so that project materials filter by the pixel's footprint.

    ``max_depth`` and ``rr_depth`` mean what they mean for Mitsuba's own ``path`` integrator (so
    that a scene renders the same with either): the camera ray is the first segment, and
    ``max_depth`` is the longest path in segments: 1 shows only the emitters seen directly, 2 adds
    direct light, 3 one indirect bounce; 0 renders black and -1 is unlimited (paths end by Russian
    roulette, which starts once a path has ``rr_depth`` segments). The default, 4 (two bounces of
    indirect light), is the demo's.

    One departure in the estimator, not in the image it converges to: on a path's last scattering
    vertex, where Mitsuba traces a BSDF sample only to collect the emitters it hits, a BSDF without
    delta components takes all of the emitter sample's light (MIS weight 1) and traces nothing:
    one evaluation of a neural material fewer per path. BSDFs with delta components (Mitsuba's
    mirrors, glass, plastic's coat) still trace it, since only that sample sees their reflections.
    """

    def __init__(self, props: mi.Properties) -> None:
        mi.SamplingIntegrator.__init__(self, props)
        self.max_depth = props.get("max_depth", DEMO_MAX_DEPTH)
        if self.max_depth < -1:
            raise ValueError(f"neumip_path: max_depth {self.max_depth}: must be -1 (unlimited) or >= 0")
        self.rr_depth = props.get("rr_depth", 5)
        if self.rr_depth < 1:
            raise ValueError(f"neumip_path: rr_depth {self.rr_depth}: must be >= 1")
        self.footprint_scale = props.get("footprint_scale", 1.0)
        """Camera footprints are scaled by this (1: one pixel, the project renderer's)."""

    def _continues(self, depth: int) -> bool:
        """Whether a path may go on past its vertex ``depth`` (0: the camera ray's hit, which ends
        the first segment), that is, have depth + 2 segments or more."""
        return self.max_depth == -1 or depth + 1 < self.max_depth

    def sample(self, scene, sampler, ray, medium=None, active=True):
        if self.max_depth == 0:
            return mi.Spectrum(0.0), mi.Bool(False), []
        if not isinstance(ray, mi.RayDifferential3f):  # (converting one would drop its differentials)
            ray = mi.RayDifferential3f(ray)
        ctx = mi.BSDFContext()
        result = mi.Spectrum(0.0)
        throughput = mi.Spectrum(1.0)
        eta = mi.Float(1.0)
        active = mi.Bool(active)
        prev_si = dr.zeros(mi.SurfaceInteraction3f)
        prev_pdf = mi.Float(1.0)
        prev_delta = mi.Bool(True)
        depth = 0  # the current vertex, as Mitsuba counts them: 0 is the camera ray's hit
        while True:
            si = scene.ray_intersect(ray, active)
            if depth == 0:
                # Mitsuba scales camera differentials by 1 / sqrt(spp); the project's lod is the
                # whole pixel's footprint (as the demo renderer's), so the scale is undone.
                pixel_ray = mi.RayDifferential3f(ray)
                pixel_ray.o_x, pixel_ray.o_y, pixel_ray.d_x, pixel_ray.d_y = (
                    ray.o_x,
                    ray.o_y,
                    ray.d_x,
                    ray.d_y,
                )
                pixel_ray.has_differentials = ray.has_differentials
                pixel_ray.scale_differential(self.footprint_scale * math.sqrt(sampler.sample_count()))
                si.compute_uv_partials(pixel_ray)
                valid = active & (si.is_valid() | (scene.environment() is not None))  # the alpha
            # emitters hit by the previous BSDF sample (or the camera)
            ds = mi.DirectionSample3f(scene, si, prev_si)
            em_pdf = dr.select(prev_delta, 0.0, scene.pdf_emitter_direction(prev_si, ds, ~prev_delta))
            emitter = si.emitter(scene)
            result += (
                throughput * dr.select(prev_delta, 1.0, _mis(prev_pdf, em_pdf)) * emitter.eval(si, active)
            )
            active &= si.is_valid()
            if not self._continues(depth) or not dr.any(active):
                break
            bsdf = si.bsdf(ray)
            flags = bsdf.flags()
            # The last scattering vertex of a path without delta components keeps the emitter
            # sample's whole light and ends (see the class's docstring).
            ends_here = mi.Bool(False)
            if not self._continues(depth + 1):
                ends_here = active & ~mi.has_flag(flags, mi.BSDFFlags.Delta)
            # emitter sampling
            active_em = active & mi.has_flag(flags, mi.BSDFFlags.Smooth)
            ds, em_weight = scene.sample_emitter_direction(si, sampler.next_2d(active), True, active_em)
            wo = si.to_local(ds.d)
            f, bsdf_pdf = bsdf.eval_pdf(ctx, si, wo, active_em & (ds.pdf != 0))
            w_em = dr.select(ds.delta | ends_here, 1.0, _mis(ds.pdf, bsdf_pdf))
            result += dr.select(active_em, throughput * f * em_weight * w_em, 0.0)
            active &= ~ends_here
            if not dr.any(active):
                break
            # BSDF sampling
            bs, weight = bsdf.sample(ctx, si, sampler.next_1d(active), sampler.next_2d(active), active)
            throughput *= weight
            eta *= bs.eta
            ray = mi.RayDifferential3f(si.spawn_ray(si.to_world(bs.wo)))
            prev_si, prev_pdf = si, bs.pdf
            prev_delta = mi.has_flag(bs.sampled_type, mi.BSDFFlags.Delta)
            depth += 1
            # Russian roulette, as Mitsuba's: continue with probability q (the throughput's
            # largest channel, at most 0.95) once the path has rr_depth segments, weighted 1 / q.
            throughput_max = dr.max(throughput)
            active &= throughput_max != 0
            if depth >= self.rr_depth:
                q = dr.minimum(throughput_max * eta * eta, 0.95)
                throughput = dr.select(active, throughput / dr.select(active, q, 1.0), 0.0)
                active &= sampler.next_1d(active) < q
        # Without symbolic calls, the emitters' eval writes its result by scatters; they must run
        # before the film's own scatter reads it (Dr.Jit aborts on a "dirty variable" otherwise).
        dr.eval(result, valid)
        return result, valid, []

    def to_string(self) -> str:
        return f"FootprintPathIntegrator[max_depth={self.max_depth}, rr_depth={self.rr_depth}]"


def register() -> None:
    """Register ``neumip`` (BSDF) and ``neumip_path`` (integrator) with Mitsuba (idempotent)."""
    mi.register_bsdf("neumip", lambda props: ProjectBSDF(props))
    mi.register_integrator("neumip_path", lambda props: FootprintPathIntegrator(props))
