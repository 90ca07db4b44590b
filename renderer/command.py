"""What ``neumip-render`` does, as a library function: build the scene and materials, render,
write linear EXR + tone-mapped PNG, and (with ``compare``) the sheet against the reference."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neumip.checkpoint import training_data_path
from plumbing.atomic import atomic_path, check_output_dir
from plumbing.config_checks import require
from plumbing.resources import check_device, check_memory
from renderer.baselines import BaselineConfig, SVBRDFPyramidMaterial
from renderer.material_specs import OPENERS, open_material, reference_material
from renderer.materials import NeuMIPMaterial
from renderer.output import comparison_sheet, scores_markdown, write_exr, write_png
from renderer.render import RenderSettings, render
from renderer.scene_config import SceneConfig, build_scene

#: The command's method names: every material spec kind but constant.
MATERIALS = tuple(k for k in OPENERS if k != "constant")


@dataclass
class RenderCommandConfig:
    """Options of ``neumip-render`` (conf/neumip_render.yaml)."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    method: str = "neumip"
    """What to render: neumip, measured (the BTF file), svbrdf (exact level 0) or an SVBRDF
    mipmapping baseline (naive, gaussian, toksvig, lean, mipnet, fit). Named ``method`` because
    ``material`` is btf-generate's config group."""
    checkpoint: str | None = None
    btf: str | None = None
    """The BTF file (measured, svbrdf, baselines, reference); default: the one the checkpoint
    names."""
    compare: Any = field(default_factory=list)
    """Methods beside the reference in one sheet: a list ``[neumip,lean]``, one name, or a quoted
    comma list ``'neumip,lean'``."""
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    width: int = 512
    height: int = 512
    reference_spp: int = 4
    """Reference: reference_spp^2 stratified samples per pixel of the level-0 material."""
    out: str = "outputs/render/plane"
    settings: RenderSettings = field(default_factory=RenderSettings)

    def __post_init__(self) -> None:
        if isinstance(self.compare, str):
            self.compare = [m.strip() for m in self.compare.split(",") if m.strip()]
        self.compare = [str(m) for m in self.compare]
        require(self.width >= 1 and self.height >= 1, "width x height", (self.width, self.height),
                ">= 1 each")
        require(self.reference_spp >= 1, "reference_spp", self.reference_spp, ">= 1")
        for name in list(self.compare) or [self.method]:
            require(name in MATERIALS, "compare" if self.compare else "method", name,
                    f"one of {', '.join(MATERIALS)}")


def check_inputs(cfg: RenderCommandConfig) -> None:
    """Refuse, before anything is opened or rendered, devices this machine lacks (the render's, and
    MIPNet's when it runs) and image sizes its memory cannot hold: every image rendered is kept
    (for the sheet) and the EXR writer copies one, all W x H x 3 float32; one of them is on the
    render device."""
    check_device(cfg.settings.device, "settings.device")
    methods = list(cfg.compare) or [cfg.method]
    if "mipnet" in methods:
        check_device(cfg.baselines.device, "baselines.device")
    n_images = len(methods) + (1 if cfg.compare else 0)
    image = cfg.width * cfg.height * 3 * 4
    size = f"width x height={cfg.width} x {cfg.height}"
    check_memory((n_images + 1) * image, size, f"{n_images} image(s) of {cfg.width} x {cfg.height} float32 "
                 "RGB pixels and a copy to write one")
    if cfg.settings.device != "cpu":
        check_memory(image, size, "the image being rendered", cfg.settings.device)


def data_path(cfg: RenderCommandConfig, neumip: NeuMIPMaterial | None) -> str:
    """The BTF file of the file-based methods and the reference: ``btf``, else the checkpoint's."""
    if cfg.btf:
        return cfg.btf
    if neumip is not None:
        return str(training_data_path(neumip.checkpoint, neumip.model.metadata, "btf=FILE"))
    raise ValueError("this material needs a BTF file: pass btf=FILE (or a checkpoint that names one)")


def method_spec(name: str, cfg: RenderCommandConfig, data: str | None) -> str:
    """The material spec (``renderer.material_specs``) of one of the command's method names."""
    if name == "neumip":
        if not cfg.checkpoint:
            raise ValueError("material neumip needs checkpoint=PATH")
        return f"neumip:{cfg.checkpoint}"
    if name not in MATERIALS:
        raise ValueError(f"unknown material {name!r}; known: {', '.join(MATERIALS)}")
    if data is None:
        raise ValueError("this material needs a BTF file: pass btf=FILE (or a checkpoint that names one)")
    return f"{name}:{data}"


def run_render(cfg: RenderCommandConfig) -> dict[str, Path]:
    """Render and write the outputs; returns their paths by name."""
    check_inputs(cfg)
    out = check_output_dir(cfg.out)  # before any image is rendered
    scene = build_scene(cfg.scene, cfg.width, cfg.height)
    dev = cfg.settings.device
    written: dict[str, Path] = {}
    neumip = open_material(method_spec("neumip", cfg, None), dev) if cfg.checkpoint else None
    methods = list(cfg.compare) or [cfg.method]  # names checked when the config was built
    needs_file = bool(cfg.compare) or cfg.method != "neumip"
    data = data_path(cfg, neumip) if needs_file else None  # found (and fingerprinted) once
    # every material opened (and refused) before the first image is written
    materials = {name: neumip if name == "neumip" and neumip else
                 open_material(method_spec(name, cfg, data), dev, cfg.baselines) for name in methods}
    ref_mat = reference_material(data, dev) if cfg.compare else None
    images = {}
    for name, material in materials.items():
        if isinstance(material, SVBRDFPyramidMaterial):
            print(f"{name}: pyramid of {material.n_levels} levels built in {material.build_seconds:.1f} s")
        t0 = time.perf_counter()
        img, times = render(scene, material, cfg.settings, desc=name)
        print(f"{name}: {cfg.width}x{cfg.height} in {time.perf_counter() - t0:.2f} s "
              f"(intersection {times.intersect:.2f} s, material {times.material:.2f} s, "
              f"shading {times.shade:.2f} s)")
        images[name] = img
        written[f"{name}.exr"] = write_exr(out / f"{name}.exr", img)
        written[f"{name}.png"] = write_png(out / f"{name}.png", img)
    if ref_mat is not None:
        t0 = time.perf_counter()
        ref, _ = render(scene, ref_mat, cfg.settings, samples_per_axis=cfg.reference_spp, fixed_lod=0.0,
                        desc="reference")
        print(f"reference ({cfg.reference_spp ** 2} samples per pixel of the level-0 "
              f"{'SVBRDF' if ref_mat.name == 'svbrdf' else 'BTF'}): {time.perf_counter() - t0:.1f} s")
        written["reference.exr"] = write_exr(out / "reference.exr", ref)
        written["reference.png"] = write_png(out / "reference.png", ref)
        title = f"{cfg.scene.name}, {cfg.width}x{cfg.height}, reference {cfg.reference_spp ** 2} spp"
        written["compare.png"], scores = comparison_sheet(ref, images, out / "compare.png", title)
        md = scores_markdown(scores, title)
        with atomic_path(out / "compare.md") as tmp:
            tmp.write_text(md)
        written["compare.md"] = out / "compare.md"
        print(md)
    return written
