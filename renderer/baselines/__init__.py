"""SVBRDF mipmapping baselines: each builds a pyramid of an SVBRDF (normal map + roughness +
albedo) so that a coarse level, shaded, looks like the average of the fine level's shading.

``build_pyramid(method, maps)`` is the one entry point; every method returns an
:class:`~renderer.baselines.pyramid.SVBRDFPyramid` that
:class:`~renderer.baselines.material.SVBRDFPyramidMaterial` renders through the renderer's
material interface, and that ``renderer.baselines.shading`` measures against the box average of
level-0 shading (a normal-mapped plane's ``pyramid/<k>``).

| method | how coarse levels are made |
|---|---|
| naive | box average of normals (renormalised), alpha, albedo |
| gaussian | the same after the ground truth's Gaussian low-pass |
| toksvig | naive, alpha widened by the averaged normal's length (Toksvig 2005) |
| lean | box average of slope moments, covariance -> anisotropic GGX tensor (Olano & Baker 2010) |
| mipnet | the trained H_A / H_B cascade of Gauthier et al. 2022 (shipped weights) |
| fit | Adam on every level's normal, tensor and albedo against the reference, from LEAN |
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from btf_data.pyramid import check_sigma_scale
from btf_data.svbrdf import SVBRDFMaps
from renderer.baselines.fit import FitConfig, fit_pyramid
from renderer.baselines.gaussian import gaussian_pyramid
from renderer.baselines.lean import lean_pyramid
from renderer.baselines.material import SVBRDFPyramidMaterial
from renderer.baselines.mipnet import mipnet_pyramid
from renderer.baselines.naive import naive_pyramid
from renderer.baselines.pyramid import SVBRDFPyramid
from renderer.baselines.toksvig import toksvig_pyramid


@dataclass
class BaselineConfig:
    """Options of the methods that have any (conf/neumip_render.yaml: baselines)."""

    gaussian_sigma_scale: float = 0.5
    """gaussian: sigma_k = gaussian_sigma_scale * 2^k level-0 texels (as ``pyramid=gaussian``)."""
    mipnet_checkpoint: str | None = None
    """mipnet: weights to use; None: the shipped renderer/baselines/weights/mipnet_cpu.safetensors."""
    fit: FitConfig = field(default_factory=FitConfig)
    device: str = "cpu"
    """Where MIPNet runs."""

    def __post_init__(self) -> None:
        check_sigma_scale(self.gaussian_sigma_scale, "baselines.gaussian_sigma_scale")


def _mipnet(maps: SVBRDFMaps, cfg: BaselineConfig) -> SVBRDFPyramid:
    kw = {"checkpoint": cfg.mipnet_checkpoint} if cfg.mipnet_checkpoint else {}
    return mipnet_pyramid(maps, device=cfg.device, **kw)


#: Each method and how it builds its pyramid from the maps and the options. A new method: its
#: module here, one row, and its options (if any) in BaselineConfig; the render command, Mitsuba
#: specs and the suite (its cell keys included) read this table.
BUILDERS: dict[str, Callable[[SVBRDFMaps, BaselineConfig], SVBRDFPyramid]] = {
    "naive": lambda maps, cfg: naive_pyramid(maps),
    "gaussian": lambda maps, cfg: gaussian_pyramid(maps, cfg.gaussian_sigma_scale),
    "toksvig": lambda maps, cfg: toksvig_pyramid(maps),
    "lean": lambda maps, cfg: lean_pyramid(maps),
    "mipnet": _mipnet,
    "fit": lambda maps, cfg: fit_pyramid(maps, cfg.fit),
}
METHODS = tuple(BUILDERS)


def build_pyramid(method: str, maps: SVBRDFMaps, cfg: BaselineConfig | None = None) -> SVBRDFPyramid:
    """The named method's pyramid of ``maps``; its build time lands in ``build_seconds``."""
    if method not in BUILDERS:
        raise ValueError(f"unknown SVBRDF method {method!r}; known: {', '.join(METHODS)}")
    t0 = time.perf_counter()
    pyramid = BUILDERS[method](maps, cfg or BaselineConfig())
    pyramid.build_seconds = time.perf_counter() - t0
    return pyramid


__all__ = ["BUILDERS", "METHODS", "BaselineConfig", "FitConfig", "SVBRDFPyramid", "SVBRDFPyramidMaterial",
           "build_pyramid"]
