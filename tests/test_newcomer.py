"""A newcomer's first hour (issue 9): paths, overwrite refusal, help texts, valid JSON, labelled
pictures and training curves on disk, and the Python API's conversions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from btf_data.btf_file import BTFFile
from btf_data.generate import GenerateConfig
from neumip.checkpoint import training_data_path
from neumip.config import DataConfig, LoggerConfig, ModelConfig, ScheduleConfig, TrainConfig
from neumip.train import Trainer
from plumbing.conf_dir import CONF_DIR
from plumbing.structured_config import to_dataclass
from plumbing.tensor_files import CheckpointError
from renderer.command import RenderCommandConfig
from tests.conftest import synthetic_btf

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def tiny_train(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=DataConfig(name="tiny", path=str(data)), model=ModelConfig(backend="torch"),
                       schedule=ScheduleConfig(steps=4, batch_size=512, blur_start=1.0, blur_halving=10,
                                               offset_freeze=2),
                       logger=LoggerConfig(mode="disabled", eval_every=2), out_dir=str(out), ckpt_every=2,
                       eval_levels=3, progress=False, **kw)


def test_generate_and_train_share_one_data_folder():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        gen = to_dataclass(GenerateConfig, compose("generate", overrides=["material=bumps"]))
        train = compose("train", overrides=["data=bumps"])
    assert gen.out == "outputs/data/bumps.h5" == train.data.path


def test_commands_leave_no_hydra_folders_and_maps_get_their_name(tmp_path):
    from PIL import Image as Img

    Img.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "h.png")
    p = run("btf-generate", "material=maps", "material.name=brick",
            f"material.maps.height={tmp_path / 'h.png'}", "resolution=16", "directions=tiny",
            "progress=false", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    out = tmp_path / "outputs" / "data" / "brick.h5"
    with BTFFile(out) as btf:
        assert btf.name == "brick"
    assert str(Path("outputs/data/brick.h5")) in p.stdout
    left = [d for d in tmp_path.rglob("*") if d.name in (".hydra", "hydra") or d.suffix == ".log"]
    assert left == []


def test_checkpoint_finds_its_data_after_a_move_and_says_which_option_to_pass(tmp_path):
    a = tmp_path / "a"
    data = synthetic_btf(a, "bumps", resolution=16, directions="tiny")
    ckpt = Trainer(tiny_train(data, a / "run")).fit()
    meta = json.loads(ckpt.with_suffix(".json").read_text())["data"]
    assert Path(meta["path"]).is_absolute() and len(meta["fingerprint"]) == 64
    shutil.move(str(a), str(tmp_path / "b"))  # the whole project folder moves
    moved = tmp_path / "b" / "run" / "checkpoints" / "last.safetensors"
    assert training_data_path(moved, meta, "--data FILE") == moved.parent / meta["path_from_checkpoint"]
    old_style = {"path": os.path.relpath(tmp_path / "b" / "bumps16.h5")}  # relative to where training ran
    assert training_data_path(moved, old_style, "--data FILE").resolve() == (tmp_path / "b" / "bumps16.h5")
    os.remove(tmp_path / "b" / "bumps16.h5")
    with pytest.raises(CheckpointError, match="training data is not found .*; pass btf=FILE"):
        training_data_path(moved, meta, "btf=FILE")
    p = run("neumip-eval", str(moved))
    assert p.returncode == 2 and "pass --data FILE" in p.stderr


def test_a_run_refuses_to_overwrite_a_checkpoint_without_resume_or_overwrite(tmp_path):
    data = synthetic_btf(tmp_path, "bumps", resolution=16, directions="tiny")
    Trainer(tiny_train(data, tmp_path / "run")).fit()
    with pytest.raises(ValueError, match="already holds a checkpoint; pass resume=true .* or overwrite=true"):
        Trainer(tiny_train(data, tmp_path / "run"))
    Trainer(tiny_train(data, tmp_path / "run", overwrite=True))  # asked for: allowed


def test_training_writes_curves_and_a_labelled_sheet(tmp_path):
    data = synthetic_btf(tmp_path, "bumps", resolution=16, directions="tiny")
    Trainer(tiny_train(data, tmp_path / "run")).fit()
    run_dir = tmp_path / "run"
    loss = (run_dir / "curves_loss.csv").read_text().splitlines()
    psnr = (run_dir / "curves_psnr.csv").read_text().splitlines()
    assert loss[0] == "step,loss,blur_sigma" and psnr[0] == "step,level,psnr"
    assert {int(r.split(",")[0]) for r in psnr[1:]} == {2, 4}  # eval_every=2 over 4 steps
    for png in ("curves.png", "gt_vs_model.png", "checkpoints/eval_psnr.png"):
        w, h = Image.open(run_dir / png).size
        assert w >= 500 and h >= 300, png


@pytest.mark.parametrize("command", ["btf-generate", "btf-import-ubo", "neumip-train", "neumip-render",
                                     "mipnet-train"])
def test_every_hydra_command_has_its_own_help(command):
    p = run(command, "--help")
    assert p.returncode == 0
    assert p.stdout.startswith(f"{command}: ") and "Main options (default):" in p.stdout
    assert p.stdout.count(f"\n  {command} ") >= 2  # two examples
    assert "powered by Hydra" not in p.stdout and "Configuration groups" not in p.stdout


def test_compare_takes_one_name_or_a_comma_list():
    assert RenderCommandConfig(compare="neumip").compare == ["neumip"]
    assert RenderCommandConfig(compare="neumip, lean").compare == ["neumip", "lean"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = to_dataclass(RenderCommandConfig, compose("neumip_render", overrides=["compare=lean"]))
    assert cfg.compare == ["lean"]


def test_btf_info_json_is_valid_json_alone_and_counts_levels_as_btf_pyramid(tmp_path):
    data = synthetic_btf(tmp_path, "bumps", resolution=16, directions="tiny")
    p = run("btf-info", str(data), "--json")
    assert p.returncode == 0
    info = json.loads(p.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert info["levels"] == 5 and isinstance(info["attributes"]["config"], dict)
    assert info["attributes"]["texel_size_mm"] is None  # NaN becomes null
    pyr = run("btf-pyramid", str(data))
    assert pyr.returncode == 0 and "levels 5 (level 0 and 4 filtered)" in pyr.stdout
    chk = run("btf-info", str(data), "--check", "--preview", str(tmp_path / "p.png"), "--exposure", "2")
    assert chk.returncode == 0 and "levels      5:" in chk.stdout
    assert "check       passed" in chk.stdout
    w, h = Image.open(tmp_path / "p.png").size
    assert w > 5 * 100 and h > 3 * 100  # labelled panels, not 16-pixel thumbnails


def test_the_python_api_takes_what_users_pass(tmp_path):
    import neumip
    from neumip import NeuMIP

    assert neumip.NeuMIP is NeuMIP
    data = synthetic_btf(tmp_path, "bumps", resolution=16, directions="tiny")
    model = NeuMIP.load(Trainer(tiny_train(data, tmp_path / "run")).fit())
    assert not model.training
    uv = np.random.default_rng(0).random((6, 2))
    w = [[0.0, 0.0, 1.0]] * 6
    out = model(uv, w, w, 1.5)  # numpy float64, lists, a scalar lod
    assert out.shape == (6, 3) and out.dtype == torch.float32 and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), model(uv, w, w, np.full(6, 1.5)).numpy())
    uv_t = torch.tensor(uv, dtype=torch.float32, requires_grad=True)
    model(uv_t, w, w, 0.0).sum().backward()  # gradients reach inputs that ask for them
    assert uv_t.grad is not None and torch.isfinite(uv_t.grad).all()


def test_no_stale_docstrings_point_at_issues_or_missing_files():
    stale = []
    for pkg in ("neumip", "btf_data", "renderer"):
        for f in (REPO / pkg).rglob("*.py"):
            text = f.read_text()
            if "DESIGN.md" in text or "arrives with issue" in text:
                stale.append(str(f.relative_to(REPO)))
    assert stale == []


#: The house, bottom to top: a package may import those below it, never one above.
FLOORS = ("plumbing", "btf_data", "neumip", "renderer", "benchmarks")


def test_no_import_runs_back_up_the_house():
    import ast

    upward, seen = [], set()
    for floor, pkg in enumerate(FLOORS):
        for f in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                for name in names:
                    top = name.split(".")[0]
                    seen.add((pkg, top))
                    if top in FLOORS and FLOORS.index(top) > floor:
                        upward.append(f"{f.relative_to(REPO)} imports {name}")
    assert upward == []
    assert {("renderer", "neumip"), ("neumip", "btf_data"), ("btf_data", "plumbing")} <= seen  # reads them
