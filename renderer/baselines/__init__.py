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
from dataclasses import dataclass, field

from btf_data.svbrdf import SVBRDFMaps
from renderer.baselines.fit import FitConfig, fit_pyramid
from renderer.baselines.gaussian import gaussian_pyramid
from renderer.baselines.lean import lean_pyramid
from renderer.baselines.material import SVBRDFPyramidMaterial
from renderer.baselines.mipnet import mipnet_pyramid
from renderer.baselines.naive import naive_pyramid
from renderer.baselines.pyramid import SVBRDFPyramid
from renderer.baselines.toksvig import toksvig_pyramid

METHODS = ("naive", "gaussian", "toksvig", "lean", "mipnet", "fit")


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


def build_pyramid(method: str, maps: SVBRDFMaps, cfg: BaselineConfig | None = None) -> SVBRDFPyramid:
    """The named method's pyramid of ``maps``; its build time lands in ``build_seconds``."""
    cfg = cfg or BaselineConfig()
    t0 = time.perf_counter()
    if method == "naive":
        pyramid = naive_pyramid(maps)
    elif method == "gaussian":
        pyramid = gaussian_pyramid(maps, cfg.gaussian_sigma_scale)
    elif method == "toksvig":
        pyramid = toksvig_pyramid(maps)
    elif method == "lean":
        pyramid = lean_pyramid(maps)
    elif method == "mipnet":
        kw = {"checkpoint": cfg.mipnet_checkpoint} if cfg.mipnet_checkpoint else {}
        pyramid = mipnet_pyramid(maps, device=cfg.device, **kw)
    elif method == "fit":
        pyramid = fit_pyramid(maps, cfg.fit)
    else:
        raise ValueError(f"unknown SVBRDF method {method!r}; known: {', '.join(METHODS)}")
    pyramid.build_seconds = time.perf_counter() - t0
    return pyramid


__all__ = ["METHODS", "BaselineConfig", "FitConfig", "SVBRDFPyramid", "SVBRDFPyramidMaterial",
           "build_pyramid"]
