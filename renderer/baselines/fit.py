"""``fit``: every level's SVBRDF optimised by gradient descent against the reference appearance.

Started from LEAN, each coarse level's normal (through its slopes B, n = normalize(B, 1)), GGX
tensor (through a symmetric matrix S, T = S^2 + eps I, positive definite for any S) and albedo
are fitted with Adam (cosine-decayed rate) to the box average of level-0 shading, over fresh
random light/view pairs each step, on the loss the evaluation reports (MSE of tone-mapped values).
Metallic and specular keep their box averages. Levels are independent, so one loop fits them all
at once. It is the best this SVBRDF format can do for the material up to the optimiser's local
optimum (from LEAN's start it can settle below another method's pyramid: see the README), and the
project's "mipmaps by gradient descent" beside the neural ones; it costs a fit per material (a
progress bar shows it; about 30 s at 128^2 on 2 cores).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from btf_data.brdf import tensor_from_sqrt, tensor_sqrt
from btf_data.svbrdf import SVBRDFMaps
from plumbing.config_checks import require
from plumbing.thread_share import adjust_threads
from plumbing.tonemap import tonemap_torch
from renderer.baselines.lean import lean_levels
from renderer.baselines.pyramid import MIN_VARIANCE, SVBRDFPyramid, normalize, pyramid_from_levels
from renderer.baselines.shading import reference_levels, sample_directions, shade_grid


@dataclass
class FitConfig:
    """The gradient-descent fit (conf/neumip_render.yaml: baselines.fit)."""

    steps: int = 400
    pairs: int = 16
    """(wi, wo) pairs per step, fresh each step."""
    lr: float = 5e-3
    lr_final: float = 5e-5
    """The learning rate falls from lr to lr_final (cosine): at the PSNRs these fits reach (45-60
    dB on normal-mapped planes), Adam's jitter at a constant rate costs several dB."""
    adam_eps: float = 1e-6
    """Adam's epsilon: steps are scale-free above it, so it keeps round-off-sized gradients (a
    level that is already exact) from moving the parameters."""
    z_min: float = 0.25
    """Lowest cosine of the sampled light and view directions."""
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        require(self.steps >= 0, "fit.steps", self.steps, ">= 0")
        require(self.pairs >= 1, "fit.pairs", self.pairs, ">= 1")
        require(self.lr > 0 and self.lr_final >= 0, "fit.lr/lr_final", (self.lr, self.lr_final), "> 0 / >= 0")


class LevelParams(torch.nn.Module):
    """The free parameters of levels 1..L-1, initialised from a starting pyramid."""

    def __init__(self, levels: list[dict[str, torch.Tensor]]) -> None:
        super().__init__()
        #: eps I of T = S^2 + eps I, the same floor as every other method's tensors.
        self.floor = torch.tensor([1.0, 1.0, 0.0]) * 2.0 * MIN_VARIANCE
        self.slopes = torch.nn.ParameterList()
        self.sqrt = torch.nn.ParameterList()
        self.albedo = torch.nn.ParameterList()
        for lv in levels[1:]:
            n = lv["normal"]
            self.slopes.append(torch.nn.Parameter(n[..., :2] / n[..., 2:]))
            self.sqrt.append(torch.nn.Parameter(tensor_sqrt(lv["tensor"] - self.floor)))
            self.albedo.append(torch.nn.Parameter(lv["albedo"].clone()))

    def level(self, i: int) -> dict[str, torch.Tensor]:
        """Normal, tensor and albedo of level i + 1."""
        b = self.slopes[i]
        normal = normalize(torch.cat([b, torch.ones_like(b[..., :1])], dim=-1))
        return {"normal": normal, "tensor": tensor_from_sqrt(self.sqrt[i]) + self.floor,
                "albedo": self.albedo[i]}

    @torch.no_grad()
    def clamp_(self) -> None:
        for a in self.albedo:
            a.clamp_(0.0, 1.0)


def fit_pyramid(maps: SVBRDFMaps, cfg: FitConfig | None = None) -> SVBRDFPyramid:
    cfg = cfg or FitConfig()
    t0 = time.perf_counter()
    levels = lean_levels(maps)
    n = len(levels)
    params = LevelParams(levels)
    opt = torch.optim.Adam(params.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.steps, 1), eta_min=cfg.lr_final)
    g = torch.Generator().manual_seed(cfg.seed)
    level0 = levels[0]
    r = maps.resolution[0]
    bar = tqdm(range(cfg.steps), desc=f"fit {r}x{r}, {n - 1} levels", unit="step", disable=not cfg.progress)
    for _ in bar:
        adjust_threads()
        wi = sample_directions(cfg.pairs, cfg.z_min, g)
        wo = sample_directions(cfg.pairs, cfg.z_min, g)
        with torch.no_grad():
            refs = reference_levels(level0, wi, wo, n)
        loss = torch.zeros(())
        mse_sum = torch.zeros(())
        for i in range(n - 1):
            fitted = params.level(i)
            lv = levels[i + 1]
            pred = shade_grid({**lv, **fitted}, wi, wo)
            # Per texel, the mean over pairs and channels; summed over texels so that a texel's
            # gradient does not shrink with the level's size.
            err = ((tonemap_torch(pred) - tonemap_torch(refs[i + 1])) ** 2).mean(dim=(0, -1))
            loss = loss + err.sum()
            mse_sum = mse_sum + err.mean().detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        params.clamp_()
        bar.set_postfix(mse=f"{mse_sum.item() / (n - 1):.2e}")
    with torch.no_grad():
        for i in range(n - 1):
            levels[i + 1] = {**levels[i + 1], **{k: v.detach() for k, v in params.level(i).items()}}
    pyramid = pyramid_from_levels(levels, "fit")
    if cfg.progress:
        print(f"fit: {cfg.steps} steps on {r}x{r} in {time.perf_counter() - t0:.1f} s")
    return pyramid
