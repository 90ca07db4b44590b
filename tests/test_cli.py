"""Command-line tools end to end (in subprocesses, as a user runs them) and every config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from btf_data.btf_file import BTFFile
from btf_data.generate import GenerateConfig
from btf_data.import_ubo import ImportConfig
from plumbing.conf_dir import CONF_DIR
from plumbing.structured_config import to_dataclass
from tests.fmf1_writer import write_fmf1

BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=300)


def test_generate_info_and_pyramid_commands(tmp_path):
    out = tmp_path / "bumps.h5"
    p = run("btf-generate", "material=bumps", "resolution=16", "directions=tiny", f"out={out}",
            "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}")
    assert p.returncode == 0, p.stderr
    assert "bumps" in p.stdout and "5 views" in p.stdout and "generated in" in p.stdout
    with BTFFile(out) as btf:
        assert btf.shape == (5, 5, 16, 16) and btf.n_levels == 5
        assert btf.svbrdf() is not None
    sheet = tmp_path / "sheet.png"
    p = run("btf-info", str(out), "--check", "--preview", str(sheet))
    assert p.returncode == 0, p.stderr
    assert "resolution  16 x 16 texels" in p.stdout and sheet.stat().st_size > 0
    p = run("btf-pyramid", str(out), "--filter", "gaussian")
    assert p.returncode == 0 and "filter gaussian" in p.stdout
    p = run("btf-info", str(tmp_path / "missing.h5"))
    assert p.returncode == 2 and "missing.h5: no such file" in p.stderr


def test_import_command(tmp_path):
    rng = np.random.default_rng(0)
    ang = np.array([[0.1, 0.0], [0.6, 2.0]])
    write_fmf1(tmp_path / "m.btf", rng.random((2, 2, 4, 4, 3)).astype(np.float32), ang, ang)
    p = run("btf-import-ubo", f"path={tmp_path / 'm.btf'}", f"out={tmp_path / 'm.h5'}",
            "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}")
    assert p.returncode == 0, p.stderr
    assert "ubo2014:m.btf" in p.stdout


@pytest.mark.parametrize("material", sorted(p.stem for p in Path(CONF_DIR, "material").glob("*.yaml")))
def test_every_material_config_composes_into_the_typed_config(material):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("generate", overrides=[f"material={material}", "render=quality",
                                             "pyramid=gaussian"])
    gen = to_dataclass(GenerateConfig, cfg)
    assert gen.material.name == material and gen.pyramid.filter == "gaussian"
    assert gen.render.samples_per_axis == 4


def test_import_config_composes():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("import_ubo", overrides=["path=a.btf", "out=a.h5"])
    assert to_dataclass(ImportConfig, cfg).path == "a.btf"


def test_mipnet_train_command_trains_exports_and_resumes(tmp_path):
    from renderer.baselines.mipnet import load_mipnet

    out = tmp_path / "mipnet"
    args = ["mipnet-train", "mipnet_preset=debug", f"out_dir={out}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    p = run(*args, f"export={tmp_path / 'exported.safetensors'}")
    assert p.returncode == 0, p.stderr[-2000:]
    model, meta = load_mipnet(tmp_path / "exported.safetensors")
    assert meta["steps"] == 10 and meta["arch"]["width_a"] == 16
    assert (out / "loss.png").stat().st_size > 0 and (out / "log.jsonl").stat().st_size > 0
    p = run(*args, "resume=true", "steps=14")
    assert p.returncode == 0, p.stderr[-2000:]
    assert load_mipnet(out / "mipnet.safetensors")[1]["steps"] == 14
    p = run(*args, "resume=true", "steps=20", "arch.width_a=8")
    assert p.returncode != 0 and "was trained with another 'arch'" in p.stderr


@pytest.mark.parametrize("preset", ["cpu", "gpu", "debug"])
def test_mipnet_presets_compose_into_the_typed_config(preset):
    from renderer.baselines.mipnet_train import MIPNetTrainConfig

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("mipnet_train", overrides=[f"mipnet_preset={preset}", "out_dir=x"])
    train = to_dataclass(MIPNetTrainConfig, cfg)
    assert train.crop & (train.crop - 1) == 0 and train.arch.width_a > 0
