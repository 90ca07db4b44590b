"""The browser viewer against the project renderer: the same scene, camera, light and lod give the
same frame (headless Chromium, WebGL2 through SwiftShader). .ci/run installs Debian's chromium;
elsewhere these tests skip, saying so, when no browser is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neumip.config import ModelConfig
from neumip.grazing import GrazingLimits
from renderer.export import export_material, read_manifest
from renderer.material_specs import open_material
from renderer.materials import ConstantMaterial
from renderer.output import score
from renderer.render import RenderSettings, render
from renderer.scene_config import SceneConfig, build_scene
from renderer.viewer.headless import find_chromium, run_page
from renderer.viewer.server import scene_configs

if find_chromium() is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the viewer tests: .ci/run installs chromium")
    pytest.skip("no chromium on this machine (Debian: apt-get install chromium)", allow_module_level=True)

from tests.test_export import random_neumip  # noqa: E402  (after the skip: a module-level skip first)

SIZE = 256
LIGHT = [0.4, 0.8, 0.5]  # towards the camera side: the sphere's visible half is lit


def renderer_frame(spec: str, scene: str, size: int = SIZE, lod_mode: str = "max") -> np.ndarray:
    """The project renderer's frame of a viewer scene, lit as the viewer lights it (directional)."""
    cfg = {**scene_configs()[scene], "light": "directional", "light_direction": LIGHT}
    image, _ = render(build_scene(SceneConfig(**cfg), size, size), open_material(spec),
                      RenderSettings(progress=False, lod_mode=lod_mode))
    return image


def browser_frames(folders: list[Path], scene: str, size: int = SIZE, **query) -> list[np.ndarray]:
    query = {"scene": scene, "width": size, "height": size, "light": ",".join(map(str, LIGHT)), **query}
    run = run_page(folders, [f.name for f in folders], query, timeout=300)
    assert run.errors == []
    return [f.rgb for f in run.frames]


@pytest.fixture(scope="module")
def neumip_exports(tmp_path_factory):
    """A model with every part of the paper's (offset on, shadow mask) away from its
    initialisation, exported at both precisions."""
    tmp = tmp_path_factory.mktemp("viewer")
    model = random_neumip(ModelConfig(backend="torch"), resolution=32, blur=0.7)
    ckpt = model.save(tmp / "m.safetensors")
    spec = f"neumip:{ckpt}"
    return spec, [export_material(open_material(spec), tmp / p, p) for p in ("fp16", "int8")]


@pytest.mark.parametrize("scene", ["plane", "sphere"])
def test_neumip_frame_equals_the_renderers(neumip_exports, scene):
    spec, folders = neumip_exports
    reference = renderer_frame(spec, scene)
    assert reference.max() > 0.05 and (reference > 0).mean() > 0.2  # the scene shows the material
    fp16, int8 = browser_frames(folders, scene)
    assert score(reference, fp16, "fp16")[0].psnr >= 40.0
    assert score(reference, int8, "int8")[0].psnr >= 35.0


def test_anisotropic_probes_equal_the_renderers(neumip_exports):
    spec, folders = neumip_exports
    reference = renderer_frame(spec, "plane", 128, lod_mode="aniso")
    (frame,) = browser_frames(folders[:1], "plane", 128, lod_mode="aniso", max_aniso=16)
    assert score(reference, frame, "aniso")[0].psnr >= 40.0
    assert score(renderer_frame(spec, "plane", 128), frame, "max")[0].psnr < 40.0  # it is not max


@pytest.mark.parametrize("cfg", [
    ModelConfig(backend="torch", direction_encoding="sh3", use_offset=False),  # the no-offset ablation
    ModelConfig(backend="torch", direction_encoding="equi_tan", levels=1),  # the single-level ablation
    ModelConfig(backend="torch", direction_encoding="equi", shadow_mask=False),
    ModelConfig(backend="torch", decoder="lobe_residual"),  # model=hybrid
    ModelConfig(backend="torch", horizon_azimuths=8),  # model=horizon
    ModelConfig(backend="torch", decoder="lobe_residual", horizon_azimuths=8, latent_channels=16,
                decoder_width=64),  # model=hybrid_horizon
], ids=["sh3_no_offset", "equi_tan_single_level", "equi_no_mask", "hybrid", "horizon", "hybrid_horizon"])
def test_every_encoding_and_ablation_in_the_shader(cfg, tmp_path):
    model = random_neumip(cfg, resolution=32)
    spec = f"neumip:{model.save(tmp_path / 'm.safetensors')}"
    folder = export_material(open_material(spec), tmp_path / "e", "fp16")
    (frame,) = browser_frames([folder], "plane", 128)
    assert score(renderer_frame(spec, "plane", 128), frame, "fp16")[0].psnr >= 40.0


def test_directions_beyond_the_training_grid_in_the_shader(tmp_path):
    """neumip/grazing.py's two rules in the shader: a hybrid_horizon model whose (made-up) grid
    stops at 30 deg for the light and 45 deg for the view, so that the light (39 deg from the
    plane's normal) and most of the plane's views lie beyond it. Same frame as the renderer's; and
    the rules change the frame (the same weights without limits score far lower), so the parity
    is not that of a model they leave alone."""
    cfg = ModelConfig(backend="torch", decoder="lobe_residual", horizon_azimuths=8, latent_channels=16,
                      decoder_width=64)
    c30, c45 = float(np.cos(np.radians(30.0))), float(np.cos(np.radians(45.0)))
    limited = random_neumip(cfg, resolution=32, grazing=GrazingLimits(c30, c45))
    spec = f"neumip:{limited.save(tmp_path / 'limited.safetensors')}"
    free = f"neumip:{random_neumip(cfg, resolution=32).save(tmp_path / 'free.safetensors')}"
    folder = export_material(open_material(spec), tmp_path / "e", "fp16")
    assert read_manifest(folder)["grazing"]["min_cos_wo"] == pytest.approx(c45)
    (frame,) = browser_frames([folder], "plane", 128)
    reference = renderer_frame(spec, "plane", 128)
    assert score(reference, frame, "fp16")[0].psnr >= 40.0
    assert score(renderer_frame(free, "plane", 128), frame, "free")[0].psnr < 30.0


def test_a_wrong_tangent_frame_fails(neumip_exports):
    """The parity test has teeth: the viewer with u and v swapped, or v mirrored, scores far below
    the bar that the right frame clears."""
    spec, folders = neumip_exports
    reference = renderer_frame(spec, "plane")
    for variant in ("swap_uv", "mirror_v"):
        (frame,) = browser_frames(folders[:1], "plane", frame=variant)
        assert score(reference, frame, variant)[0].psnr < 30.0, variant


def test_constant_material_within_1e_3(tmp_path):
    folder = export_material(ConstantMaterial((0.2, 0.5, 0.9)), tmp_path / "c", "fp16")
    for scene in ("plane", "sphere"):
        reference = renderer_frame("constant:0.2,0.5,0.9", scene)
        (frame,) = browser_frames([folder], scene)
        assert np.abs(frame - reference).max() <= 1e-3


def test_lean_pyramid_frame_equals_the_renderers(tmp_path):
    from tests.conftest import synthetic_btf

    spec = f"lean:{synthetic_btf(tmp_path, 'bumps', 32, 'tiny')}"
    folder = export_material(open_material(spec), tmp_path / "lean", "fp16")
    (frame,) = browser_frames([folder], "plane")
    assert score(renderer_frame(spec, "plane"), frame, "lean")[0].psnr >= 40.0


def test_broken_folder_gets_one_clear_message(tmp_path):
    folder = export_material(open_material("constant:0.1,0.1,0.1"), tmp_path / "c", "fp16")
    model = random_neumip(ModelConfig(backend="torch"))
    ckpt = model.save(tmp_path / "m.safetensors")
    broken = export_material(open_material(f"neumip:{ckpt}"), tmp_path / "b", "fp16")
    (broken / "mlp_decoder.bin").unlink()
    run = run_page([folder, broken], ["ok", "broken"], {"scene": "plane"}, expect_frames=False, timeout=120)
    assert len(run.errors) == 1 and "mlp_decoder.bin is missing" in run.errors[0], run.errors
    view = [sys.executable, "-m", "renderer.cli.view", str(broken), "--no-browser", "--port", "0"]
    p = subprocess.run(view, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "mlp_decoder.bin: missing" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_interactive_page_loads_without_console_errors(neumip_exports, tmp_path):
    _, folders = neumip_exports
    lean = export_material(ConstantMaterial((0.3, 0.3, 0.3)), tmp_path / "c", "fp16")
    run = run_page([folders[0], lean], ["neumip", "constant"], {"scene": "sphere"}, expect_frames=False,
                   timeout=120)
    assert run.errors == []
