"""NeuMIP training, checkpoints and evaluation on tiny materials made on the spot."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from btf_data.btf_file import BTFFile
from neumip.config import DataConfig, LoggerConfig, ModelConfig, ScheduleConfig, TrainConfig
from neumip.evaluate import evaluate_levels
from neumip.model import NeuMIP
from neumip.train import Trainer, blur_sigma, neumip_loss
from plumbing.conf_dir import CONF_DIR
from plumbing.structured_config import to_dataclass
from plumbing.tensor_files import CheckpointError, read_checkpoint, save_checkpoint
from tests.conftest import synthetic_btf, write_small_btf


@pytest.fixture(scope="module")
def tiny_material(tmp_path_factory) -> Path:
    """bumps at 16 x 16 texels, 19 x 19 directions."""
    return synthetic_btf(tmp_path_factory.mktemp("data"), "bumps")


def tiny_config(data: Path, out: Path, steps: int, **schedule) -> TrainConfig:
    sched = dict(steps=steps, batch_size=4096, blur_start=2.0, blur_halving=60, offset_freeze=150)
    sched.update(schedule)
    return TrainConfig(
        data=DataConfig(name="tiny", path=str(data)),
        model=ModelConfig(backend="torch"),
        schedule=ScheduleConfig(**sched),
        logger=LoggerConfig(mode="disabled", eval_every=0),
        out_dir=str(out),
        ckpt_every=10,
        eval_levels=4,
        progress=False,
    )


def test_loss_and_schedule_closed_forms():
    y = torch.tensor([[0.0, 1.0, 3.0]])
    assert float(neumip_loss(y, y, 0.1)) == 0.0
    p = torch.tensor([[1.0, 1.0, 3.0]])
    want = (torch.log1p(torch.tensor(1.0)) ** 2 / 3 + 0.1 * (1.0 / 3)).item()
    assert float(neumip_loss(p, y, 0.1)) == pytest.approx(want)
    s = ScheduleConfig()
    assert blur_sigma(0, s) == 8.0 and blur_sigma(3333, s) == pytest.approx(4.0)
    assert blur_sigma(10000, s) == pytest.approx(1.0, rel=1e-3)


#: model=plus (conf/model/plus.yaml) as a ModelConfig.
PLUS = dict(latent_channels=16, decoder_width=64, direction_encoding="xy")


@pytest.mark.parametrize("variant, held_out_db, train_db",
                         [("full", 24.0, 30.0), ("plus", 24.0, 30.0), ("plus_sh3", 22.0, 33.0)])
def test_a_tiny_material_is_learned_to_a_stated_psnr(tiny_material, tmp_path, variant, held_out_db, train_db):
    """400 steps of 4096 queries (about 15 s on 2 cores) on a 16 x 16 bumps material with 19
    directions: levels 0..3 reach the stated PSNR on all training pairs and all held-out pairs. With the
    spherical-harmonic direction code (``direction_encoding=sh3``) the variant fits the training
    pairs better (measured 35.7 / 38.1 / 41.4 dB at levels 0..2) and generalises worse to
    held-out pairs of so sparse a grid (22.6 dB against 25.5): the code overfits few directions,
    which is why the variant keeps xy (README)."""
    cfg = tiny_config(tiny_material, tmp_path, 400)
    if variant == "plus":
        cfg.model = ModelConfig(backend="torch", **PLUS)
    elif variant == "plus_sh3":
        cfg.model = ModelConfig(backend="torch", **{**PLUS, "direction_encoding": "sh3"})
    trainer = Trainer(cfg)
    path = trainer.fit()
    model = NeuMIP.load(path)
    scores = {s.level: s.psnr for s in evaluate_levels(model, trainer.btf, 4, "held_out")}
    assert min(scores.values()) >= held_out_db, scores
    train = {s.level: s.psnr for s in evaluate_levels(model, trainer.btf, 4, "train")}
    assert min(train.values()) >= train_db, train
    assert (path.parent / "eval.md").exists() and (path.parent / "eval_psnr.png").exists()


def test_bf16_training_steps_track_fp32_and_bad_precision_is_refused(tiny_material, tmp_path):
    """precision=bf16 autocasts the MLPs' products: same start, losses within a few percent of
    fp32's over 20 steps, parameters stay fp32."""
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config(tiny_material, tmp_path / precision, 20)
        cfg.precision = precision
        trainer = Trainer(cfg)
        losses[precision] = [trainer.train_step() for _ in range(20)]
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert losses["bf16"][0] != losses["fp32"][0]  # the autocast is on: round-off differs
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=0.02)
    assert losses["bf16"][-1] == pytest.approx(losses["fp32"][-1], rel=0.1)
    assert losses["bf16"][-1] < 0.8 * losses["bf16"][0]
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")


def test_inference_caches_follow_the_fused_optimiser_steps(tiny_material, tmp_path):
    """torch's fused Adam writes the parameters without bumping their version counters; the
    trainer bumps them, so what an evaluation between steps caches (the MLPs' packed weights, the
    neural offset's blurred texture) is rebuilt after each step: the answers equal a fresh copy's."""
    trainer = Trainer(tiny_config(tiny_material, tmp_path, 10))  # the offset texture trains too
    model = trainer.model
    n = 500
    uv, lod = torch.rand(n, 2), torch.rand(n) * 2
    w = torch.nn.functional.normalize(torch.rand(n, 3) + torch.tensor([0.0, 0.0, 1.0]), dim=1)

    def answers(m: NeuMIP) -> torch.Tensor:  # fp32 and bf16 (the fused query's own caches)
        m.eval()
        with torch.no_grad():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = m(uv, w, w, lod)
            return torch.cat([m(uv, w, w, lod), low])

    for _ in range(3):
        before = answers(model)  # fills the caches
        model.train()
        trainer.train_step()
        after = answers(model)
        fresh = NeuMIP(model.cfg, model.resolution, model.metadata)  # no caches yet
        fresh.load_state_dict(model.state_dict())
        assert not torch.equal(before, after)
        torch.testing.assert_close(after, answers(fresh), rtol=0, atol=0)
        model.train()
    # a frozen texture (after offset_freeze) is not written by the step: its version, which keys
    # its cached blur, stays
    trainer.cfg.schedule.offset_freeze = trainer.step
    trainer.train_step()
    version = model.offset.texture._version
    trainer.train_step()
    assert model.offset.texture._version == version


def test_resume_reaches_bit_identical_weights(tiny_material, tmp_path):
    straight = Trainer(tiny_config(tiny_material, tmp_path / "a", 30))
    straight.fit()
    first = Trainer(tiny_config(tiny_material, tmp_path / "b", 20))  # "interrupted" at step 20
    first.fit()
    cfg = tiny_config(tiny_material, tmp_path / "b", 30)
    cfg.resume = True
    resumed = Trainer(cfg)
    assert resumed.step == 20
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ctrl_c_saves_a_checkpoint_before_exiting(tiny_material, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(tiny_material, tmp_path, 100))
    real_step = trainer.train_step

    def interrupted() -> float:
        if trainer.step == 7:
            raise KeyboardInterrupt
        return real_step()

    monkeypatch.setattr(trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    _, meta = read_checkpoint(trainer.ckpt_path)
    assert meta["step"] == 7


def test_resume_without_checkpoint_is_a_clear_error(tiny_material, tmp_path):
    cfg = tiny_config(tiny_material, tmp_path, 10)
    cfg.resume = True
    with pytest.raises(CheckpointError, match="resume=true but there is no checkpoint"):
        Trainer(cfg)


@pytest.mark.parametrize("variant", ["full", "plus"])
def test_checkpoint_round_trip_loads_without_hydra_on_cpu(tmp_path, variant):
    torch.manual_seed(0)
    cfg = ModelConfig(backend="torch", **(PLUS if variant == "plus" else {}))
    model = NeuMIP(cfg, 16, {"name": "x"}).eval()
    model.blur_sigma.fill_(0.0)
    path = model.save(tmp_path / "m.safetensors")
    back = NeuMIP.load(path, "cpu")
    assert back.metadata == {"name": "x"} and back.backend == "torch"
    assert dataclasses.replace(back.cfg, backend="torch") == model.cfg
    n = 100
    uv = torch.rand(n, 2)
    w = torch.nn.functional.normalize(torch.rand(n, 3) + torch.tensor([0.0, 0.0, 1.0]), dim=1)
    lod = torch.rand(n) * 3
    torch.testing.assert_close(back(uv, w, w, lod), model(uv, w, w, lod), rtol=0, atol=0)
    assert (tmp_path / "m.json").read_text().startswith("{")


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.target),))


def test_pickled_and_bad_checkpoints_are_refused(tmp_path):
    _Payload.target = str(tmp_path / "pwned")
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"model": _Payload()}))
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        NeuMIP.load(evil)
    assert not (tmp_path / "pwned").exists(), "loading a checkpoint must never unpickle"
    torch.save({"model": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled files are refused"):
        NeuMIP.load(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        NeuMIP.load(tmp_path / "absent.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="without NeuMIP metadata"):
        NeuMIP.load(tmp_path / "foreign.safetensors")
    save_checkpoint(tmp_path / "wrong.safetensors", {"model.x": torch.zeros(1)},
                    {"model": {}, "resolution": 16})
    with pytest.raises(CheckpointError, match="weights do not fit"):
        NeuMIP.load(tmp_path / "wrong.safetensors")


@pytest.mark.parametrize("preset", ["cpu", "gpu", "debug"])
@pytest.mark.parametrize("model", ["full", "no_offset", "single_level", "plus"])
@pytest.mark.parametrize("dirs", ["grid", "random"])
def test_every_train_config_composes(preset, model, dirs):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"preset={preset}", f"model={model}", "data=tiles",
                                          f"dirs={dirs}"],
                      return_hydra_config=True)
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        train = to_dataclass(TrainConfig, cfg)
    assert train.data.name == "tiles" and train.data.generate.material.name == "tiles"
    assert train.model.use_offset == (model != "no_offset")
    assert train.model.levels == (1 if model == "single_level" else None)
    assert train.device == ("cuda" if preset == "gpu" else "cpu")
    assert train.out_dir.endswith(f"/{model}")
    assert train.model.shadow_mask and train.model.depth_scale == 0.05  # the official choices
    assert train.model.direction_encoding == "xy"
    width = (train.model.latent_channels, train.model.decoder_width)
    assert width == ((16, 64) if model == "plus" else (7, 32))
    assert train.schedule.lod_sampling == "official"
    if dirs == "random":
        assert train.data.generate.directions == "random"
        assert train.data.path.endswith("tiles_random.h5") and train.data.generate.out == train.data.path
    else:
        assert train.data.generate.directions == ("tiny" if preset == "debug" else "medium")
    if preset == "gpu":
        assert train.schedule.batch_size == 2**20 and train.schedule.steps == 30000


def test_train_and_eval_commands(tmp_path):
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "run"
    p = subprocess.run(
        [str(bin_dir / "neumip-train"), "preset=debug", f"data.path={tmp_path / 'd.h5'}",
         f"out_dir={out}", "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    ckpt = out / "checkpoints" / "last.safetensors"
    assert ckpt.exists() and "| level | resolution | PSNR (dB)" in p.stdout
    p = subprocess.run([str(bin_dir / "neumip-eval"), str(ckpt), "--levels", "3"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "| 2 | 4 |" in p.stdout and (ckpt.parent / "eval_psnr.png").exists()
    assert "light 60-90 deg" in p.stdout and "PSNR x cos" in p.stdout
    other = tmp_path / "other.h5"  # the same material scored on another file, report elsewhere
    write_small_btf(other)
    p = subprocess.run([str(bin_dir / "neumip-eval"), str(ckpt), "--levels", "2", "--data", str(other),
                        "--out", str(tmp_path / "cross")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "(other.h5)" in p.stdout and (tmp_path / "cross" / "eval.md").exists()
    assert "| 2 | 4 |" in (ckpt.parent / "eval.md").read_text()  # the model's own report is kept
    p = subprocess.run([str(bin_dir / "neumip-eval"), str(tmp_path / "none.safetensors")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "no such checkpoint" in p.stderr
    with BTFFile(tmp_path / "d.h5") as btf:
        assert btf.resolution(0) == (16, 16)
