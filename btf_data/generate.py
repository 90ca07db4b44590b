"""Make a synthetic BTF file: material maps -> rendered BTF -> filtered pyramid, in one pass."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from btf_data.btf_file import BTFWriter
from btf_data.btf_render import RenderConfig, render_btf
from btf_data.directions import direction_set, random_directions, split_by_direction, split_pairs
from btf_data.material_maps import MapsConfig, maps_material
from btf_data.procedural import MATERIALS, default_params, procedural_maps
from btf_data.pyramid import check_sigma_scale
from btf_data.svbrdf import SVBRDFMaps
from plumbing.atomic import check_output_file
from plumbing.config_checks import is_power_of_two, require
from plumbing.resources import check_device, check_memory
from plumbing.thread_share import adjust_threads


@dataclass
class MaterialConfig:
    """Which material to make (conf/material/<name>.yaml). Unset (null) fields keep the
    procedural pattern's defaults."""

    name: str = "weave"
    """A procedural material (weave, bumps, tiles, scratched_metal, leather, brushed_metal,
    bumps_flat), or with ``kind: maps`` any name the user gives their own material."""
    kind: str = "procedural"
    """``procedural`` (``name`` picks the pattern) or ``maps`` (the user's texture maps;
    ``material=maps`` sets it, and ``material.name=brick`` names the result)."""
    seed: int | None = None
    height_scale: float | None = None
    roughness: float | None = None
    cells: int | None = None
    displaced: bool | None = None
    extra: dict = field(default_factory=dict)
    maps: MapsConfig = field(default_factory=MapsConfig)
    """Only for name=maps: the user's texture maps."""


@dataclass
class PyramidConfig:
    """Filtered ground truth (conf/pyramid/*.yaml)."""

    filter: str = "box"
    """``box`` (exact 2x2 reductions) or ``gaussian``."""
    sigma_scale: float = 0.5
    """Gaussian only: sigma_k = sigma_scale * 2^k level-0 texels (at least 1/12)."""

    def __post_init__(self) -> None:
        check_sigma_scale(self.sigma_scale, "pyramid.sigma_scale")


@dataclass
class RandomDirectionsConfig:
    """``directions: random``: views and lights drawn on their own (conf/generate.yaml)."""

    views: int = 48
    lights: int = 48
    max_theta: float = 84.0
    """Largest elevation (degrees), as the official data's projected-disk sampling."""
    seed: int = 0
    """Views use this seed, lights seed + 1."""

    def __post_init__(self) -> None:
        require(self.views >= 1 and self.lights >= 1, "random_directions.views/lights",
                (self.views, self.lights), ">= 1")
        require(0.0 < self.max_theta < 90.0, "random_directions.max_theta", self.max_theta, "in (0, 90)")


@dataclass
class GenerateConfig:
    """Options of ``btf-generate`` (conf/generate.yaml)."""

    material: MaterialConfig = field(default_factory=MaterialConfig)
    resolution: int = 128
    """Level-0 resolution (square); a power of two gives a pyramid down to 1 x 1."""
    directions: str = "medium"
    """Direction set used for both wo and wi (tiny, small, medium, dense, ubo2014), or
    ``random``: views and lights drawn continuously (``random_directions``), whole directions held
    out."""
    random_directions: RandomDirectionsConfig = field(default_factory=RandomDirectionsConfig)
    held_out_fraction: float = 0.1
    """Share of the (wo, wi) pairs (random: of the views and of the lights) held out for
    evaluation, in (0, 1): training evaluates on them and refuses a file without any."""
    split_seed: int = 0
    out: str = "outputs/data/${material.name}.h5"
    """The file; outputs/data/ is where ``neumip-train data=<name>`` looks for it."""
    render: RenderConfig = field(default_factory=RenderConfig)
    pyramid: PyramidConfig = field(default_factory=PyramidConfig)
    dtype: str = "float16"
    compression: str | None = "gzip"
    device: str = "cpu"
    progress: bool = True
    preview: str | None = None
    """Also write a labelled preview sheet (PNG) here: rows of view/light pairs, columns of levels."""
    preview_exposure: float = 1.0
    """Preview values are multiplied by this before tone mapping."""

    def __post_init__(self) -> None:
        require(is_power_of_two(self.resolution), "resolution", self.resolution,
                "a power of two >= 2 (training needs the full pyramid), e.g. 128")
        require(0.0 < self.held_out_fraction < 1.0, "held_out_fraction", self.held_out_fraction,
                "in (0, 1): training evaluates on the held-out pairs, e.g. 0.1")
        require(self.dtype in ("float16", "float32"), "dtype", self.dtype, "float16 or float32")


def material_maps(cfg: MaterialConfig, resolution: int) -> SVBRDFMaps:
    """The SVBRDF maps the config names, at ``resolution``."""
    if cfg.kind == "maps" or cfg.name == "maps":
        return maps_material(cfg.maps, resolution)
    if cfg.kind != "procedural":
        raise ValueError(f"material.kind={cfg.kind!r}: must be procedural or maps")
    if cfg.name not in MATERIALS:
        known = ", ".join(sorted(MATERIALS) + ["maps"])
        raise ValueError(f"unknown material {cfg.name!r}; known: {known}")
    params = default_params(cfg.name)
    for key in ("seed", "height_scale", "roughness", "cells", "displaced"):
        value = getattr(cfg, key)
        if value is not None:
            setattr(params, key, value)
    params.extra = dict(cfg.extra)
    return procedural_maps(cfg.name, resolution, params)


def generate(cfg: GenerateConfig) -> tuple[Path, float]:
    """Render the configured material to cfg.out. Returns (path, seconds)."""
    if cfg.resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {cfg.resolution}")
    t0 = time.perf_counter()
    check_output_file(cfg.out)  # before the work: a bad location costs nothing
    if cfg.preview:
        check_output_file(cfg.preview)
    check_device(cfg.device)
    if cfg.directions == "random":
        rd = cfg.random_directions
        wo_dirs = random_directions(rd.views, rd.max_theta, rd.seed)
        wi_dirs = random_directions(rd.lights, rd.max_theta, rd.seed + 1)
        split = split_by_direction(len(wo_dirs), len(wi_dirs), cfg.held_out_fraction, cfg.split_seed)
    else:
        wo_dirs = wi_dirs = direction_set(cfg.directions)
        split = split_pairs(len(wo_dirs), len(wi_dirs), cfg.held_out_fraction, cfg.split_seed)
    r, n_wi = cfg.resolution, len(wi_dirs)
    check_memory(n_wi * r * r * 3 * (4 + 8), f"resolution={r}",
                 f"one view's {n_wi} images of {r} x {r} texels, in float32 and in float64 for the pyramid")
    maps = material_maps(cfg.material, cfg.resolution)
    out = Path(cfg.out)
    writer = BTFWriter(
        out,
        wo_dirs=wo_dirs,
        wi_dirs=wi_dirs,
        resolution=(cfg.resolution, cfg.resolution),
        split=split,
        name=cfg.material.name,
        source="synthetic",
        filter=cfg.pyramid.filter,
        sigma_scale=cfg.pyramid.sigma_scale,
        dtype=cfg.dtype,
        compression=cfg.compression,
        svbrdf=maps,
        config=asdict(cfg),
    )
    with writer, tqdm(total=len(wo_dirs) * len(wi_dirs), desc=f"render {cfg.material.name}", unit="img",
                      disable=not cfg.progress) as bar:
        for i_wo, images in render_btf(maps, wo_dirs, wi_dirs, cfg.render, cfg.device):
            writer.write(i_wo, images)
            bar.update(len(wi_dirs))
            adjust_threads()
    return out, time.perf_counter() - t0
