"""Image cells: the plane scene rendered by every method beside the supersampled reference, with
both footprint filters (one isotropic ``max`` lookup, and ``aniso`` probes), PSNR and FLIP, the
reference's own noise floor, and the comparison sheet as PNG."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from btf_data.btf_file import BTFFile, file_fingerprint
from renderer.baselines import METHODS as SVBRDF_METHODS
from renderer.baselines import BaselineConfig, SVBRDFPyramidMaterial, build_pyramid
from renderer.bench.cells import cell_key
from renderer.bench.config import SuiteConfig
from renderer.bench.quality import MaterialFile
from renderer.materials import MeasuredBTFMaterial, NeuMIPMaterial, SVBRDFMaterial
from renderer.output import comparison_sheet, score, write_png
from renderer.render import RenderSettings, render
from renderer.scene_config import SceneConfig, build_scene

LOD_MODES = ("max", "aniso")


def image_cell(
    mat: MaterialFile,
    methods: list[str],
    checkpoints: dict[str, str],
    suite: SuiteConfig,
    cells: Path,
    progress: bool,
) -> tuple[Path, Any]:
    """(cell folder, compute function) of one material's rendered comparison. ``checkpoints``:
    the trained NeuMIP checkpoint of each NeuMIP method (seed 0); methods without one are
    skipped and say so."""
    # the checkpoints by content, not only by path: a retrained cell reuses its path
    trained = {m: file_fingerprint(c) for m, c in sorted(checkpoints.items()) if Path(c).exists()}
    key = cell_key(
        mat.name,
        str(mat.path),
        methods,
        trained,
        suite.render_width,
        suite.render_height,
        suite.reference_spp,
        suite.fit_steps,
    )
    cell_dir = cells / mat.name / f"images_{key}"

    def compute(cell_dir: Path) -> dict[str, Any]:
        scene = build_scene(SceneConfig(), suite.render_width, suite.render_height)
        with_maps = mat.synthetic
        ref_mat = SVBRDFMaterial.from_file(mat.path) if with_maps else MeasuredBTFMaterial(mat.path)
        measured = MeasuredBTFMaterial(mat.path)
        res, n_levels = measured.levels.heights[0].item(), measured.levels.n_levels
        base = RenderSettings(progress=progress)
        refs, ref_seconds = [], 0.0
        for seed in (0, 1):  # the second seed only measures the reference's own noise
            t0 = time.perf_counter()
            img, _ = render(
                scene,
                ref_mat,
                res,
                n_levels,
                base,
                samples_per_axis=suite.reference_spp,
                fixed_lod=0.0,
                seed=seed,
                desc=f"reference, seed {seed}",
            )
            refs.append(img)
            if seed == 0:
                ref_seconds = time.perf_counter() - t0
        ref = refs[0]
        noise = score(ref, refs[1], "reference noise")[0]
        write_png(cell_dir / "reference.png", ref)
        out: dict[str, Any] = {
            "reference_spp": suite.reference_spp**2,
            "reference_seconds": ref_seconds,
            "reference_noise_psnr": noise.psnr,
            "reference_noise_flip": noise.flip,
            "methods": {},
        }
        images = {}
        cfg = BaselineConfig()
        cfg.fit.progress = False
        if suite.fit_steps:
            cfg.fit.steps = suite.fit_steps
        for method in ["measured", *methods]:
            if method in SVBRDF_METHODS:
                if not with_maps:
                    out["methods"][method] = {"empty": "no SVBRDF maps (a measured BTF)"}
                    continue
                with BTFFile(mat.path) as btf:
                    material = SVBRDFPyramidMaterial(build_pyramid(method, btf.svbrdf(), cfg))
            elif method == "measured":
                material = measured
            elif method in checkpoints:
                material = NeuMIPMaterial(checkpoints[method])
            else:
                out["methods"][method] = {"empty": "no trained checkpoint (its quality cell failed)"}
                continue
            row = {}
            for mode in LOD_MODES:
                t0 = time.perf_counter()
                img, _ = render(
                    scene,
                    material,
                    res,
                    n_levels,
                    RenderSettings(progress=progress, lod_mode=mode),
                    desc=f"{method} {mode}",
                )
                ms = 1000 * (time.perf_counter() - t0)
                sc = score(ref, img, method)[0]
                row[mode] = {"psnr": sc.psnr, "flip": sc.flip, "ms": ms}
                if mode == "aniso":
                    images[method] = img
            out["methods"][method] = row
        sheet, _ = comparison_sheet(
            ref,
            images,
            cell_dir / "compare.png",
            f"{mat.name}: plane {suite.render_width}x{suite.render_height}, "
            f"lod_mode=aniso, reference {suite.reference_spp**2} spp",
        )
        out["sheet"] = str(sheet)
        out["mean_abs_reference"] = float(np.mean(np.abs(ref)))
        return out

    return cell_dir, compute
