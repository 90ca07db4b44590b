"""Bad input and faults (issue 8): one test per cause, each asserting the exit status or the
exception, the one-line message naming the file or value, and that no output appears."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from btf_data.btf_file import BTFFile
from btf_data.errors import BTFFormatError
from btf_data.generate import GenerateConfig
from neumip.config import DataConfig, LoggerConfig, ModelConfig, ScheduleConfig, TrainConfig
from neumip.model import NeuMIP
from neumip.train import Trainer
from plumbing.atomic import atomic_path, remove_stale_temporaries, user_file_mode
from plumbing.tensor_files import CheckpointError, read_checkpoint
from renderer.command import RenderCommandConfig
from renderer.render import RenderSettings
from renderer.scene_config import SceneConfig
from tests.conftest import synthetic_btf, write_small_btf

BIN = Path(sys.executable).parent


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def assert_one_line_refusal(p: subprocess.CompletedProcess, prog: str, *fragments: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr[-1500:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), p.stderr[-1500:]
    assert "Traceback" not in p.stderr and "Error executing job" not in p.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synthetic_btf(tmp_path_factory.mktemp("faults"), "bumps", resolution=16, directions="tiny")


def tiny_train(data: Path, out: Path, steps: int = 4, **model) -> TrainConfig:
    return TrainConfig(data=DataConfig(name="tiny", path=str(data)),
                       model=ModelConfig(backend="torch", **model),
                       schedule=ScheduleConfig(steps=steps, batch_size=512, blur_start=1.0, blur_halving=10,
                                               offset_freeze=2),
                       logger=LoggerConfig(mode="disabled", eval_every=0), out_dir=str(out), ckpt_every=2,
                       eval_levels=2, progress=False)


# 1. Project errors reach the user as one line, exit 2, for every hydra command ------------------
def test_cause1_hydra_commands_print_one_line_and_exit_2(tmp_path, tiny):
    hyd = f"hydra.run.dir={tmp_path / 'h'}"
    assert_one_line_refusal(run("btf-generate", "resolution=100", f"out={tmp_path / 'a.h5'}", hyd),
                            "btf-generate", "resolution=100", "power of two")
    (tmp_path / "junk.btf").write_bytes(b"not a capture")
    assert_one_line_refusal(run("btf-import-ubo", f"path={tmp_path / 'junk.btf'}", f"out={tmp_path / 'b.h5'}",
                                hyd), "btf-import-ubo", "junk.btf")
    assert_one_line_refusal(run("neumip-render", f"btf={tmp_path / 'missing.h5'}", "method=naive",
                                f"out={tmp_path / 'r'}", hyd), "neumip-render", "missing.h5", "no such file")
    assert_one_line_refusal(run("neumip-render", f"checkpoint={tmp_path}", f"out={tmp_path / 'r'}", hyd),
                            "neumip-render", "is a directory")
    assert_one_line_refusal(run("mipnet-train", "mipnet_preset=debug", "crop=3", hyd), "mipnet-train",
                            "crop=3")
    assert_one_line_refusal(run("neumip-train", "schedule.steps=-1", hyd), "neumip-train",
                            "schedule.steps=-1")
    assert_one_line_refusal(run("btf-generate", "resolution=abc", hyd), "btf-generate", "resolution")
    debug = run("btf-generate", "resolution=100", hyd, env={"NEUMIP_TRACEBACK": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert not list(tmp_path.glob("*.h5")) and not (tmp_path / "r").exists()


# 2. Training never silently uses other data ------------------------------------------------------
def test_cause2_missing_user_data_is_an_error_not_a_generated_weave(tmp_path):
    hyd = f"hydra.run.dir={tmp_path / 'h'}"
    target = tmp_path / "mistyped.h5"
    p = run("neumip-train", "data=file", f"data.path={target}", "data.name=carpet", "preset=debug",
            f"out_dir={tmp_path / 'run'}", hyd)
    assert_one_line_refusal(p, "neumip-train", "mistyped.h5", "no such file")
    assert not target.exists()
    p = run("neumip-train", "data=file", "preset=debug", f"out_dir={tmp_path / 'run'}", hyd)
    assert_one_line_refusal(p, "neumip-train", "missing value for data.name")


# 3. Output locations are checked before the work -------------------------------------------------
def test_cause3_unwritable_outputs_are_refused_before_any_work(tmp_path, tiny):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    hyd = f"hydra.run.dir={tmp_path / 'h'}"
    p = run("neumip-train", f"data.path={tiny}", "data.name=tiny", "preset=debug",
            f"out_dir={blocker / 'run'}", hyd)
    assert_one_line_refusal(p, "neumip-train", "a_file is a file, not a directory")
    p = run("btf-generate", f"out={tmp_path}", "resolution=16", hyd)  # an existing directory
    assert_one_line_refusal(p, "btf-generate", "is a directory")
    p = run("btf-generate", f"out={tmp_path / 'ok.h5'}", f"preview={blocker / 'p.png'}", "resolution=16", hyd)
    assert_one_line_refusal(p, "btf-generate", "p.png")
    assert not (tmp_path / "ok.h5").exists()
    p = run("neumip-render", f"btf={tiny}", "method=naive", f"out={blocker}", hyd)
    assert_one_line_refusal(p, "neumip-render", "is a file; give a directory")
    with pytest.raises(ValueError, match="a_file is a file"):
        Trainer(tiny_train(tiny, blocker / "run"))


# 4. Validation gaps: pyramid values, negative radiance, groups, the whole pyramid under --check ----
def _copy_with(src: Path, dst: Path, edit) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        edit(f)
    return dst


def test_cause4_files_with_broken_values_or_members_are_refused(tmp_path):
    src = tmp_path / "src.h5"
    write_small_btf(src)

    def nan_in_pyramid(f):
        f["pyramid/1"][0, 0, 0, 0, 0] = np.nan

    def negative(f):
        f["radiance"][1, 2, 3, 3, 0] = -0.5

    def group(f):
        del f["radiance"]
        f.create_group("radiance")

    for name, edit, msg in (("nan_pyr", nan_in_pyramid, r"'pyramid/1'\[0, 0\] has NaN"),
                            ("neg", negative, r"'radiance'\[1, 2\] has negative values"),
                            ("group", group, "'radiance' is an HDF5 group, expected a dataset")):
        bad = _copy_with(src, tmp_path / f"{name}.h5", edit)
        with pytest.raises(BTFFormatError, match=msg):
            BTFFile(bad)
        p = run("btf-info", str(bad), "--check")
        assert p.returncode == 2 and name + ".h5" in p.stderr and "Traceback" not in p.stderr

    def pyramid_off_on_one_image(f):  # an image the default open does not compare
        f["pyramid/1"][2, 3] = f["pyramid/1"][2, 3] * 1.5

    off = _copy_with(src, tmp_path / "off.h5", pyramid_off_on_one_image)
    BTFFile(off).close()  # fast default: two sample images
    with pytest.raises(BTFFormatError, match=r"'pyramid/1'\[2, 3\] does not match"):
        BTFFile(off, full_check=True)


# 5. btf-pyramid repairs what it exists to repair -------------------------------------------------
def test_cause5_btf_pyramid_repairs_a_broken_pyramid(tmp_path):
    src = tmp_path / "src.h5"
    images = write_small_btf(src)

    def wreck(f):
        f["pyramid/1"][...] = np.nan

    bad = _copy_with(src, tmp_path / "bad.h5", wreck)
    with pytest.raises(BTFFormatError):
        BTFFile(bad)
    p = run("btf-pyramid", str(bad))
    assert p.returncode == 0, p.stderr
    with BTFFile(bad, full_check=True) as btf:
        np.testing.assert_allclose(btf.image(0, 0, 1), images[0, 0].reshape(8, 2, 8, 2, 3).mean((1, 3)),
                                   rtol=1e-5)


# 6. Checkpoint metadata is validated, resume refuses other models and data ------------------------
def _forge(path: Path, header) -> Path:
    save_file({"model.x": torch.zeros(1)}, str(path), metadata={"neumip": json.dumps(header)})
    return path


def test_cause6_checkpoint_metadata_and_resume_are_validated(tmp_path, tiny):
    good = {"model": {"latent_channels": 7}, "resolution": 16}
    for header, msg in (([1, 2], "metadata is a JSON list"),
                        ({**good, "resolution": "16"}, "'resolution' is a str"),
                        ({**good, "model": {"latent_channels": "7"}}, "'model.latent_channels' = '7'"),
                        ({**good, "model": {"colour": 1}}, "'model.colour' is unknown"),
                        ({"resolution": 16}, "lacks 'model'")):
        with pytest.raises(CheckpointError, match=msg):
            NeuMIP.load(_forge(tmp_path / "forged.safetensors", header))
    trainer = Trainer(tiny_train(tiny, tmp_path / "run"))
    path = trainer.fit()
    # A model-only checkpoint (weights and config, no optimiser or random state).
    only = tmp_path / "only" / "checkpoints" / "last.safetensors"
    NeuMIP.load(path).save(only)
    cfg = tiny_train(tiny, tmp_path / "only", steps=8)
    cfg.resume = True
    with pytest.raises(CheckpointError, match="cannot resume: metadata field 'step'"):
        Trainer(cfg)
    cfg = tiny_train(tiny, tmp_path / "run", steps=8, latent_channels=5)
    cfg.resume = True
    with pytest.raises(CheckpointError, match=r"another model \(latent_channels differ\)"):
        Trainer(cfg)
    other = synthetic_btf(tmp_path, "tiles", resolution=16, directions="tiny")
    cfg = tiny_train(other, tmp_path / "run", steps=8)
    cfg.resume = True
    msg = "cannot resume: trained on .*bumps16.h5, this run uses .*tiles16"
    with pytest.raises(CheckpointError, match=msg):
        Trainer(cfg)


# 7. Queries accept what users pass ---------------------------------------------------------------
def test_cause7_queries_accept_numpy_lists_and_float64():
    model = NeuMIP(ModelConfig(backend="torch"), 16).eval()
    rng = np.random.default_rng(0)
    uv = rng.random((5, 2))
    w = np.tile([0.3, 0.0, np.sqrt(1 - 0.09)], (5, 1))
    lod = np.full(5, 1.5)
    ref = model(torch.tensor(uv, dtype=torch.float32), torch.tensor(w, dtype=torch.float32),
                torch.tensor(w, dtype=torch.float32), torch.tensor(lod, dtype=torch.float32))
    for args in ((uv, w, w, lod), (uv.tolist(), w.tolist(), w.tolist(), lod.tolist()),
                 tuple(torch.tensor(a) for a in (uv, w, w, lod))):  # float64 tensors
        torch.testing.assert_close(model(*args), ref)
    with pytest.raises(ValueError, match="uv must be a tensor, numpy array or list of numbers"):
        model("0.5", w, w, lod)


# 8. Config values are range-checked at load ------------------------------------------------------
@pytest.mark.parametrize("make, key", [
    (lambda: GenerateConfig(resolution=100), "resolution=100"),
    (lambda: ScheduleConfig(steps=-1), "schedule.steps=-1"),
    (lambda: ScheduleConfig(batch_size=0), "schedule.batch_size=0"),
    (lambda: ScheduleConfig(batch_size=100, pairs_per_batch=7), "schedule.pairs_per_batch=7"),
    (lambda: ScheduleConfig(pairs_per_batch=-1), "schedule.pairs_per_batch=-1"),
    (lambda: ModelConfig(latent_channels=0), "model.latent_channels=0"),
    (lambda: RenderSettings(chunk=0), "settings.chunk=0"),
    (lambda: SceneConfig(texture_size=0.0), "scene.texture_size=0.0"),
    (lambda: RenderCommandConfig(reference_spp=0), "reference_spp=0"),
    (lambda: RenderCommandConfig(compare=["neumip", "velvet"]), "compare='velvet'"),
])
def test_cause8_config_values_are_checked_when_built(make, key):
    with pytest.raises(ValueError, match=key.replace("(", r"\(").replace(".", r"\.")):
        make()


def test_cause8_render_refuses_reference_spp_0_before_writing(tmp_path, tiny):
    out = tmp_path / "r"
    p = run("neumip-render", f"btf={tiny}", "compare=[naive]", "reference_spp=0", f"out={out}",
            f"hydra.run.dir={tmp_path / 'h'}")
    assert_one_line_refusal(p, "neumip-render", "reference_spp=0")
    assert not out.exists()


# 9. The argparse commands refuse unwritable outputs in one line ----------------------------------
def test_cause9_argparse_commands_refuse_unwritable_outputs(tmp_path, tiny):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert_one_line_refusal(run("btf-info", str(tiny), "--preview", str(blocker / "p.png")), "btf-info",
                            "a_file is a file, not a directory")
    assert_one_line_refusal(run("btf-pyramid", str(tmp_path)), "btf-pyramid", "is a directory")
    assert_one_line_refusal(run("neumip-eval", str(tmp_path / "none.safetensors")), "neumip-eval",
                            "no such checkpoint")


# 10. Outputs get the umask's permissions; btf-pyramid keeps the file's ---------------------------
def test_cause10_atomic_outputs_get_normal_permissions(tmp_path):
    out = tmp_path / "plain.txt"
    with atomic_path(out) as tmp:
        tmp.write_text("x")
    assert out.stat().st_mode & 0o777 == user_file_mode()
    f = tmp_path / "f.h5"
    write_small_btf(f)
    assert f.stat().st_mode & 0o777 == user_file_mode()
    os.chmod(f, 0o640)
    assert run("btf-pyramid", str(f), "--filter", "gaussian").returncode == 0
    assert f.stat().st_mode & 0o777 == 0o640


# 11. Messages say what is wrong ------------------------------------------------------------------
def test_cause11_messages_name_the_real_problem(tmp_path, tiny):
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        read_checkpoint(tmp_path)
    src = tmp_path / "s.h5"
    write_small_btf(src)

    def split2(f):
        f["split"][0, 0] = 2

    msg = r"'split' may hold only 0 \(training\) and 1 \(held-out\), found 2"
    with pytest.raises(BTFFormatError, match=msg):
        BTFFile(_copy_with(src, tmp_path / "split.h5", split2))
    p = run("btf-info", str(tiny), "--check")
    assert "measured over every value" in p.stdout
    with BTFFile(tiny) as btf:
        lo, hi, mean = btf.value_stats
        data = np.stack([btf.view(i) for i in range(btf.shape[0])])
    assert lo == pytest.approx(float(data.min())) and hi == pytest.approx(float(data.max()))
    assert mean == pytest.approx(float(data.astype(np.float64).mean()), rel=1e-5)


# 12. Orphan temporaries of a killed writer are cleaned by the next write -------------------------
def test_cause12_stale_temporaries_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "m.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".m.h5.{dead}.abc123.tmp"
    live = tmp_path / f".m.h5.{os.getpid()}.def456.tmp"
    other = tmp_path / f".n.h5.{dead}.abc123.tmp"
    for p in (stale, live, other):
        p.write_text("half")
    assert remove_stale_temporaries(target) == [stale]
    stale.write_text("half")
    write_small_btf(target)
    assert not stale.exists() and live.exists() and other.exists() and target.exists()
