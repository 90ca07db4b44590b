"""Training under faults (issue 19, parts 4 and 6): Ctrl-C at any point of a step, two runs into
one folder, resume on replaced data or of a finished run, and writes that a crash cannot leave
half-done. Every resumed run is checked against an uninterrupted run of the same config."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import plumbing.tensor_files
from neumip.config import DataConfig, LoggerConfig, ModelConfig, ScheduleConfig, TrainConfig
from neumip.train import FINISHED_NAME, LOCK_NAME, RunFolderBusy, Trainer
from plumbing.tensor_files import (
    CheckpointError,
    metadata_copy_is_current,
    metadata_copy_path,
    read_checkpoint,
    save_checkpoint,
)
from tests.conftest import synthetic_btf

STEPS = 12
#: The step at which the interruptions below land (a periodic checkpoint is at 5 and 10).
AT = 7


def tiny_config(data: Path, out: Path, steps: int = STEPS, resume: bool = False) -> TrainConfig:
    """12 steps of 512 queries on a 16 x 16 material; fuse_blur at steps 0, 3, 6 and 9, the blur
    and the offset schedule changing within the run, a checkpoint every 5 steps."""
    return TrainConfig(
        data=DataConfig(name="tiny", path=str(data)),
        model=ModelConfig(backend="torch"),
        schedule=ScheduleConfig(steps=steps, batch_size=512, blur_start=2.0, blur_halving=6, offset_freeze=8,
                                fuse_blur_every=3, fuse_blur_until=10),
        logger=LoggerConfig(mode="disabled", eval_every=0, log_every=1),
        out_dir=str(out), ckpt_every=5, eval_levels=2, progress=False, threads=1, resume=resume,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return synthetic_btf(tmp_path_factory.mktemp("data"), "bumps", directions="tiny")


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """The out_dir of an uninterrupted 12-step run."""
    out = tmp_path_factory.mktemp("reference")
    Trainer(tiny_config(data, out)).fit()
    return out


def ckpt_of(out: Path) -> Path:
    return out / "checkpoints" / "last.safetensors"


def assert_same_state(out: Path, reference: Path) -> None:
    """Every tensor (weights, optimiser moments, random states) and the step-dependent metadata
    of two runs' final checkpoints are equal."""
    (a, meta_a), (b, meta_b) = read_checkpoint(ckpt_of(out)), read_checkpoint(ckpt_of(reference))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for k in ("step", "optim_scalars", "optim_param_groups", "rng_numpy"):
        assert meta_a[k] == meta_b[k], k


def files_of(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# 2. Ctrl-C anywhere in a step saves the state of a completed step --------------------------------
def ctrl_c() -> None:
    """What the terminal does on Ctrl-C: SIGINT to this process, at this very point."""
    signal.raise_signal(signal.SIGINT)


def raise_keyboard_interrupt() -> None:
    """A KeyboardInterrupt raised in place, as the default SIGINT handler would."""
    raise KeyboardInterrupt


def interrupt_inside(owner: Callable[[Trainer], object], name: str) -> Callable:
    """A patcher of ``owner(trainer).name`` that calls ``before`` / ``after`` around the real call
    at step ``at_step`` (the step being taken)."""

    def patch(trainer: Trainer, monkeypatch, at_step: int, before: Callable | None = None,
              after: Callable | None = None) -> None:
        target = owner(trainer)
        real = getattr(target, name)

        def wrapped(*a, **k):
            if trainer.step == at_step and before:
                before()
            out = real(*a, **k)
            if trainer.step == at_step and after:
                after()
            return out

        monkeypatch.setattr(target, name, wrapped)

    return patch


patch_sampler = interrupt_inside(lambda t: t.sampler, "sample")
patch_optimizer = interrupt_inside(lambda t: t.optimizer, "step")
patch_fuse_blur = interrupt_inside(lambda t: t.model.pyramid, "fuse_blur")


def twice_ctrl_c() -> None:
    ctrl_c()
    ctrl_c()


# (where, patch, its keywords, the step the checkpoint must hold). Ctrl-C is deferred to the end of
# the step it lands in, so that step completes and is saved; a second Ctrl-C stops at once, outside
# a weight update, and the step is rolled back. A KeyboardInterrupt raised in place (no signal) is
# rolled back before the weight update; inside it, nothing is saved and the periodic checkpoint of
# step 5 stays.
CASES = [
    ("ctrl-c in the sampler, before the draw", patch_sampler, {"before": ctrl_c}, AT + 1),
    ("ctrl-c in the sampler, after the draw", patch_sampler, {"after": ctrl_c}, AT + 1),
    ("ctrl-c in fuse_blur", patch_fuse_blur, {"after": ctrl_c}, 6 + 1),
    ("ctrl-c in the optimiser step, before the update", patch_optimizer, {"before": ctrl_c}, AT + 1),
    ("ctrl-c in the optimiser step, after the update", patch_optimizer, {"after": ctrl_c}, AT + 1),
    ("ctrl-c twice after the draw: stop at once", patch_sampler, {"after": twice_ctrl_c}, AT),
    ("ctrl-c twice in the update: still deferred", patch_optimizer, {"after": twice_ctrl_c}, AT + 1),
    ("KeyboardInterrupt after the draw", patch_sampler, {"after": raise_keyboard_interrupt}, AT),
    ("KeyboardInterrupt inside the update", patch_optimizer, {"after": raise_keyboard_interrupt}, 5),
]


@contextlib.contextmanager
def sigint_handled_by(handler: Any) -> Iterator[None]:
    """SIGINT's handler set to ``handler`` for the block, the previous one given back after it."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def sigint_as_in_a_terminal():
    """SIGINT with Python's default handler, as a foreground job in a terminal has it. A job started
    in the background by a script (``make test &``, ``nohup ... &``) inherits SIGINT ignored, and the
    trainer rightly leaves it so (tested below); these tests need Ctrl-C to arrive."""
    with sigint_handled_by(signal.default_int_handler):
        yield


@pytest.mark.parametrize("where, patch, points, saved_step", CASES, ids=[c[0] for c in CASES])
@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_an_interrupt_anywhere_in_a_step_resumes_bit_identically(data, reference, tmp_path, monkeypatch,
                                                                 capsys, where, patch, points, saved_step):
    out = tmp_path / "run"
    trainer = Trainer(tiny_config(data, out))
    patch(trainer, monkeypatch, 6 if patch is patch_fuse_blur else AT, **points)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
    _, meta = read_checkpoint(ckpt_of(out))
    assert meta["step"] == saved_step
    said = capsys.readouterr().out
    assert (f"after step {saved_step}" if saved_step != 5 else "inside the weight update of step 8") in said
    assert not (out / "checkpoints" / FINISHED_NAME).exists()
    resumed = Trainer(tiny_config(data, out, resume=True))
    assert resumed.step == saved_step
    resumed.fit()
    assert_same_state(out, reference)
    # The loss curve, rows dropped after the checkpoint's step and written again, is the reference's.
    assert (out / "curves_loss.csv").read_bytes() == (reference / "curves_loss.csv").read_bytes()


def test_an_ignored_sigint_stays_ignored(data, reference, tmp_path, monkeypatch):
    """Started with SIGINT ignored (``nohup neumip-train ... &``), a run is not made interruptible:
    a SIGINT in the middle of a step changes nothing and the run ends as an uninterrupted one."""
    out = tmp_path / "run"
    with sigint_handled_by(signal.SIG_IGN):
        trainer = Trainer(tiny_config(data, out))
        patch_sampler(trainer, monkeypatch, AT, after=ctrl_c)
        trainer.fit()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert (out / "checkpoints" / FINISHED_NAME).exists()
    assert_same_state(out, reference)
    assert (out / "curves_loss.csv").read_bytes() == (reference / "curves_loss.csv").read_bytes()


# 3. One run per folder ---------------------------------------------------------------------------
def test_a_second_run_into_a_held_folder_is_refused_and_the_lock_ends_with_the_run(data, tmp_path):
    out = tmp_path / "run"
    first = Trainer(tiny_config(data, out, steps=2))
    with pytest.raises(RunFolderBusy, match=f"^{out}: another training run is using this folder"):
        Trainer(tiny_config(data, out, steps=2))
    assert out.is_dir()  # the refused run removed nothing of the first one's
    first.fit()  # releases the folder when it ends
    Trainer(tiny_config(data, out, steps=4, resume=True)).fit()
    _, meta = read_checkpoint(ckpt_of(out))
    assert meta["step"] == 4


def test_a_refused_run_leaves_no_new_folder(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(ValueError, match="no such file"):
        Trainer(tiny_config(tmp_path / "missing.h5", out))
    assert not (tmp_path / "new").exists()


def test_a_lock_held_by_another_process_refuses_the_command_and_dies_with_it(data, tmp_path):
    """neumip-train into a folder another process holds: one line naming the folder, exit 2. Once
    that process is killed with SIGKILL, the folder is free: no stale lock."""
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
         "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(600)", str(out / LOCK_NAME)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        p = subprocess.run([str(Path(sys.executable).parent / "neumip-train"), "preset=debug",
                            f"data.path={data}", "data.name=tiny", f"out_dir={out}", "threads=1",
                            f"hydra.run.dir={tmp_path / 'h'}"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 2, p.stderr[-2000:]
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and str(out) in lines[0] and "another training run" in lines[0], p.stderr
        assert sorted(x.name for x in out.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    Trainer(tiny_config(data, out, steps=2)).fit()


# 4. Resume refuses a replaced data file ----------------------------------------------------------
def test_resume_refuses_a_data_file_replaced_by_another_material(data, tmp_path):
    mine = tmp_path / "material.h5"
    shutil.copyfile(data, mine)
    out = tmp_path / "run"
    Trainer(tiny_config(mine, out, steps=4)).fit()
    other = synthetic_btf(tmp_path, "tiles", directions="tiny")  # the same resolution, 16 x 16
    os.replace(other, mine)
    before = files_of(out)
    with pytest.raises(CheckpointError, match=f"^{mine}: is not the file .*overwrite=true .*new out_dir"):
        Trainer(tiny_config(mine, out, steps=8, resume=True))
    assert files_of(out) == before
    cfg = tiny_config(mine, out, steps=2)
    cfg.overwrite = True  # the way out the message names
    Trainer(cfg).fit()


# 5. Resume of a finished run --------------------------------------------------------------------
def test_resume_of_a_finished_run_changes_no_file(data, tmp_path, capsys):
    out = tmp_path / "run"
    Trainer(tiny_config(data, out, steps=6)).fit()
    before = files_of(out)
    capsys.readouterr()
    path = Trainer(tiny_config(data, out, steps=6, resume=True)).fit()
    assert path == ckpt_of(out)
    assert "finished at step 6" in capsys.readouterr().out
    assert files_of(out) == before  # bytes and modification times


def test_a_run_stopped_in_its_final_evaluation_is_finished_without_a_step(data, tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_config(data, out, steps=6)).fit()
    marker = out / "checkpoints" / FINISHED_NAME
    marker.unlink()  # as if killed during the final evaluation: no marker, no finished run
    weights, loss = ckpt_of(out).read_bytes(), (out / "curves_loss.csv").read_bytes()
    Trainer(tiny_config(data, out, steps=6, resume=True)).fit()
    assert ckpt_of(out).read_bytes() == weights and (out / "curves_loss.csv").read_bytes() == loss
    timing = json.loads(marker.read_text())
    assert timing["total_steps"] == 6 and timing["steps"] == 0 and timing["queries_per_second"] > 0
    assert "6 steps" in (out / "checkpoints" / "eval.md").read_text()


def test_a_finished_run_continues_when_steps_are_raised(data, reference, tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_config(data, out, steps=8)).fit()
    Trainer(tiny_config(data, out, resume=True)).fit()
    assert_same_state(out, reference)
    assert (out / "curves_loss.csv").read_bytes() == (reference / "curves_loss.csv").read_bytes()
    assert json.loads((out / "checkpoints" / FINISHED_NAME).read_text())["total_steps"] == STEPS


# 1. Atomic writes ---------------------------------------------------------------------------------
def test_the_finished_marker_is_never_half_written(data, tmp_path, monkeypatch):
    """A failure while train_time.json is written leaves no marker (the suite would take a partial
    one for a finished run) and no temporary file."""
    real_dump, real_dumps = json.dump, json.dumps

    def failing(real):
        def write(obj, *a, **k):
            if isinstance(obj, dict) and "total_steps" in obj:
                raise OSError(28, "No space left on device")
            return real(obj, *a, **k)
        return write

    monkeypatch.setattr(json, "dump", failing(real_dump))
    monkeypatch.setattr(json, "dumps", failing(real_dumps))
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        Trainer(tiny_config(data, out, steps=2)).fit()
    assert not [p for p in (out / "checkpoints").iterdir() if FINISHED_NAME in p.name]


def test_a_crash_between_the_checkpoint_renames_leaves_a_whole_checkpoint_and_a_stale_copy(tmp_path,
                                                                                         monkeypatch):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": torch.zeros(3)}, {"step": 1})
    assert metadata_copy_is_current(path)
    copy = json.loads(metadata_copy_path(path).read_text())
    _, meta = read_checkpoint(path)
    assert {k: v for k, v in copy.items() if k != "copy_of"} == meta  # the copy says what the header says
    real = plumbing.tensor_files.atomic_path

    def crash_at_the_copy(final):
        if Path(final).suffix == ".json":
            raise KeyboardInterrupt  # killed after the weights' rename, before the copy's
        return real(final)

    monkeypatch.setattr(plumbing.tensor_files, "atomic_path", crash_at_the_copy)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.ones(3)}, {"step": 2})
    tensors, meta = read_checkpoint(path)  # the truth: new weights with their own metadata
    assert meta["step"] == 2 and torch.equal(tensors["w"], torch.ones(3))
    assert json.loads(metadata_copy_path(path).read_text())["step"] == 1
    assert not metadata_copy_is_current(path)  # the stale copy is told as such
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="must not end in .json"):
        save_checkpoint(tmp_path / "c.json", {"w": torch.zeros(3)}, {})


def test_fit_runs_in_a_worker_thread_where_no_signal_handler_can_be_set(data, tmp_path):
    """fit in a worker thread: no SIGINT handler can be installed there, the run still completes."""
    import threading

    done = {}

    def train() -> None:
        done["path"] = Trainer(tiny_config(data, tmp_path, 2)).fit()

    t = threading.Thread(target=train, daemon=True)
    t.start()
    t.join(120)
    assert done["path"] == ckpt_of(tmp_path) and os.path.exists(done["path"])


def test_a_curve_row_cut_by_a_crash_is_not_read(tmp_path):
    from neumip.training_curves import TrainingCurves

    curves = TrainingCurves(tmp_path, None)
    curves.log_loss(1, 0.5, 2.0)
    curves.log_loss(2, 0.25, 1.5)
    with open(curves.loss_path, "a") as fh:
        fh.write("3,0.125,1")  # "3,0.125,1.25\r\n" cut short: a complete-looking row without its line end
    assert [r["step"] for r in TrainingCurves._rows(curves.loss_path)] == ["1", "2"]
    TrainingCurves(tmp_path, 3)  # a resume from step 3 keeps whole rows only
    assert curves.loss_path.read_text().splitlines()[1:] == ["1,0.5,2", "2,0.25,1.5"]
