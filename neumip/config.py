"""Typed configuration of the NeuMIP model, its training and its evaluation. The hydra files in
conf/ mirror these dataclasses; only the entry points in neumip/cli see DictConfig."""

from __future__ import annotations

from dataclasses import dataclass, field

from btf_data.generate import GenerateConfig
from neumip.direction_encoding import ENCODINGS
from plumbing.config_checks import require


@dataclass
class ModelConfig:
    """NeuMIP's architecture; defaults are the paper's (Kuznetsov et al. 2021, section 4)."""

    latent_channels: int = 7
    """Channels of every latent pyramid level."""
    levels: int | None = None
    """Latent levels: None = full pyramid (data resolution down to 2 x 2); 1 = single-level
    ablation."""
    use_offset: bool = True
    """The neural offset (learned parallax); False = the no-offset ablation."""
    offset_channels: int = 7
    offset_width: int = 32
    """Hidden width of the offset MLP (the paper's 25 is not a FullyFusedMLP width; 32 is the
    smallest one above it)."""
    offset_layers: int = 3
    decoder_width: int = 32
    decoder_layers: int = 3
    decoder: str = "yuv_log"
    """The decoder and its output head, a name of ``neumip.decoder.DECODERS``: ``yuv_log`` = the
    paper's, the MLP predicts YUV log-radiance t, rgb = expm1(YUV->RGB(t)) (times the shadow mask
    when ``shadow_mask``)."""
    backend: str = "auto"
    """MLP backend: auto (tcnn when available), torch or tcnn."""
    depth_scale: float = 0.05
    """Offset depth r = depth_scale * MLP output (uv units). The official code scales the offset
    network's output by 0.1 in [-1, 1] grid units: 0.05 in uv."""
    min_cos: float = 0.6
    """The uv shift divides by max(wo.z, min_cos)."""
    offset_blur_min: float = 1.0
    """The offset texture is always read blurred by at least this sigma (level-0 texels), as the
    official code's ``nom_min_sigma``: the offset stays smooth, so parallax never tears."""
    direction_encoding: str = "xy"
    """How wi and wo enter the decoder: ``xy`` (the paper), ``sh3`` (16 real spherical
    harmonics each, as NeuralBTF), ``equi`` (azimuthal equidistant: elevation-proportional) or
    ``equi_tan`` (equi plus tan(theta)-aware shadow features); see neumip/direction_encoding.py."""
    shadow_mask: bool = True
    """The official decoder's learned shadow mask: 3 extra outputs m, rgb *= 0.1 + sigmoid(m)."""
    init_std: float = 0.1
    """Latent initialisation N(0, init_std^2)."""
    horizon_azimuths: int = 0
    """Shadow-aware latents (neumip/horizon.py): a learned horizon per texel and level for this
    many azimuths, turned into the soft visibility of the light and of the view, two more decoder
    inputs. 0: off (the paper)."""

    #: Values of fields that checkpoints written before the field existed were trained with.
    LEGACY = {"offset_blur_min": 0.0, "shadow_mask": False, "decoder": "yuv_log"}

    @property
    def decoder_latent_width(self) -> int:
        """What the decoder reads per query besides the directions: the latent, and the two
        soft visibilities when the horizons are on."""
        return self.latent_channels + (2 if self.horizon_azimuths else 0)

    def __post_init__(self) -> None:
        require(self.horizon_azimuths == 0 or self.horizon_azimuths >= 2, "model.horizon_azimuths",
                self.horizon_azimuths, "0 (off) or >= 2")
        for key in ("latent_channels", "offset_channels", "offset_width", "offset_layers",
                    "decoder_width", "decoder_layers"):
            require(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), ">= 1")
        require(self.levels is None or self.levels >= 1, "model.levels", self.levels, "null or >= 1")
        require(self.direction_encoding in ENCODINGS, "model.direction_encoding",
                self.direction_encoding, f"one of {', '.join(ENCODINGS)}")
        require(self.backend in ("auto", "torch", "tcnn"), "model.backend", self.backend,
                "auto, torch or tcnn")
        from neumip.decoder import DECODERS  # here, not at the top: the decoders import this module

        require(self.decoder in DECODERS, "model.decoder", self.decoder, f"one of {', '.join(DECODERS)}")


@dataclass
class DataConfig:
    """The material to learn: an HDF5 BTF file, generated first when it is missing."""

    name: str = "weave"
    path: str = "outputs/data/${data.name}${data.directions_tag}.h5"
    directions_tag: str = ""
    """Appended to generated files' names: ``_random`` for ``dirs=random``, so the continuous-
    direction file of a material sits beside its grid file and never replaces it."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    """How to make the file when it does not exist (material, resolution, directions)."""
    generate_if_missing: bool = True
    """Make the file when it is missing: only for the named synthetic materials (conf/data/
    <name>.yaml); ``data=file`` sets it false, so a mistyped path is an error, not a new weave."""
    memory_budget_mib: int = 2048
    """Hold the training pyramid in memory up to this size, else stream images."""
    images_per_step: int = 16
    """Streaming mode: images read per step."""


@dataclass
class OptimConfig:
    """Adam, as the paper."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999

    def __post_init__(self) -> None:
        require(self.lr > 0, "optim.lr", self.lr, "> 0")


@dataclass
class ScheduleConfig:
    """Steps, batches and the paper's schedule of latent blur and offset freezing."""

    steps: int = 30000
    batch_size: int = 2**20
    blur_start: float = 8.0
    """Latent blur sigma at step 0, in level-0 texels."""
    blur_halving: float = 3333.0
    """Steps over which the blur sigma halves (8 -> 1 texel by 10k steps)."""
    blur_min: float = 0.0
    """The blur never goes below this sigma (0: it fades out)."""
    offset_freeze: int = 10000
    """The offset texture stops learning at this step."""
    l1_weight: float = 0.1
    """Loss = MSE(log1p(y_hat), log1p(y)) + l1_weight * L1(y_hat, y)."""
    lod_sampling: str = "official"
    """How training lods are drawn: ``official`` (as straintensor/NeuMIP: 10% at lod 0, 30%
    uniform in [0, max] (log-uniform footprints), 60% with P(lod > l) = 4^-l; 59% of queries fall
    below lod 1) or ``power`` (max_lod * u^lod_power)."""
    lod_power: float = 1.0
    """``power`` sampling only: 1 = uniform over the levels, > 1 favours the fine levels."""
    pairs_per_batch: int = 0
    """0: every query of a batch has its own random (wo, wi) pair (the paper's sampling). K > 0:
    coherent batches of K pairs x batch_size / K queries, whose ground truth is read from K whole
    images (btf_data.sampler.SamplerConfig.pairs_per_batch): a cheaper sampler, fewer pairs per
    step. batch_size must be a multiple of K."""
    fuse_blur_every: int = 100
    """Official ``fuse_blur``: every this many steps, while step < fuse_blur_until, each latent
    level becomes (1 - w) T + w blur(T) (w = fuse_blur_weight, sigma fuse_blur_sigma texels of
    its own level), which keeps neighbouring texels' latents correlated early on. 0: off."""
    fuse_blur_until: int = 3000
    fuse_blur_weight: float = 0.1
    fuse_blur_sigma: float = 1.03
    lobe_fit_steps: int = 800
    """model=hybrid: before step 0, the lobe pyramid is fitted alone to the BTF's training pairs,
    every level at once, for this many Adam steps (neumip/lobe_fit.py). 0: no fit. 800 is what
    the hybrid variants were measured with (issue 20's screen); 1,600 fits the lobe alone 3-6 dB
    better on leather (below) at about twice the fit's time, not yet measured after training."""
    lobe_fit_pairs: int = 8
    """(wo, wi) pairs shaded per lobe-fit step (every texel of every level for each)."""
    lobe_fit_images: int = 256
    """Training pairs held in memory for the lobe fit (all their levels), drawn when there are more."""
    lobe_fit_lr: float = 2e-2
    """The lobe fit's rate, falling to 1/100 of it (cosine). Measured on leather 128^2, 8 pairs per
    step, held-out PSNR of the lobe alone at levels 0-5: 300 steps at 5e-2 49-54 dB (1e-1
    diverged to 22-25 dB); at 2e-2, 800 steps 54.4-55.8 dB, 1600 steps 57.4-61.5 dB (`fit`, from
    the SVBRDF maps: 58.8-61.6 at levels 1-5). On a 16^2 plane 1000 steps at 2e-2 reached 54 dB
    where 5e-2 stalled at 45-52."""
    lobe_lr: float = 3e-4
    """model=hybrid: the rate of the (fitted) lobe texels in the joint training after the fit."""

    def __post_init__(self) -> None:
        require(self.steps >= 0, "schedule.steps", self.steps, ">= 0")
        require(self.batch_size >= 1, "schedule.batch_size", self.batch_size, ">= 1")
        require(self.blur_halving > 0, "schedule.blur_halving", self.blur_halving, "> 0")
        require(self.lod_power > 0, "schedule.lod_power", self.lod_power, "> 0")
        k = self.pairs_per_batch
        require(k == 0 or (k > 0 and self.batch_size % k == 0), "schedule.pairs_per_batch", k,
                f"0 or a divisor of batch_size {self.batch_size}")
        require(self.lod_sampling in ("official", "power"), "schedule.lod_sampling", self.lod_sampling,
                "official or power")
        require(self.fuse_blur_every >= 0, "schedule.fuse_blur_every", self.fuse_blur_every, ">= 0")
        require(0.0 <= self.fuse_blur_weight <= 1.0, "schedule.fuse_blur_weight", self.fuse_blur_weight,
                "in [0, 1]")
        require(self.lobe_fit_steps >= 0, "schedule.lobe_fit_steps", self.lobe_fit_steps, ">= 0")
        require(self.lobe_fit_pairs >= 1 and self.lobe_fit_images >= 1, "schedule.lobe_fit_pairs/images",
                (self.lobe_fit_pairs, self.lobe_fit_images), ">= 1")
        require(self.lobe_fit_lr > 0 and self.lobe_lr >= 0, "schedule.lobe_fit_lr/lobe_lr",
                (self.lobe_fit_lr, self.lobe_lr), "> 0 / >= 0")
        require(self.blur_start >= 0 and self.blur_min >= 0, "schedule.blur_start/blur_min",
                (self.blur_start, self.blur_min), ">= 0")


@dataclass
class LoggerConfig:
    """wandb logging: offline unless the user opts in."""

    mode: str | None = None
    """online, offline or disabled; None = $WANDB_MODE, else offline."""
    project: str = "neumip"
    name: str | None = None
    log_every: int = 50
    """Steps between loss logs (and progress-bar updates)."""
    eval_every: int = 1000
    """Steps between held-out evaluations (per-level PSNR and image sheets); 0 = only at the end."""
    curve_pairs: int | None = None
    """Held-out pairs the evaluations during training score: None = every one (then the curves
    end at eval.md's numbers and "minutes to 30 dB" holds for the whole held-out set; 4.9 s
    per evaluation of 6 levels at 128^2 with 62 pairs, measured on one busy thread); a number =
    that many spread evenly over them, for captures whose held-out set takes long to score."""


@dataclass
class TrainConfig:
    """Everything ``neumip-train`` needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    device: str = "cpu"
    seed: int = 0
    out_dir: str = "outputs/train/${data.name}"
    ckpt_every: int = 1000
    """Steps between checkpoints (one is also written at the end and on Ctrl-C)."""
    resume: bool = False
    """Continue from out_dir/checkpoints/last.safetensors."""
    overwrite: bool = False
    """Start over in an out_dir that already holds a checkpoint (else that is refused)."""
    eval_levels: int = 6
    """Evaluate levels 0..eval_levels - 1."""
    progress: bool = True
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    precision: str = "fp32"
    """Training arithmetic of the MLPs: ``fp32``, or ``bf16`` (autocast: matrix products in
    bfloat16 on AMX / tensor cores, parameters, lookups and loss in fp32). Measured on the 2-core
    CPU: see benchmarks/bench_speed.py and the README's speed section for its cost in PSNR."""
    deterministic: bool = True
    """On the CPU, torch deterministic algorithms (the scatter-adds of the latent lookups'
    backward become ordered): runs and resumes are bit-identical, at no cost there (torch's
    NaN-filling of new tensors, which comes with that mode, is turned off: it costs a pass over
    every buffer). GPU runs are not made bit-reproducible."""

    def __post_init__(self) -> None:
        require(self.ckpt_every >= 0, "ckpt_every", self.ckpt_every, ">= 0 (0: only at the end)")
        require(self.eval_levels >= 1, "eval_levels", self.eval_levels, ">= 1")
        require(self.threads is None or self.threads >= 1, "threads", self.threads, "null or >= 1")
        require(self.precision in ("fp32", "bf16"), "precision", self.precision, "fp32 or bf16")
