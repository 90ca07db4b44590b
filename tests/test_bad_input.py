"""Bad input a new user met (issue 19, part 6): each refused up front with one line naming the file
or value and exit status 2, and no output changed or half-written. The commands run as the user
runs them (subprocesses of the installed scripts); variants of a case already shown end to end
call the same code in the process."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from btf_data.btf_file import BTFWriter, rewrite_pyramid
from btf_data.cli import pyramid as pyramid_cli
from btf_data.directions import direction_set
from btf_data.errors import MaterialMapError
from btf_data.generate import GenerateConfig, generate
from btf_data.material_maps import MapsConfig, maps_material
from btf_data.pyramid import filtered_pyramid
from neumip.cli import evaluate as eval_cli
from neumip.config import ModelConfig
from neumip.model import NeuMIP
from plumbing.hydra_app import command_line_problem
from plumbing.resources import memory_bytes
from renderer.command import RenderCommandConfig, run_render
from renderer.render import RenderSettings
from tests.conftest import write_small_btf

BIN = Path(sys.executable).parent
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


def one_line(stderr: str, prog: str, *fragments: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), stderr[-1500:]
    assert "Traceback" not in stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def refused(p: subprocess.CompletedProcess, prog: str, *fragments: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr[-1500:])
    return one_line(p.stderr, prog, *fragments)


def refused_in_process(capsys, main, argv: list[str], prog: str, *fragments: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return one_line(capsys.readouterr().err, prog, *fragments)


def state(path: Path) -> tuple[bytes, int, list[str]]:
    """A file's bytes and mtime, and what else its folder holds (temporaries)."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


def no_held_out_btf(path: Path) -> Path:
    dirs = direction_set("tiny")
    n = len(dirs)
    images = np.random.default_rng(0).random((n, n, 16, 16, 3)).astype(np.float32)
    with BTFWriter(path, wo_dirs=dirs, wi_dirs=dirs, resolution=(16, 16), split=np.zeros((n, n), np.uint8),
                   name="all_train", source="test", dtype="float32") as w:
        for i in range(n):
            w.write(i, images[i])
    return path


# 1. btf-pyramid checks --sigma-scale first, and the new pyramid before it replaces the file -------
def test_pyramid_sigma_scale_is_refused_and_the_file_left_as_it_was(tmp_path, capsys):
    path = tmp_path / "small.h5"
    write_small_btf(path)
    before = state(path)
    refused(run("btf-pyramid", str(path), "--filter", "gaussian", "--sigma-scale", "0"), "btf-pyramid",
            "--sigma-scale=0.0", "must be a finite number >= 1/12")
    for bad in ("-1", "nan", "inf", "0.05"):
        argv = [str(path), "--filter", "gaussian", "--sigma-scale", bad]
        refused_in_process(capsys, pyramid_cli.main, argv, "btf-pyramid", f"--sigma-scale={float(bad)}")
    assert state(path) == before


def test_pyramid_is_checked_finite_before_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "small.h5"
    write_small_btf(path)
    before = state(path)
    # A filter that yields NaNs (the old sigma_scale=0 path): refused, nothing swapped in.
    monkeypatch.setattr("btf_data.pyramid.gaussian_matrix", lambda size, level, s: torch.full(
        (size >> level, size), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN or infinite values at level 1"):
        rewrite_pyramid(path, "gaussian", 0.5)
    assert state(path) == before
    with pytest.raises(ValueError, match="box pyramid has NaN"):
        filtered_pyramid(np.full((2, 2, 3), np.inf, np.float32))


# 2. Inputs that reached torch unchecked -----------------------------------------------------------
@NO_CUDA
def test_cuda_on_a_machine_without_it_is_one_line(tmp_path, capsys):
    data = tmp_path / "small.h5"
    write_small_btf(data)
    out = tmp_path / "run"
    refused(run("neumip-train", "device=cuda", "preset=debug", "data=file", f"data.path={data}",
                "data.name=small", f"out_dir={out}"),
            "neumip-train", "device=cuda: CUDA is not available on this machine")
    assert not out.exists()
    ckpt = NeuMIP(ModelConfig(backend="torch"), 16).save(tmp_path / "m.safetensors")
    refused_in_process(capsys, eval_cli.main, [str(ckpt), "--data", str(data), "--device", "cuda"],
                       "neumip-eval", "--device=cuda: CUDA is not available on this machine")
    render = RenderCommandConfig(method="naive", btf=str(data), out=str(tmp_path / "r"), width=8, height=8,
                                 settings=RenderSettings(device="cuda", progress=False))
    with pytest.raises(ValueError, match=r"^settings\.device=cuda: CUDA is not available on this machine$"):
        run_render(render)
    assert not (tmp_path / "r").exists()
    assert command_line_problem("neumip_render", ["device=cuda"]) == (
        "device=cuda: the config has no key device; did you mean baselines.device or settings.device?")


@pytest.mark.skipif(memory_bytes() > 223 * 2**30, reason="this machine could hold the image")
def test_sizes_beyond_the_machine_are_refused_before_allocating(tmp_path):
    data = tmp_path / "small.h5"
    write_small_btf(data)
    p = run("neumip-render", "width=100000", "height=100000", "method=naive", f"btf={data}",
            f"out={tmp_path / 'r'}")
    refused(p, "neumip-render", "width x height=100000 x 100000: needs at least 223.5 GiB of memory")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match=r"^resolution=1048576: needs at least \d+\.\d TiB of memory"):
        generate(GenerateConfig(resolution=2**20, directions="small", out=str(tmp_path / "g.h5")))
    assert not (tmp_path / "g.h5").exists()


def test_held_out_fraction_zero_is_refused_where_the_file_is_made(tmp_path):
    out = tmp_path / "g.h5"
    refused(run("btf-generate", "held_out_fraction=0", "resolution=8", f"out={out}"), "btf-generate",
            "held_out_fraction=0.0: must be in (0, 1)")
    assert not out.exists()
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=f"held_out_fraction={bad}"):
            GenerateConfig(held_out_fraction=bad)


def test_training_and_evaluation_refuse_a_file_without_held_out_pairs(tmp_path, capsys):
    data = no_held_out_btf(tmp_path / "all_train.h5")
    out = tmp_path / "run"
    refused(run("neumip-train", "preset=debug", "data=file", f"data.path={data}", "data.name=all_train",
                f"out_dir={out}", "logger.mode=disabled"),
            "neumip-train", f"{data}: no held-out (wo, wi) pairs to evaluate on")
    assert not out.exists()
    ckpt = NeuMIP(ModelConfig(backend="torch"), 16).save(tmp_path / "m.safetensors")
    refused_in_process(capsys, eval_cli.main, [str(ckpt), "--data", str(data), "--out", str(tmp_path / "e")],
                       "neumip-eval", f"{data}: no held_out (wo, wi) pairs")
    for levels in ("0", "-3"):
        refused_in_process(capsys, eval_cli.main, [str(ckpt), "--data", str(data), "--levels", levels,
                                                   "--subset", "train", "--out", str(tmp_path / "e")],
                           "neumip-eval", f"--levels={levels}: must be >= 1")
    assert not (tmp_path / "e").exists()


# 3. material=maps reads colour, not alpha, and refuses what it would stretch or clamp ------------
def png(path: Path, array: np.ndarray) -> str:
    from PIL import Image

    Image.fromarray(array).save(path)
    return str(path)


def test_alpha_is_not_part_of_a_height(tmp_path):
    r = 8
    grey = np.tile(np.linspace(0, 255, r), (r, 1)).astype(np.uint8)
    alpha = np.full_like(grey, 255)
    ref = maps_material(MapsConfig(height=png(tmp_path / "g.png", grey)), r).height
    assert np.ptp(ref) == pytest.approx(4.0)  # the full relief: height_scale 4
    la = maps_material(MapsConfig(height=png(tmp_path / "la.png", np.stack([grey, alpha], -1))), r).height
    rgba_png = png(tmp_path / "rgba.png", np.stack([grey] * 3 + [alpha // 3], -1))
    rgba = maps_material(MapsConfig(height=rgba_png), r).height
    np.testing.assert_array_equal(la, ref)
    np.testing.assert_array_equal(rgba, ref)


def test_maps_that_would_be_stretched_averaged_or_clamped_are_refused(tmp_path):
    out = tmp_path / "m.h5"
    wide = png(tmp_path / "wide.png", np.zeros((8, 16), np.uint8))
    refused(run("btf-generate", "material=maps", f"material.maps.height={wide}", "resolution=8",
                "directions=tiny", f"out={out}"),
            "btf-generate", f"{wide}: height map is 16 x 8 texels; maps must be square")
    assert not out.exists()
    grey8 = png(tmp_path / "g8.png", np.zeros((8, 8), np.uint8))
    grey16 = png(tmp_path / "g16.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(MaterialMapError, match=r"g16\.png: albedo map is 16 x 16 texels but .*g8\.png is 8"):
        maps_material(MapsConfig(height=grey8, albedo=grey16), 8)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    with pytest.raises(MaterialMapError, match=r"rgb\.png: height map has 3 different colour channels"):
        maps_material(MapsConfig(height=png(tmp_path / "rgb.png", rgb)), 8)
    np.save(tmp_path / "rough.npy", np.linspace(-0.25, 1.5, 64).reshape(8, 8))
    with pytest.raises(MaterialMapError, match=r"rough\.npy: roughness values span \[-0\.25, 1\.5\]"):
        maps_material(MapsConfig(height=grey8, roughness=str(tmp_path / "rough.npy")), 8)
    with pytest.raises(ValueError, match=r"roughness_value=1\.5"):
        maps_material(MapsConfig(height=grey8, roughness_value=1.5), 8)


# 4. Hydra's own errors, one line and exit 2; what composes still runs ------------------------------
@pytest.mark.parametrize(("args", "prog", "line"), [
    (["material=nosuch"], "btf-generate", "material=nosuch: unknown material option; choose one of "
     "brushed_metal, bumps, bumps_flat, leather, maps, scratched_metal, tiles, weave"),
    (["suite=unknown"], "neumip-bench", "suite=unknown: unknown suite option; choose one of full, quick"),
    (["schedul.steps=10"], "neumip-train", "schedul.steps=10: the config has no key schedul.steps; "
     "did you mean schedule.steps?"),
])
def test_hydra_errors_are_one_line_and_exit_2(args, prog, line):
    p = run(prog, *args)
    assert refused(p, prog) == f"{prog}: {line}"


def test_every_hydra_problem_names_the_override():
    assert command_line_problem("train", ["preset=bogus"]) == (
        "preset=bogus: unknown preset option; choose one of cpu, debug, gpu")
    assert command_line_problem("generate", ["-m", "material=bumps,nosuch"]).startswith(
        "material=nosuch: unknown material option")
    assert command_line_problem("generate", ["out=x("]).startswith("out=x(: hydra cannot parse this override")
    assert command_line_problem("generate", ["out=é.h5"]).startswith("out=é.h5: hydra cannot parse")
    assert command_line_problem("train", ["data=weave,bumps"]).startswith(
        "Ambiguous value for argument 'data=weave,bumps'")
    # A key that exists but hydra will not set in place: hydra's reason, not "no such key".
    assert command_line_problem("bench", ["suite=full", "suite.method_overrides={a:[b]}"]) == (
        "suite.method_overrides={a:[b]}: hydra cannot override suite.method_overrides "
        "(To append to your config use +suite.method_overrides={a:[b]})")
    for fine in (["--help"], ["--cfg", "job", "resolution=8"], ["-m", "material=bumps,tiles"],
                 ["hydra.run.dir=x", "hydra/launcher=nosuch"], ['out="my dir/é.h5"']):
        assert command_line_problem("generate", fine) is None, fine


def test_multirun_and_quoted_paths_still_run(tmp_path):
    p = run("btf-generate", "-m", "material=bumps,tiles", "resolution=8", "directions=tiny", "progress=false",
            f'out="{tmp_path}/my dir/tuile é ${{material.name}}.h5"', f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert p.returncode == 0, p.stderr[-1500:]
    assert sorted(f.name for f in (tmp_path / "my dir").iterdir()) == ["tuile é bumps.h5", "tuile é tiles.h5"]
    with h5py.File(tmp_path / "my dir" / "tuile é bumps.h5") as f:
        assert f["split"][()].any()
