"""NeuMIP training: the paper's loss and schedule on batches drawn from a BTF pyramid, with
wandb logging, atomic checkpoints, bit-identical resume on the CPU, and a checkpoint on Ctrl-C."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from btf_data.btf_file import BTFFile, file_fingerprint
from btf_data.errors import BTFFormatError
from btf_data.generate import generate
from btf_data.sampler import PyramidSampler, SamplerConfig
from neumip.checkpoint import load_optimizer_state, optimizer_state
from neumip.config import ScheduleConfig, TrainConfig
from neumip.evaluate import evaluate_levels, level_sheet, scores_markdown, write_report
from neumip.latent_pyramid import latent_level_count
from neumip.model import NeuMIP, model_config_from_meta
from neumip.training_curves import TrainingCurves
from plumbing.atomic import check_output_dir
from plumbing.tensor_files import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)


def neumip_loss(pred: torch.Tensor, target: torch.Tensor, l1_weight: float) -> torch.Tensor:
    """MSE of log1p values (predictions clamped at -0.1 first, as the paper) + l1_weight * L1."""
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


class Trainer:
    """Owns the model, optimiser, sampler and logger of one run."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = torch.device(cfg.device)
        if cfg.deterministic and self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.out_dir = check_output_dir(cfg.out_dir)  # before the data is made or a step is taken
        self.ckpt_path = self.out_dir / "checkpoints" / "last.safetensors"
        if self.ckpt_path.exists() and not cfg.resume and not cfg.overwrite:
            raise ValueError(f"{self.ckpt_path}: out_dir already holds a checkpoint; pass resume=true to "
                             "continue it or overwrite=true to start over")
        torch.manual_seed(cfg.seed)
        self.btf = BTFFile(ensure_data(cfg))
        h, w = self.btf.resolution(0)
        if h != w:
            raise ValueError(f"{self.btf.path}: NeuMIP needs square textures, got {h} x {w}")
        data = self.btf.path.resolve()
        meta = {"name": self.btf.name, "path": str(data),
                "path_from_checkpoint": os.path.relpath(data, self.ckpt_path.parent.resolve()),
                "fingerprint": file_fingerprint(data), "resolution": h,
                "n_levels": self.btf.n_levels, "filter": self.btf.filter}
        self.model = NeuMIP(cfg.model, h, meta).to(self.device)
        log.info("NeuMIP on %s, MLP backend %s, %d parameters", self.device, self.model.backend,
                 sum(p.numel() for p in self.model.parameters()))
        o = cfg.optim
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2))
        # Lods the full latent pyramid covers (it stops at 2 x 2); the ablations train on the same.
        max_lod = min(self.btf.n_levels, latent_level_count(h)) - 1
        scfg = SamplerConfig(batch_size=cfg.schedule.batch_size, subset="train",
                             memory_budget_mib=cfg.data.memory_budget_mib,
                             images_per_step=cfg.data.images_per_step, max_lod=float(max_lod),
                             lod_power=cfg.schedule.lod_power, lod_sampling=cfg.schedule.lod_sampling)
        self.sampler = PyramidSampler(self.btf, scfg, self.device, seed=cfg.seed)
        self.step = 0
        self.run = None
        self._seconds_before, self._fit_t0 = 0.0, None
        if cfg.resume:
            self._resume()

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
        return self.model.save(self.ckpt_path, tensors, meta)

    def _resume(self) -> None:
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
        self.step = meta["step"]
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
        pairs = None if final else 8  # a quick subset during training, all held-out pairs at the end
        scores = evaluate_levels(self.model, self.btf, self.cfg.eval_levels, "held_out",
                                 self.device, max_pairs=pairs)
        data: dict[str, Any] = {f"psnr/level{s.level}": s.psnr for s in scores}
        self.curves.log_psnr(self.step, [s.psnr for s in scores])
        self.curves.plot(f"{self.btf.name}: training curves (held-out PSNR on "
                         f"{'all' if final else 'the first 8'} held-out pairs)")
        i_wo, i_wi = (int(x) for x in self.btf.pairs("held_out")[0])
        sheet = level_sheet(self.model, self.btf, i_wo, i_wi, self.cfg.eval_levels,
                            self.out_dir / "gt_vs_model.png", self.device,
                            title=f"{self.btf.name}, step {self.step}, a held-out view/light pair")
        if self.run is not None:
            import wandb

            data["images/gt_vs_model"] = wandb.Image(str(sheet), caption="top: ground truth, bottom: NeuMIP")
        self._log(data)
        return scores

    # -- the loop ------------------------------------------------------------------------------
    def train_step(self) -> float:
        s = self.cfg.schedule
        self.model.blur_sigma.fill_(blur_sigma(self.step, s))
        if self.model.offset is not None:
            self.model.offset.texture.requires_grad_(self.step < s.offset_freeze)
        if s.fuse_blur_every and self.step < s.fuse_blur_until and self.step % s.fuse_blur_every == 0:
            self.model.pyramid.fuse_blur(s.fuse_blur_weight, s.fuse_blur_sigma)
        batch = self.sampler.sample()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            pred = self.model(batch.uv, batch.wi, batch.wo, batch.lod, check=False)
        loss = neumip_loss(pred.float(), batch.rgb, s.l1_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.item()

    def fit(self) -> Path:
        """Train to cfg.schedule.steps, evaluate, write the report; returns the checkpoint path."""
        cfg = self.cfg
        self._start_logger()
        self.curves = TrainingCurves(self.out_dir, self.step if self.cfg.resume else None)
        (self.out_dir / "checkpoints" / "train_time.json").unlink(missing_ok=True)  # not finished yet
        t0, start = time.perf_counter(), self.step
        self._fit_t0 = t0
        bar = tqdm(total=cfg.schedule.steps, initial=self.step, desc="train", unit="step",
                   disable=not cfg.progress)
        try:
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
        except KeyboardInterrupt:
            bar.close()
            path = self.save()
            print(f"\ninterrupted at step {self.step}: checkpoint saved to {path} "
                  f"(continue with resume=true)")
            raise
        bar.close()
        seconds = time.perf_counter() - t0
        path = self.save()
        total = self.train_seconds()
        self._seconds_before, self._fit_t0 = total, None
        scores = self.evaluate(final=True)
        steps = self.step - start
        qps = steps * cfg.schedule.batch_size / max(seconds, 1e-9)
        title = (f"{self.btf.name}: {self.step} steps, {seconds / 60:.1f} min, "
                 f"{qps:,.0f} training queries/s on {self.device}")
        write_report(scores, path.parent, title)
        with (path.parent / "train_time.json").open("w") as f:
            json.dump({"steps": steps, "seconds": seconds, "queries_per_second": qps,
                       "total_steps": self.step, "total_seconds": total}, f)
        print(scores_markdown(scores, title))
        if self.run is not None:
            self.run.summary.update({"train_seconds": seconds, "train_qps": qps})
            self.run.finish()
        return path
