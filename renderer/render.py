"""Render a scene with a material: per pixel a camera ray, its hit, uv, tangent frame and
footprint -> lod, light and view in the tangent frame, and BTF(uv, wi, wo, lod) cos(theta_i) E.

lod: the pixel's footprint along the image x and y axes, |duv/dx| and |duv/dy| in level-0
texels, becomes one number by taking the larger (``max``, as OpenGL's isotropic mipmapping:
never aliases, blurs along the short axis at grazing angles) or their geometric mean (``mean``:
sharper at grazing angles, may alias along the long axis); lod = log2(footprint) clamped to
[0, L-1]. ``aniso`` filters as GPU anisotropic filtering does: n = min(max_aniso,
ceil(major / minor)) trilinear probes spaced evenly along the footprint's major axis, each at
the minor axis's lod (that of major / max_aniso when the count is capped), averaged; every
material gets it through the same ``eval``. Points where wi or wo is below the horizon are black,
and so is the background.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from plumbing.config_checks import require
from plumbing.thread_share import adjust_threads
from renderer.camera import PinholeCamera
from renderer.geometry import Cylinder, GroundPlane, Sphere, dot3, uv_derivatives
from renderer.lights import DirectionalLight, PointLight
from renderer.plane_native import native_plane_queries

if TYPE_CHECKING:
    from renderer.materials import Material


@dataclass
class Scene:
    name: str
    shape: GroundPlane | Sphere | Cylinder
    camera: PinholeCamera
    light: DirectionalLight | PointLight


@dataclass
class RenderSettings:
    """How a frame is computed (conf/neumip_render.yaml)."""

    chunk: int = 2**16
    """Pixel samples traced and shaded at once (bounds memory at any resolution)."""
    lod_mode: str = "max"
    """How the footprint's two axes become lookups: ``max`` or ``mean`` (geometric): one
    trilinear lookup; ``aniso``: up to ``max_aniso`` along the major axis, averaged."""
    max_aniso: int = 16
    """``aniso`` only: most probes per pixel (GPU anisotropic filtering's 16x)."""
    device: str = "cpu"
    progress: bool = True
    precision: str = "fp32"
    """How the material is evaluated: ``fp32``, or ``bf16``: its matrix products in bfloat16
    (torch autocast; AMX on CPUs that have it), for NeuMIP's decoders about 1.5x the whole query's
    rate; the frame differs from the fp32 frame by round-off (benchmarks/bench_speed.py measures
    it per material). Lookups and shading stay in float32."""

    def __post_init__(self) -> None:
        require(self.chunk >= 1, "settings.chunk", self.chunk, ">= 1")
        require(self.precision in ("fp32", "bf16"), "settings.precision", self.precision, "fp32 or bf16")
        require(self.lod_mode in ("max", "mean", "aniso"), "settings.lod_mode", self.lod_mode,
                "max, mean or aniso")
        require(self.max_aniso >= 1, "settings.max_aniso", self.max_aniso, ">= 1")


@dataclass
class FrameTimes:
    """Seconds spent in each part of a frame, and how many samples the material was evaluated
    for (those whose ray hit the shape, seen and lit from above)."""

    intersect: float = 0.0
    material: float = 0.0
    shade: float = 0.0
    samples_shaded: int = 0


def footprint_to_lod(duvdx: torch.Tensor, duvdy: torch.Tensor, resolution: int, n_levels: int,
                     mode: str = "max") -> torch.Tensor:
    """lod (N,) from uv derivatives (N, 2) per pixel step, for a material of ``resolution``
    level-0 texels per uv unit and ``n_levels`` levels."""
    fx = (duvdx[:, 0] ** 2 + duvdx[:, 1] ** 2).sqrt() * resolution
    fy = (duvdy[:, 0] ** 2 + duvdy[:, 1] ** 2).sqrt() * resolution
    if mode == "max":
        size = torch.maximum(fx, fy)
    elif mode == "mean":
        size = (fx * fy).sqrt()
    else:
        raise ValueError(f"lod_mode must be 'max' or 'mean', got {mode!r}")
    return torch.log2(size.clamp_min(1e-12)).clamp(0.0, float(n_levels - 1))


@dataclass
class AnisoProbes:
    """Probes of anisotropic lookups: ``uv`` (M, 2) and ``lod`` (M,) of every probe, ``owner``
    (M,) the query each belongs to, and ``weight`` (M, 1) = 1 / its query's probe count."""

    uv: torch.Tensor
    lod: torch.Tensor
    owner: torch.Tensor
    weight: torch.Tensor


def anisotropic_probes(uv: torch.Tensor, duvdx: torch.Tensor, duvdy: torch.Tensor, resolution: int,
                       n_levels: int, max_aniso: int) -> AnisoProbes:
    """Probes for queries at uv (N, 2) with footprint axes duv/dx, duv/dy (N, 2): along the
    longer axis, n = clamp(ceil(major / minor), 1, max_aniso) probes at offsets (i + 0.5) / n - 0.5
    of it, each at the minor axis's lod, log2(max(minor, major / max_aniso) texels) (a capped
    count widens the probes so that they still cover the footprint), clamped to [0, L-1]."""
    lx = (duvdx[:, 0] ** 2 + duvdx[:, 1] ** 2).sqrt()
    ly = (duvdy[:, 0] ** 2 + duvdy[:, 1] ** 2).sqrt()
    x_major = lx >= ly
    axis = torch.where(x_major[:, None], duvdx, duvdy)
    major = torch.maximum(lx, ly) * resolution
    minor = torch.minimum(lx, ly) * resolution
    count = torch.ceil(major / minor.clamp_min(1e-12)).clamp(1, max_aniso).long()
    owner = torch.repeat_interleave(torch.arange(uv.shape[0], device=uv.device), count)
    first = torch.cumsum(count, 0) - count
    i = torch.arange(owner.shape[0], device=uv.device) - first[owner]
    n = count[owner].to(uv.dtype)
    t = (i.to(uv.dtype) + 0.5) / n - 0.5
    width = torch.maximum(minor, major / max_aniso)[owner]
    lod = torch.log2(width.clamp_min(1e-12)).clamp(0.0, float(n_levels - 1))
    return AnisoProbes(uv[owner] + t[:, None] * axis[owner], lod, owner, (1.0 / n)[:, None])


def material_precision(settings: RenderSettings) -> contextlib.AbstractContextManager:
    """The context a material is evaluated in: bfloat16 matrix products for ``precision=bf16``."""
    if settings.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(settings.device).type, dtype=torch.bfloat16)


def eval_footprint(material: Material, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                   duvdx: torch.Tensor, duvdy: torch.Tensor, settings: RenderSettings) -> torch.Tensor:
    """The material (N, 3) filtered over each query's footprint as ``settings.lod_mode`` says;
    footprints are measured in the material's own level-0 texels; float32 (N, 3) whatever the
    precision it was evaluated in."""
    with material_precision(settings):
        return _eval_footprint(material, uv, wi, wo, duvdx, duvdy, settings).float()


def _eval_footprint(material: Material, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                    duvdx: torch.Tensor, duvdy: torch.Tensor, settings: RenderSettings) -> torch.Tensor:
    res, n_levels = material.resolution, material.n_levels
    if settings.lod_mode != "aniso":
        lod = footprint_to_lod(duvdx, duvdy, res, n_levels, settings.lod_mode)
        return material.eval(uv, wi, wo, lod)
    p = anisotropic_probes(uv, duvdx, duvdy, res, n_levels, settings.max_aniso)
    rgb = material.eval(p.uv, wi[p.owner], wo[p.owner], p.lod).float()  # averaged in float32
    out = torch.zeros(uv.shape[0], 3, dtype=rgb.dtype, device=rgb.device)
    return out.index_add_(0, p.owner, rgb * p.weight)


@dataclass
class PixelQueries:
    """What a chunk of pixel samples asks of the material: ``valid`` (N,) the ray hit the shape,
    ``uv`` (N, 2), ``wo`` and ``wi`` (N, 3) unit in the tangent frame, ``irradiance`` (N, 1), and
    the footprint ``duvdx``, ``duvdy`` (N, 2) (None when not asked for)."""

    valid: torch.Tensor
    uv: torch.Tensor
    wo: torch.Tensor
    wi: torch.Tensor
    irradiance: torch.Tensor
    duvdx: torch.Tensor | None
    duvdy: torch.Tensor | None


def pixel_queries(scene: Scene, px: torch.Tensor, py: torch.Tensor, footprint: bool = True,
                  closed_form: bool = True) -> PixelQueries:
    """The queries of pixel samples at px, py (N,): camera rays, their hits, tangent frames and
    footprints. A ground plane seen by the pinhole camera takes :func:`plane_queries`, the same
    numbers in closed form (``closed_form=False``: the general path, for tests)."""
    if closed_form and isinstance(scene.shape, GroundPlane):
        native = native_plane_queries(scene, px, py, footprint)
        return native if native is not None else plane_queries(scene, px, py, footprint)
    o, d, ddx, ddy = scene.camera.rays(px, py)
    hit = scene.shape.intersect(o, d)
    tangent, bitangent, normal = hit.frame()
    wi_w, irradiance = scene.light.incident(hit.p)
    duvdx, duvdy = uv_derivatives(hit, d, ddx, ddy) if footprint else (None, None)
    return PixelQueries(hit.valid, hit.uv, to_tangent_frame(-d, tangent, bitangent, normal),
                        to_tangent_frame(wi_w, tangent, bitangent, normal), irradiance, duvdx, duvdy)


def plane_queries(scene: Scene, px: torch.Tensor, py: torch.Tensor, footprint: bool = True) -> PixelQueries:
    """:func:`pixel_queries` for the ground plane y = h in closed form, one coordinate at a time:
    the tangent frame is the constant (T, B, N) = (x, -z, y), so wo = (-d_x, d_z, -d_y); the hit is
    t = (h - o_y) / d_y; uv = (p_x, -p_z) / s; and a pixel step dd of the ray direction moves the
    hit by dp = t (dd - dd_y / d_y d), so duv = (dp_x, -dp_z) / s (Igehy's differentials, as
    :func:`renderer.geometry.uv_derivatives` solves them for any shape)."""
    cam, plane = scene.camera, scene.shape
    fwd, right, down = cam.basis(px.device)
    scale = cam.pixel_scale
    sx = (px - cam.width / 2.0) * scale
    sy = (py - cam.height / 2.0) * scale
    raw = [fwd[i] + sx * right[i] + sy * down[i] for i in range(3)]
    inv_len = torch.rsqrt(raw[0] * raw[0] + raw[1] * raw[1] + raw[2] * raw[2])
    dx, dy, dz = (r * inv_len for r in raw)
    safe = torch.where(dy.abs() < 1e-6, torch.full_like(dy, -1e-6), dy)
    t = (plane.height - cam.eye[1]) / safe
    valid = (t > 1e-6) & (dy < -1e-6)
    s = plane.texture_size
    uv = torch.stack([(cam.eye[0] + t * dx) / s, -(cam.eye[2] + t * dz) / s], 1)
    wo = torch.stack([-dx, dz, -dy], 1)
    p = torch.stack([cam.eye[0] + t * dx, torch.full_like(dx, plane.height), cam.eye[2] + t * dz], 1)
    wi_w, irradiance = scene.light.incident(p)
    wi = torch.stack([wi_w[:, 0], -wi_w[:, 2], wi_w[:, 1]], 1)
    if not footprint:
        return PixelQueries(valid, uv, wo, wi, irradiance, None, None)
    out = []
    for axis in (right, down):
        a = [scale * float(axis[i]) for i in range(3)]
        along = dx * a[0] + dy * a[1] + dz * a[2]  # d . a
        dd = [(a[i] - d_i * along) * inv_len for i, d_i in enumerate((dx, dy, dz))]
        k = dd[1] / safe
        out.append(torch.stack([t * (dd[0] - k * dx) / s, -t * (dd[2] - k * dz) / s], 1))
    return PixelQueries(valid, uv, wo, wi, irradiance, out[0], out[1])


def to_tangent_frame(v: torch.Tensor, tangent: torch.Tensor, bitangent: torch.Tensor,
                     normal: torch.Tensor) -> torch.Tensor:
    """World vectors v (N, 3) in the tangent frame (T, B, N) (each (N, 3) or (3,)): (N, 3).
    Three dot products rather than a batched 3 x 3 product, which is several times slower."""
    return torch.stack([dot3(v, tangent), dot3(v, bitangent), dot3(v, normal)], 1)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock timings measure it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def render(scene: Scene, material: Material, settings: RenderSettings, samples_per_axis: int = 1,
           fixed_lod: float | None = None, seed: int = 0,
           desc: str = "render") -> tuple[np.ndarray, FrameTimes]:
    """Render ``scene`` with ``material`` (``renderer.materials.Material``: it knows its
    resolution and levels, so footprints become its lods).

    samples_per_axis s: s x s stratified, jittered samples per pixel, averaged (1: the pixel
    centre). fixed_lod: read every sample at this lod instead of its footprint's (the reference
    uses 0 with many samples). Returns the linear image (H, W, 3) float32 and the timings.
    """
    cam = scene.camera
    dev = torch.device(settings.device)
    h, w = cam.height, cam.width
    s = samples_per_axis
    if s < 1:
        raise ValueError(f"samples per axis must be >= 1, got {s}")
    n_samples = h * w * s * s
    # One sample per pixel: each chunk writes all its pixels (zeros where nothing is shaded), so the
    # image needs no zero-fill pass first (5 ms of a 1080p frame); samples add up otherwise.
    image = (torch.empty if s == 1 else torch.zeros)(h * w, 3, dtype=torch.float32, device=dev)
    times = FrameTimes()
    g = torch.Generator().manual_seed(seed)
    with tqdm(total=n_samples, desc=desc, unit="spl", disable=not settings.progress,
              unit_scale=True) as bar:
        for start in range(0, n_samples, settings.chunk):
            adjust_threads()
            idx = torch.arange(start, min(start + settings.chunk, n_samples))
            if s > 1:
                pix, sub = idx // (s * s), idx % (s * s)
                jitter = torch.rand(idx.shape[0], 2, generator=g)
                px = (pix % w).float() + ((sub % s).float() + jitter[:, 0]) / s
                py = (pix // w).float() + ((sub // s).float() + jitter[:, 1]) / s
            else:  # the pixel centres (pixel = sample)
                pix = idx
                px, py = (idx % w).float() + 0.5, (idx // w).float() + 0.5
            px, py, pix = px.to(dev), py.to(dev), pix.to(dev)

            synchronize(dev)
            t0 = time.perf_counter()
            q = pixel_queries(scene, px, py, footprint=fixed_lod is None)
            wo, wi, irradiance = q.wo, q.wi, q.irradiance
            ok = q.valid & (wo[:, 2] > 0) & (wi[:, 2] > 0)
            every = bool(ok.all())  # most chunks of a frame: no copies of the queries then
            sel = None if every else torch.nonzero(ok, as_tuple=True)[0]

            def kept(t: torch.Tensor, sel: torch.Tensor | None = sel) -> torch.Tensor:
                return t if sel is None else t[sel]

            synchronize(dev)
            t1 = time.perf_counter()
            if fixed_lod is None:
                rgb = eval_footprint(material, kept(q.uv), kept(wi), kept(wo), kept(q.duvdx), kept(q.duvdy),
                                     settings)
            else:
                uv_kept = kept(q.uv)
                with material_precision(settings):
                    rgb = material.eval(uv_kept, kept(wi), kept(wo),
                                        torch.full((uv_kept.shape[0],), float(fixed_lod), device=dev)).float()
            synchronize(dev)
            t2 = time.perf_counter()
            radiance = rgb * (kept(wi)[:, 2:3] * kept(irradiance))
            if s == 1 and every:  # one sample per pixel, the chunk's pixels in order
                image[start : start + idx.shape[0]] = radiance
            elif s == 1:
                image[start : start + idx.shape[0]] = 0.0
                image[kept(pix)] = radiance
            else:
                image.index_add_(0, kept(pix), radiance / (s * s))
            synchronize(dev)
            t3 = time.perf_counter()
            times.intersect += t1 - t0
            times.material += t2 - t1
            times.shade += t3 - t2
            times.samples_shaded += idx.shape[0] if sel is None else sel.shape[0]
            bar.update(idx.shape[0])
    return image.reshape(h, w, 3).cpu().numpy(), times


def plane_camera_for_footprint(texels_per_pixel: float, resolution: int, texture_size: float,
                               width: int, height: int, fov_y: float = 40.0) -> PinholeCamera:
    """A camera looking straight down at the ground plane from the height where one pixel at
    the image centre covers ``texels_per_pixel`` level-0 texels (for tests and calibration)."""
    world_per_pixel = texels_per_pixel * texture_size / resolution
    altitude = world_per_pixel * height / (2.0 * math.tan(math.radians(fov_y) / 2.0))
    return PinholeCamera(eye=(0.0, altitude, 0.0), target=(0.0, 0.0, 0.0), up=(0.0, 0.0, -1.0),
                         fov_y=fov_y, width=width, height=height)
