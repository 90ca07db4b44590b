"""Image cells: the plane scene rendered by every method beside the supersampled reference, with
both footprint filters (one isotropic ``max`` lookup, and ``aniso`` probes), PSNR and FLIP, the
reference's own noise floor, and the comparison sheet as PNG."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.suite.cells import Cell, cell_key
from benchmarks.suite.config import BTF_METHODS, SuiteConfig
from benchmarks.suite.quality import MaterialFile, baseline_config
from benchmarks.suite.results import Empty, FrameScore, ImageRun, image_run_from_json
from btf_data.btf_file import file_fingerprint
from renderer.baselines import METHODS as SVBRDF_METHODS
from renderer.material_specs import open_material, reference_material
from renderer.materials import Material
from renderer.output import comparison_sheet, score, write_png
from renderer.render import RenderSettings, Scene, render
from renderer.scene_config import SceneConfig, build_scene

LOD_MODES = ("max", "aniso")
#: The code an image cell's numbers depend on (the renderer, every material, their data readers).
IMAGE_CODE = ("renderer", "neumip", "btf_data.btf_render", "btf_data.brdf", "btf_data.lookup",
              "btf_data.pyramid", "btf_data.sampler", "btf_data.btf_file", "plumbing.tonemap")


def method_material(mat: MaterialFile, method: str, checkpoints: dict[str, str],
                    suite: SuiteConfig) -> Material | Empty:
    """The material one method renders on one suite material, or why its frame stays empty."""
    if method in SVBRDF_METHODS:
        if not mat.synthetic:
            return Empty("no SVBRDF maps (a measured BTF)")
        return open_material(f"{method}:{mat.path}", baselines=baseline_config(suite))
    if method in ("measured", *BTF_METHODS):
        return open_material(f"{method}:{mat.path}")
    if method in checkpoints:
        return open_material(f"neumip:{checkpoints[method]}")
    return Empty("no trained checkpoint (its quality cell failed)")


def render_reference(scene: Scene, mat: MaterialFile, suite: SuiteConfig,
                     progress: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """(reference, the same with another seed, seconds of the first): the level-0 material
    supersampled; the second image only measures the reference's own noise."""
    material = reference_material(mat.path)
    images, seconds = [], 0.0
    for seed in (0, 1):
        t0 = time.perf_counter()
        img, _ = render(scene, material, RenderSettings(progress=progress),
                        samples_per_axis=suite.reference_spp, fixed_lod=0.0, seed=seed,
                        desc=f"reference, seed {seed}")
        images.append(img)
        if seed == 0:
            seconds = time.perf_counter() - t0
    return images[0], images[1], seconds


def score_frames(scene: Scene, material: Material, ref: np.ndarray, method: str,
                 progress: bool) -> tuple[dict[str, FrameScore], np.ndarray]:
    """A frame score per lod mode, and the ``aniso`` frame (what the sheet shows)."""
    row, image = {}, None
    for mode in LOD_MODES:
        t0 = time.perf_counter()
        img, _ = render(scene, material, RenderSettings(progress=progress, lod_mode=mode),
                        desc=f"{method} {mode}")
        ms = 1000 * (time.perf_counter() - t0)
        sc = score(ref, img, method)[0]
        row[mode] = FrameScore(sc.psnr, sc.flip, ms)
        image = img
    return row, image


def image_cell(mat: MaterialFile, methods: list[str], checkpoints: dict[str, str], suite: SuiteConfig,
               cells: Path, progress: bool) -> Cell[ImageRun]:
    """One material's rendered comparison. ``checkpoints``: the trained NeuMIP checkpoint of each
    NeuMIP method (seed 0); methods without one are left empty and say so."""
    # the checkpoints by content, not only by path: a retrained cell reuses its path
    trained = {m: file_fingerprint(c) for m, c in sorted(checkpoints.items()) if Path(c).exists()}
    key = cell_key(mat.name, str(mat.path), methods, trained, suite.render_width, suite.render_height,
                   suite.reference_spp, suite.baseline_options())

    def compute(cell_dir: Path) -> ImageRun:
        scene = build_scene(SceneConfig(), suite.render_width, suite.render_height)
        ref, second, ref_seconds = render_reference(scene, mat, suite, progress)
        noise = score(ref, second, "reference noise")[0]
        write_png(cell_dir / "reference.png", ref)
        rows: dict[str, dict[str, FrameScore] | Empty] = {}
        images = {}
        for method in ["measured", *methods]:
            material = method_material(mat, method, checkpoints, suite)
            if isinstance(material, Empty):
                rows[method] = material
                continue
            rows[method], images[method] = score_frames(scene, material, ref, method, progress)
        sheet, _ = comparison_sheet(
            ref, images, cell_dir / "compare.png",
            f"{mat.name}: plane {suite.render_width}x{suite.render_height}, "
            f"lod_mode=aniso, reference {suite.reference_spp**2} spp",
        )
        return ImageRun(
            reference_spp=suite.reference_spp**2,
            reference_seconds=ref_seconds,
            reference_noise_psnr=noise.psnr,
            reference_noise_flip=noise.flip,
            methods=rows,
            sheet=str(sheet),
            mean_abs_reference=float(np.mean(np.abs(ref))),
        )

    return Cell(cells / mat.name / f"images_{key}", compute, image_run_from_json, data=mat.path,
                code=IMAGE_CODE)
