"""NeuMIP training: the paper's loss and schedule on batches drawn from a BTF pyramid, with
wandb logging, atomic checkpoints, bit-identical resume on the CPU, and a checkpoint on Ctrl-C.

A run owns its ``out_dir`` (:class:`RunLock`) from the Trainer's creation to the end of ``fit``.
Ctrl-C is deferred to the end of the step it arrives in (:meth:`Trainer.fit`), so the checkpoint
it saves is always the state after a completed step: the same bytes an uninterrupted run holds at
that step, which is what makes ``resume=true`` bit-identical.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import torch
from tqdm import tqdm

from btf_data.btf_file import BTFFile, file_fingerprint
from btf_data.errors import BTFFormatError
from btf_data.generate import generate
from btf_data.sampler import PyramidSampler, SamplerConfig
from neumip import loss_native
from neumip.checkpoint import load_optimizer_state, optimizer_state
from neumip.config import ScheduleConfig, TrainConfig
from neumip.evaluate import evaluate_levels, level_sheet, scores_markdown, write_report
from neumip.grazing import GrazingLimits
from neumip.latent_pyramid import latent_level_count
from neumip.lobe_fit import fit_images, fit_lobe
from neumip.model import NeuMIP, model_config_from_meta
from neumip.training_curves import TrainingCurves
from plumbing.atomic import OutputPathError, atomic_path, check_output_dir
from plumbing.tensor_files import CheckpointError, read_checkpoint
from plumbing.thread_share import adjust_threads, share_threads

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked (RunLock says so)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: The file in out_dir whose flock marks the folder as taken by a running training.
LOCK_NAME = ".lock"
#: The evaluation suite's "this training finished" marker, next to the checkpoint.
FINISHED_NAME = "train_time.json"


def neumip_loss(pred: torch.Tensor, target: torch.Tensor, l1_weight: float) -> torch.Tensor:
    """MSE of log1p values (predictions clamped at -0.1 first, as the paper) + l1_weight * L1.
    On the CPU the native kernel computes it with its gradient in one pass (loss_native.py)."""
    native = loss_native.native_loss(pred, target, l1_weight)
    if native is not None:
        return native
    mse = torch.mean((torch.log1p(pred.clamp_min(-0.1)) - torch.log1p(target)) ** 2)
    return mse + l1_weight * torch.mean(torch.abs(pred - target))


def blur_sigma(step: int, s: ScheduleConfig) -> float:
    """Latent blur (level-0 texels): blur_start halving every blur_halving steps, >= blur_min."""
    return max(s.blur_start * 2.0 ** (-step / s.blur_halving), s.blur_min)


def ensure_data(cfg: TrainConfig) -> Path:
    """The training file; generated from cfg.data.generate when it does not exist yet and the
    data config names a synthetic material (a user's file is never replaced by a generated one)."""
    path = Path(cfg.data.path)
    if path.exists():
        return path
    gen = cfg.data.generate
    if not cfg.data.generate_if_missing or gen.material.name != cfg.data.name:
        raise BTFFormatError(path, f"no such file (data.name={cfg.data.name!r}); check data.path, or "
                             "use data=<material> to generate a synthetic one")
    log.info("%s does not exist: generating it", path)
    gen.out = str(path)
    gen.progress = cfg.progress
    generate(gen)
    return path


def resolve_wandb_mode(mode: str | None) -> str:
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    if mode not in ("online", "offline", "disabled"):
        raise ValueError(f"logger.mode must be online, offline or disabled, got {mode!r}")
    return mode


class RunFolderBusy(OutputPathError):
    """A run folder another training holds: two runs into one folder would interleave the curves
    and overwrite each other's checkpoint."""


class RunLock:
    """An exclusive ``flock`` on ``folder/.lock``, held until :meth:`release` or the process ends.

    The lock is the kernel's, not the file's: it goes with the process however that ends (kill -9,
    a crash, a reboot), so no stale lock is ever left to clear by hand; the empty file stays and
    means nothing by itself. The folder (and its missing parents) is created here; ``release(
    undo=True)`` removes what was created, for a run refused before it wrote anything.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._created: list[Path] = []
        cur = folder.absolute()
        while not cur.exists():
            self._created.append(cur)
            cur = cur.parent
        self._file = self._acquire()

    def _acquire(self) -> IO[str] | None:
        if fcntl is None:
            log.warning("%s: no flock on this system; two runs into this folder are not stopped", self.folder)
            return None
        while True:
            self.folder.mkdir(parents=True, exist_ok=True)  # again: a refused run may have just removed it
            fh = open(self.path, "a")  # noqa: SIM115 - held open for the life of the run
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise RunFolderBusy(self.folder, f"another training run is using this folder (it holds "
                                    f"{self.path}); wait for it to end, or give another out_dir") from None
            except OSError as e:  # a filesystem without locks: run, but say so
                fh.close()
                log.warning("%s: cannot lock (%s); two runs into this folder are not stopped", self.path, e)
                return None
            # Locked the file that is there now, not one removed meanwhile by a refused run's undo.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(fh.fileno()).st_ino:
                    return fh
            fh.close()

    def release(self, undo: bool = False) -> None:
        """Give the folder back; ``undo``: also remove the lock file and the folders made for it,
        where they are still empty."""
        if undo and self._created:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self._file is not None:
            self._file.close()
            self._file = None
        if undo:
            for d in self._created:  # the deepest first
                try:
                    d.rmdir()
                except OSError:
                    break
            self._created = []


@dataclass
class _OpenStep:
    """What a step changes before it touches the weights, as it was when the step began: enough
    to put a step interrupted before its weight update back to the previous step's state."""

    sampler_rng: torch.Tensor
    numpy_rng: dict
    torch_rng: torch.Tensor
    blur_sigma: float
    weights_touched: bool = False


def _finished_at(marker: Path) -> int | None:
    """The step count a run's finished marker records, or None (no marker, or not one)."""
    try:
        steps = json.loads(marker.read_text()).get("total_steps")
    except (OSError, ValueError, AttributeError):
        return None
    return steps if isinstance(steps, int) else None


class Trainer:
    """Owns the model, optimiser, sampler and logger of one run, and the lock on its out_dir."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        share_threads(cfg.threads)  # its share of the cores beside other jobs, or cfg.threads
        self.device = torch.device(cfg.device)
        if cfg.deterministic and self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
            # Deterministic mode also fills every new tensor with NaN (a guard against reading
            # memory never written): a pass over each buffer of a step (the bf16 training MLPs keep
            # 25 MB of activations at batch 65,536; issue 22). Every buffer here is written before
            # it is read.
            torch.utils.deterministic.fill_uninitialized_memory = False
        self.out_dir = check_output_dir(cfg.out_dir)  # before the data is made or a step is taken
        self.ckpt_path = self.out_dir / "checkpoints" / "last.safetensors"
        self._lock: RunLock | None = RunLock(self.out_dir)  # before anything in out_dir is read
        self.btf: BTFFile | None = None
        try:
            self._set_up(cfg)
        except BaseException:
            if self.btf is not None:
                self.btf.close()
            self._lock.release(undo=True)  # a refused run leaves no folder behind
            self._lock = None
            raise

    def release_folder(self) -> None:
        """Give the run folder back to other runs (``fit`` does when it ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        """Release the run folder and close the data file (a Trainer holds the file after
        ``fit``, for scoring the model on it, until this or its garbage collection)."""
        self.release_folder()
        if self.btf is not None:
            self.btf.close()

    def _set_up(self, cfg: TrainConfig) -> None:
        if self.ckpt_path.exists() and not cfg.resume and not cfg.overwrite:
            raise ValueError(f"{self.ckpt_path}: out_dir already holds a checkpoint; pass resume=true to "
                             "continue it or overwrite=true to start over")
        torch.manual_seed(cfg.seed)
        self.btf = BTFFile(ensure_data(cfg))
        h, w = self.btf.resolution(0)
        if h != w:
            raise ValueError(f"{self.btf.path}: NeuMIP needs square textures, got {h} x {w}")
        if len(self.btf.pairs("held_out")) == 0:  # else training fails at its first evaluation
            raise ValueError(f"{self.btf.path}: no held-out (wo, wi) pairs to evaluate on; make the file "
                             "with held_out_fraction > 0 (e.g. 0.1)")
        data = self.btf.path.resolve()
        meta = {"name": self.btf.name, "path": str(data),
                "path_from_checkpoint": os.path.relpath(data, self.ckpt_path.parent.resolve()),
                "fingerprint": file_fingerprint(data), "resolution": h,
                "n_levels": self.btf.n_levels, "filter": self.btf.filter,
                **GrazingLimits.of_directions(self.btf.wi_dirs, self.btf.wo_dirs).metadata()}
        self.model = NeuMIP(cfg.model, h, meta).to(self.device)
        log.info("NeuMIP on %s, MLP backend %s, %d parameters", self.device, self.model.backend,
                 sum(p.numel() for p in self.model.parameters()))
        o = cfg.optim
        lobe = [p for n, p in self.model.named_parameters() if n.startswith("lobe.")]
        rest = [p for n, p in self.model.named_parameters() if not n.startswith("lobe.")]
        groups = [{"params": rest}] + ([{"params": lobe, "lr": cfg.schedule.lobe_lr}] if lobe else [])
        # fused=True: one kernel per parameter instead of a pass per term (0.53-1.18 -> 0.19-0.29 ms a
        # step for model=plus, issue 22). It updates the parameters without bumping their version counters,
        # which the inference caches (the MLP's packed weights, the neural offset's blurred
        # texture) follow: train_step bumps them itself.
        self.optimizer = torch.optim.Adam(groups, lr=o.lr, betas=(o.beta1, o.beta2), fused=True)
        # Lods the full latent pyramid covers (it stops at 2 x 2); the ablations train on the same.
        max_lod = min(self.btf.n_levels, latent_level_count(h)) - 1
        scfg = SamplerConfig(batch_size=cfg.schedule.batch_size, subset="train",
                             memory_budget_mib=cfg.data.memory_budget_mib,
                             images_per_step=cfg.data.images_per_step, max_lod=float(max_lod),
                             lod_power=cfg.schedule.lod_power, lod_sampling=cfg.schedule.lod_sampling,
                             pairs_per_batch=cfg.schedule.pairs_per_batch)
        self.sampler = PyramidSampler(self.btf, scfg, self.device, seed=cfg.seed)
        self.step = 0
        self.run = None
        self._seconds_before, self._fit_t0 = 0.0, None
        self._open_step: _OpenStep | None = None  # set while a train_step runs
        self._stop_requested = False
        self._saved_step: int | None = None  # the step of this run's checkpoint on disk
        if cfg.resume:
            self._resume(meta["fingerprint"])

    # -- state ---------------------------------------------------------------------------------
    def _state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, optim_meta = optimizer_state(self.optimizer)
        tensors["rng.sampler"] = self.sampler.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "step": self.step,
            **optim_meta,
            "rng_numpy": self.sampler.rng.bit_generator.state,
            "train_config": asdict(self.cfg),
            "train_seconds": self.train_seconds(),
        }
        return tensors, meta

    def train_seconds(self) -> float:
        """Seconds of training so far, over every resumed part of the run."""
        running = time.perf_counter() - self._fit_t0 if self._fit_t0 is not None else 0.0
        return self._seconds_before + running

    def save(self) -> Path:
        tensors, meta = self._state_tensors()
        path = self.model.save(self.ckpt_path, tensors, meta)
        self._saved_step = self.step
        return path

    def _resume(self, fingerprint: str) -> None:
        if not self.ckpt_path.exists():
            raise CheckpointError(self.ckpt_path, "resume=true but there is no checkpoint to resume")
        path = self.ckpt_path
        tensors, meta = read_checkpoint(path, "cpu")
        for key, kind in (("step", int), ("optim_param_groups", list), ("optim_scalars", dict),
                          ("rng_numpy", dict), ("data", dict), ("model", dict)):
            if not isinstance(meta.get(key), kind):
                raise CheckpointError(path, f"cannot resume: metadata field {key!r} is missing or not a "
                                      f"{kind.__name__} (a model-only or foreign checkpoint?)")
        for key in ("rng.sampler", "rng.torch"):
            if key not in tensors:
                raise CheckpointError(path, f"cannot resume: no tensor {key!r} (a model-only checkpoint?)")
        trained = model_config_from_meta(path, meta, self.cfg.model.backend)  # old fields filled in
        if asdict(trained) != asdict(self.cfg.model):
            diff = sorted(k for k, v in asdict(self.cfg.model).items() if getattr(trained, k) != v)
            raise CheckpointError(path, f"cannot resume: trained with another model ({', '.join(diff)} "
                                  "differ); use the same model config or a new out_dir")
        trained_on, now = meta["data"].get("path"), str(self.btf.path)
        if trained_on is None or Path(trained_on).resolve() != Path(now).resolve() or \
                meta["data"].get("resolution") != self.btf.resolution(0)[0]:
            raise CheckpointError(path, f"cannot resume: trained on {trained_on}, this run uses {now}; "
                                  "use the same data or a new out_dir")
        if meta["data"].get("fingerprint") not in (None, fingerprint):  # older checkpoints: none
            raise CheckpointError(self.btf.path, f"is not the file {path} was trained on (same name, other "
                                  "contents); resume=true needs that file: pass overwrite=true to start "
                                  "over on this one, or give a new out_dir")
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(state)
            load_optimizer_state(self.optimizer, tensors, meta)
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(path, f"cannot resume: its weights or optimiser state do not fit "
                                  f"({str(e).splitlines()[0]})") from None
        self.sampler.generator.set_state(tensors["rng.sampler"])
        torch.set_rng_state(tensors["rng.torch"])
        self.sampler.rng.bit_generator.state = meta["rng_numpy"]
        self.step = self._saved_step = meta["step"]
        self._seconds_before = float(meta.get("train_seconds", 0.0))  # older checkpoints: unknown, 0
        log.info("resumed from %s at step %d", self.ckpt_path, self.step)

    # -- logging -------------------------------------------------------------------------------
    def _start_logger(self) -> None:
        mode = resolve_wandb_mode(self.cfg.logger.mode)
        if mode == "disabled":
            return
        import wandb

        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=self.cfg.logger.project, name=self.cfg.logger.name,
                              mode=mode, dir=str(self.out_dir), config=asdict(self.cfg),
                              resume="allow" if self.cfg.resume else None)

    def _log(self, data: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(data, step=self.step)

    def evaluate(self, final: bool = False) -> list:
        """Score the held-out pairs: during training ``logger.curve_pairs`` of them (every one by
        default) for the curves, one point per step; at the end every one, for eval.md (the same
        numbers as the curve's last point when the curves score every pair)."""
        n_held_out = len(self.btf.pairs("held_out"))
        subset = self.cfg.logger.curve_pairs
        every = subset is None or subset >= n_held_out
        scores = None
        if self.curves.last_psnr_step() != self.step:
            scores = evaluate_levels(self.model, self.btf, self.cfg.eval_levels, "held_out",
                                     self.device, max_pairs=None if every else subset)
            self.curves.log_psnr(self.step, [s.psnr for s in scores])
            which = f"all {n_held_out}" if every else f"{subset} of the {n_held_out}"
            self.curves.plot(f"{self.btf.name}: training curves (held-out PSNR on {which} held-out pairs"
                             + ("" if every else ", spread over all of them") + ")")
        data: dict[str, Any] = {f"psnr/level{s.level}": s.psnr for s in scores or []}
        if final:
            if scores is None or not every:
                scores = evaluate_levels(self.model, self.btf, self.cfg.eval_levels, "held_out", self.device)
            data.update({f"final_psnr/level{s.level}": s.psnr for s in scores})
        i_wo, i_wi = (int(x) for x in self.btf.pairs("held_out")[0])
        sheet = level_sheet(self.model, self.btf, i_wo, i_wi, self.cfg.eval_levels,
                            self.out_dir / "gt_vs_model.png", self.device,
                            title=f"{self.btf.name}, step {self.step}, a held-out pair")
        if self.run is not None:
            import wandb

            data["images/gt_vs_model"] = wandb.Image(str(sheet), caption="top: ground truth, bottom: NeuMIP")
        self._log(data)
        return scores

    # -- the loop ------------------------------------------------------------------------------
    def train_step(self) -> float:
        """One optimiser step. Until the weights are touched (fuse_blur, the optimiser step), what
        it changed can be put back (:meth:`_roll_back_open_step`): the random states, a few bytes
        each, are kept from its start for that."""
        s = self.cfg.schedule
        adjust_threads()
        self._open_step = _OpenStep(self.sampler.generator.get_state(), self.sampler.rng.bit_generator.state,
                                    torch.get_rng_state(), float(self.model.blur_sigma))
        self.model.blur_sigma.fill_(blur_sigma(self.step, s))
        if self.model.offset is not None:
            self.model.offset.texture.requires_grad_(self.step < s.offset_freeze)
        if s.fuse_blur_every and self.step < s.fuse_blur_until and self.step % s.fuse_blur_every == 0:
            self._open_step.weights_touched = True
            self.model.pyramid.fuse_blur(s.fuse_blur_weight, s.fuse_blur_sigma)
        batch = self.sampler.sample()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            pred = self.model(batch.uv, batch.wi, batch.wo, batch.lod, check=False)
        loss = neumip_loss(pred.float(), batch.rgb, s.l1_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._open_step.weights_touched = True
        self.optimizer.step()
        # what the fused step wrote: the parameters with a gradient (a frozen one keeps its caches)
        torch.autograd.graph.increment_version(
            [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None])
        self.step += 1
        self._open_step = None
        return loss.item()

    def _roll_back_open_step(self) -> bool:
        """Back to the state after the last completed step; False when that cannot be (a step
        stopped inside its weight update, which only an exception raised there, not Ctrl-C, does)."""
        st = self._open_step
        if st is None:
            return True
        if st.weights_touched:
            return False
        self.sampler.generator.set_state(st.sampler_rng)
        self.sampler.rng.bit_generator.state = st.numpy_rng
        torch.set_rng_state(st.torch_rng)
        self.model.blur_sigma.fill_(st.blur_sigma)
        self._open_step = None
        return True

    @contextlib.contextmanager
    def _ctrl_c_at_step_ends(self) -> Iterator[None]:
        """SIGINT sets a flag that the loop reads after each step (its logging, evaluation and
        checkpoint included), so Ctrl-C never stops a step half-way, wherever it lands (in the
        sampler, the backward pass, the optimiser step). A second Ctrl-C stops at once unless a
        weight update is under way. Only the main thread receives signals; elsewhere nothing
        changes."""
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # e.g. started with nohup ... &
            yield
            return

        def on_sigint(signum: int, frame: Any) -> None:
            busy = self._open_step is not None and self._open_step.weights_touched
            if self._stop_requested and not busy:
                raise KeyboardInterrupt
            self._stop_requested = True

        self._stop_requested = False
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _interrupted(self) -> None:
        """Ctrl-C: save the state after the last completed step, as an uninterrupted run has it."""
        if self._roll_back_open_step():
            path = self.save()
            print(f"\ninterrupted after step {self.step}: checkpoint saved to {path} "
                  "(continue with resume=true)")
            return
        kept = (f"{self.ckpt_path} (step {self._saved_step}) is kept" if self._saved_step is not None
                else "no checkpoint of this run was written")
        print(f"\ninterrupted inside the weight update of step {self.step + 1}: its state is neither "
              f"step's, so it is not saved; {kept} (continue with resume=true)")

    def fit_lobe(self) -> None:
        """model=hybrid: the lobe pyramid fitted to the BTF's training pairs before step 0 (its
        seconds count as training time). Not resumable by itself: a run stopped here has no
        checkpoint and starts again."""
        s = self.cfg.schedule
        images, wi, wo = fit_images(self.btf, s.lobe_fit_images, self.cfg.seed, self.device)
        result = fit_lobe(self.model.lobe, images, wi, wo, lambda p, t: neumip_loss(p, t, s.l1_weight),
                          s.lobe_fit_steps, s.lobe_fit_pairs, s.lobe_fit_lr, self.cfg.seed, self.cfg.progress)
        log.info("lobe fit: %d steps in %.1f s, loss per level %s", s.lobe_fit_steps, result.seconds,
                 " ".join(f"{x:.3g}" for x in result.loss_per_level))
        self._log({f"lobe_fit/loss_level{k}": x for k, x in enumerate(result.loss_per_level)})

    def fit(self) -> Path:
        """Train to cfg.schedule.steps, evaluate, write the report; returns the checkpoint path.
        A resumed run that already finished (its marker names its step) changes no file."""
        try:
            return self._fit()
        finally:
            self.release_folder()

    def _fit(self) -> Path:
        cfg = self.cfg
        marker = self.ckpt_path.parent / FINISHED_NAME
        if cfg.resume and self.step >= cfg.schedule.steps and _finished_at(marker) == self.step:
            past = "" if self.step == cfg.schedule.steps else f", past schedule.steps={cfg.schedule.steps}"
            print(f"{self.out_dir}: this run finished at step {self.step}{past}; nothing to do, every file "
                  "is left as it is (raise schedule.steps to train on)")
            return self.ckpt_path
        self._start_logger()
        self.curves = TrainingCurves(self.out_dir, self.step if self.cfg.resume else None)
        marker.unlink(missing_ok=True)  # not finished yet
        t0, start = time.perf_counter(), self.step
        self._fit_t0 = t0
        if self.step == 0 and self.model.lobe is not None and cfg.schedule.lobe_fit_steps:
            self.fit_lobe()
        bar = tqdm(total=cfg.schedule.steps, initial=self.step, desc="train", unit="step",
                   disable=not cfg.progress)
        try:
            with self._ctrl_c_at_step_ends():
                while self.step < cfg.schedule.steps:
                    loss = self.train_step()
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss} at step {self.step}")
                    if self.step % cfg.logger.log_every == 0:
                        bar.set_postfix(loss=f"{loss:.4g}", blur=f"{float(self.model.blur_sigma):.2f}")
                        self._log({"loss": loss, "blur_sigma": float(self.model.blur_sigma)})
                        self.curves.log_loss(self.step, loss, float(self.model.blur_sigma))
                    bar.update(1)
                    if cfg.logger.eval_every and self.step % cfg.logger.eval_every == 0:
                        self.evaluate()
                    if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                        self.save()
                    if self._stop_requested:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            self._interrupted()
            raise
        bar.close()
        seconds = time.perf_counter() - t0
        steps = self.step - start
        # A resume that took no step (the run ended, its final evaluation did not) keeps its checkpoint.
        path = self.save() if steps or not cfg.resume else self.ckpt_path
        total = self.train_seconds()
        self._seconds_before, self._fit_t0 = total, None
        scores = self.evaluate(final=True)
        batch = cfg.schedule.batch_size
        qps = steps * batch / seconds if steps and seconds > 0 else self.step * batch / max(total, 1e-9)
        title = (f"{self.btf.name}: {self.step} steps, {total / 60:.1f} min, "
                 f"{qps:,.0f} training queries/s on {self.device}")
        write_report(scores, path.parent, title)
        with atomic_path(marker) as tmp:  # last: its presence says the run and its report are complete
            tmp.write_text(json.dumps({"steps": steps, "seconds": seconds, "queries_per_second": qps,
                                       "total_steps": self.step, "total_seconds": total}))
        print(scores_markdown(scores, title))
        if self.run is not None:
            self.run.summary.update({"train_seconds": seconds, "train_qps": qps})
            self.run.finish()
        return path
