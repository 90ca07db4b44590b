"""Training MIPNet on shading: each step draws crops of the procedural training materials and
random light/view pairs, shades every level the cascade predicts with the project's BRDF, and
takes the L1 of tone-mapped values (x / (1 + x), sRGB) against the box average of level-0 shading,
averaged over the levels, as the official code (Adam; their L1 loss, over 32 Hammersley lights x
32 cosine-weighted views per step; here ``pairs`` random pairs, cosine-weighted, per step).

Checkpoints (weights, Adam, random state) go to ``out_dir/checkpoints/last.safetensors`` every
``ckpt_every`` steps, at the end and on Ctrl-C; ``resume=true`` continues from there. The end of
a run exports the fp16 weights (``out_dir/mipnet.safetensors``, and ``export`` if set), a JSONL
log and a loss plot.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from btf_data.brdf import isotropic_tensor
from neumip.checkpoint import load_optimizer_state, optimizer_state
from plumbing.atomic import atomic_path, check_output_dir, check_output_file
from plumbing.config_checks import is_power_of_two, require
from plumbing.tensor_files import CheckpointError, read_checkpoint, save_checkpoint
from plumbing.thread_share import adjust_threads, share_threads
from plumbing.tonemap import tonemap_torch
from renderer.baselines.mipnet import MIPNet, MIPNetArch, decode, encode, parameter_count, save_mipnet
from renderer.baselines.mipnet_data import CHANNELS, MaterialSetConfig, material_set
from renderer.baselines.pyramid import box_reduce, normalize
from renderer.baselines.shading import reference_levels, sample_directions, shade_grid


@dataclass
class MIPNetTrainConfig:
    """Options of ``mipnet-train`` (conf/mipnet_train.yaml; presets in conf/mipnet_preset/)."""

    arch: MIPNetArch = field(default_factory=MIPNetArch)
    data: MaterialSetConfig = field(default_factory=MaterialSetConfig)
    steps: int = 20000
    batch_size: int = 16
    """Crops per step."""
    crop: int = 32
    """Side of a level-0 crop; the loss covers its log2(crop) coarser levels (32: levels 1..5)."""
    pairs: int = 16
    """(wi, wo) pairs per step; every texel of every crop is shaded for each."""
    z_min: float = 0.25
    """Lowest cosine of the sampled directions (the direction sets reach about 75 degrees)."""
    lr: float = 1e-4
    height_dropout: float = 0.5
    """Probability that a crop's height channel is zeroed (normal-mapped planes have none)."""
    seed: int = 0
    out_dir: str = "outputs/mipnet"
    ckpt_every: int = 500
    eval_every: int = 500
    """Steps between held-out losses (a fixed batch of held-out crops and directions)."""
    resume: bool = False
    overwrite: bool = False
    """Start over in an out_dir that already holds a checkpoint (else that is refused)."""
    export: str | None = None
    """Also write the final fp16 weights here (the shipped file is
    renderer/baselines/weights/mipnet_cpu.safetensors)."""
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        require(self.steps >= 0, "steps", self.steps, ">= 0")
        require(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        require(self.pairs >= 1, "pairs", self.pairs, ">= 1")
        require(self.lr > 0, "lr", self.lr, "> 0")
        require(self.crop >= 4 and is_power_of_two(self.crop), "crop", self.crop, "a power of two >= 4")
        require(self.crop <= self.data.resolution, "crop", self.crop,
                f"at most data.resolution ({self.data.resolution})")
        require(self.ckpt_every >= 1 and self.eval_every >= 1, "ckpt_every/eval_every",
                (self.ckpt_every, self.eval_every), ">= 1")


@dataclass
class Batch:
    """Level-0 crops {field: (B, C, C, ch)}, their height channel (B, C, C) and directions."""

    level0: dict[str, torch.Tensor]
    height: torch.Tensor
    wi: torch.Tensor
    wo: torch.Tensor


def draw_batch(data: torch.Tensor, cfg: MIPNetTrainConfig, g: torch.Generator) -> Batch:
    """Random wrapped crops (tileable materials), flipped at random, and direction pairs."""
    n, r = data.shape[0], data.shape[1]
    b, c = cfg.batch_size, cfg.crop
    idx = torch.randint(n, (b,), generator=g)
    off = torch.randint(r, (b, 2), generator=g)
    rows = (off[:, 0:1] + torch.arange(c)) % r
    cols = (off[:, 1:2] + torch.arange(c)) % r
    crop = data[idx[:, None, None], rows[:, :, None], cols[:, None, :]].float()
    flip = torch.rand(b, 2, generator=g) < 0.5
    crop = torch.where(flip[:, 0, None, None, None], crop.flip(2), crop)  # mirror u: n_x -> -n_x
    crop = torch.where(flip[:, 1, None, None, None], crop.flip(1), crop)  # mirror v: n_y -> -n_y
    sign = torch.ones(b, 3)
    sign[:, 0] = torch.where(flip[:, 0], -1.0, 1.0)
    sign[:, 1] = torch.where(flip[:, 1], -1.0, 1.0)
    normal = crop[..., CHANNELS["normal"]] * sign[:, None, None, :]
    keep_height = (torch.rand(b, generator=g) >= cfg.height_dropout).float()
    level0 = {
        "normal": normal,
        "tensor": isotropic_tensor(crop[..., CHANNELS["alpha"]][..., 0]),
        "albedo": crop[..., CHANNELS["albedo"]],
        "metallic": crop[..., CHANNELS["metallic"]],
        "specular": crop[..., CHANNELS["specular"]],
    }
    return Batch(level0, crop[..., CHANNELS["height"]][..., 0] * keep_height[:, None, None],
                 sample_directions(cfg.pairs, cfg.z_min, g), sample_directions(cfg.pairs, cfg.z_min, g))


def box_fields(level0: dict[str, torch.Tensor], n_levels: int) -> list[dict[str, torch.Tensor]]:
    """Box averages of albedo, metallic and specular per level (MIPNet leaves them to the box)."""
    cur = {f: level0[f] for f in ("albedo", "metallic", "specular")}
    out = [cur]
    for _ in range(1, n_levels):
        cur = {f: box_reduce(v) for f, v in cur.items()}
        out.append(cur)
    return out


def _tonemapped_l1(preds: list[torch.Tensor], refs: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([(tonemap_torch(p) - tonemap_torch(r)).abs().mean()
                        for p, r in zip(preds, refs, strict=True)])


def level_losses(model: MIPNet, batch: Batch) -> torch.Tensor:
    """L1 of tone-mapped shading per coarse level, (n_levels - 1,): prediction vs reference."""
    n_levels = int(math.log2(batch.height.shape[-1])) + 1
    with torch.no_grad():
        refs = reference_levels(batch.level0, batch.wi, batch.wo, n_levels)
    x0 = encode(batch.level0["normal"], batch.level0["tensor"], batch.height)
    boxed = box_fields(batch.level0, n_levels)
    preds = []
    for k, x in enumerate(model(x0, n_levels)):
        if k > 0:
            normal, tensor = decode(x)
            preds.append(shade_grid({"normal": normal, "tensor": tensor, **boxed[k]}, batch.wi, batch.wo))
    return _tonemapped_l1(preds, refs[1:])


@torch.no_grad()
def naive_level_losses(batch: Batch) -> torch.Tensor:
    """The same losses for the ``naive`` pyramid of the batch (the bar MIPNet must clear)."""
    n_levels = int(math.log2(batch.height.shape[-1])) + 1
    refs = reference_levels(batch.level0, batch.wi, batch.wo, n_levels)
    boxed = box_fields(batch.level0, n_levels)
    normal = batch.level0["normal"]
    alpha = batch.level0["tensor"][..., 0:1].sqrt()
    preds = []
    for k in range(1, n_levels):
        normal, alpha = box_reduce(normal), box_reduce(alpha)
        params = {"normal": normalize(normal), "tensor": isotropic_tensor(alpha[..., 0]), **boxed[k]}
        preds.append(shade_grid(params, batch.wi, batch.wo))
    return _tonemapped_l1(preds, refs[1:])


class MIPNetTrainer:
    """The training loop with checkpoints and resume."""

    def __init__(self, cfg: MIPNetTrainConfig) -> None:
        self.cfg = cfg
        share_threads(cfg.threads)  # its share of the cores beside other jobs, or cfg.threads
        torch.manual_seed(cfg.seed)
        self.out_dir = check_output_dir(cfg.out_dir)
        if cfg.export:
            check_output_file(cfg.export)
        self.ckpt_path = self.out_dir / "checkpoints" / "last.safetensors"
        if self.ckpt_path.exists() and not cfg.resume and not cfg.overwrite:
            raise ValueError(f"{self.ckpt_path}: out_dir already holds a checkpoint; pass resume=true to "
                             "continue it or overwrite=true to start over")
        self.model = MIPNet(cfg.arch)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.seconds = 0.0
        cache = self.out_dir / "data"
        self.train_set = material_set(cfg.data, False, cache, cfg.progress)
        self.held_out = material_set(cfg.data, True, cache, cfg.progress)
        g = torch.Generator().manual_seed(cfg.seed + 1)
        self.eval_batch = draw_batch(self.held_out, cfg, g)
        self.naive_held_out = naive_level_losses(self.eval_batch).tolist()
        if cfg.resume:
            self._resume()

    def save(self) -> Path:
        tensors, meta = optimizer_state(self.optimizer)
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors["rng.batches"] = self.generator.get_state()
        return save_checkpoint(self.ckpt_path, tensors, {
            "kind": "mipnet_training", "step": self.step, "seconds": self.seconds,
            "train_config": asdict(self.cfg), **meta})

    def _resume(self) -> None:
        if not self.ckpt_path.exists():
            raise CheckpointError(self.ckpt_path, "resume=true but there is no checkpoint to resume")
        tensors, meta = read_checkpoint(self.ckpt_path)
        if meta.get("kind") != "mipnet_training":
            raise CheckpointError(self.ckpt_path, "not a MIPNet training checkpoint")
        saved = meta.get("train_config", {})
        for key in ("arch", "data", "crop"):
            if saved.get(key) != asdict(self.cfg).get(key):
                raise CheckpointError(self.ckpt_path, f"was trained with another {key!r} "
                                      f"({saved.get(key)}); resume with the same settings or a new out_dir")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        load_optimizer_state(self.optimizer, tensors, meta)
        self.generator.set_state(tensors["rng.batches"])
        self.step, self.seconds = int(meta["step"]), float(meta["seconds"])

    @torch.no_grad()
    def held_out_losses(self) -> list[float]:
        self.model.eval()
        out = level_losses(self.model, self.eval_batch).tolist()
        self.model.train()
        return out

    def _log(self, record: dict) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def fit(self) -> Path:
        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, desc="mipnet", unit="step", disable=not cfg.progress)
        t_start = time.perf_counter() - self.seconds
        try:
            while self.step < cfg.steps:
                adjust_threads()
                batch = draw_batch(self.train_set, cfg, self.generator)
                loss = level_losses(self.model, batch).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.step += 1
                self.seconds = time.perf_counter() - t_start
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
                record = {"step": self.step, "loss": loss.item(), "seconds": round(self.seconds, 2)}
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                    held = self.held_out_losses()
                    record["held_out"] = held
                    record["held_out_mean"] = sum(held) / len(held)
                    record["naive_held_out"] = self.naive_held_out
                if self.step % 50 == 0 or "held_out" in record:
                    self._log(record)
                if self.step % cfg.ckpt_every == 0:
                    self.save()
        except KeyboardInterrupt:
            self.save()
            bar.close()
            raise
        bar.close()
        self.save()
        return self.export()

    def export(self) -> Path:
        """fp16 weights with their training facts, the loss plot."""
        meta = {"steps": self.step, "train_seconds": round(self.seconds, 1),
                "parameters": parameter_count(self.model),
                "data": asdict(self.cfg.data), "crop": self.cfg.crop, "pairs": self.cfg.pairs,
                "batch_size": self.cfg.batch_size, "lr": self.cfg.lr,
                "held_out_losses": self.held_out_losses(), "naive_held_out_losses": self.naive_held_out}
        path = save_mipnet(self.out_dir / "mipnet.safetensors", self.model, meta)
        if self.cfg.export:
            save_mipnet(self.cfg.export, self.model, meta)
        self.plot()
        return path

    def plot(self) -> Path | None:
        log_path = self.out_dir / "log.jsonl"
        if not log_path.exists():
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
        fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
        ax.plot([r["step"] for r in records], [r["loss"] for r in records], lw=0.8, label="training batch")
        held = [r for r in records if "held_out_mean" in r]
        ax.plot([r["step"] for r in held], [r["held_out_mean"] for r in held], "o-",
                label="held-out materials")
        if held:
            naive = sum(self.naive_held_out) / len(self.naive_held_out)
            ax.axhline(naive, color="grey", ls="--", label="naive, held-out")
        ax.set_xlabel("step")
        ax.set_ylabel("L1 of tone-mapped shading")
        ax.set_title("MIPNet training (mean over levels 1..log2(crop))", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = self.out_dir / "loss.png"
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        return out
