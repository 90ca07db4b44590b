"""The start of ``model=hybrid``: its lobe pyramid fitted by gradient descent to the BTF's own
pyramid levels, the training pairs only (issue 20).

This is the ``fit`` baseline's idea (renderer/baselines/fit.py) with the BTF as the reference
instead of SVBRDF maps, so it works for captures that have none: every level's parameter texture
is shaded at its texel centres for a few training (wo, wi) pairs per step and compared with those
pairs' images of the same level, on the training loss; levels are independent, so one loop fits
them all. A texel centre at an integer lod is what the trilinear lookup returns exactly, so the
fitted texels are what the model reads there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from btf_data.btf_file import BTFFile
from btf_data.btf_render import shade_params
from btf_data.sampler import load_levels
from neumip.lobe_pyramid import LobePyramid
from plumbing.thread_share import adjust_threads

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LobeFitResult:
    """How the fit ended: the last step's loss per level (a fitted level 0 of a normal-mapped
    plane reaches round-off), and its seconds."""

    loss_per_level: list[float]
    seconds: float


def fit_images(btf: BTFFile, max_pairs: int, seed: int,
               device: str | torch.device = "cpu") -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The fit's reference: up to ``max_pairs`` training pairs (drawn with ``seed`` when the file
    has more), every level: ([(P, R_k, R_k, 3)], wi (P, 3), wo (P, 3))."""
    pairs = btf.pairs("train")
    if len(pairs) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
        pairs = pairs[np.sort(pick)]
    wi = torch.as_tensor(btf.wi_dirs, dtype=torch.float32)[torch.as_tensor(pairs[:, 1])]
    wo = torch.as_tensor(btf.wo_dirs, dtype=torch.float32)[torch.as_tensor(pairs[:, 0])]
    return load_levels(btf, pairs, device), wi.to(device), wo.to(device)


def fit_lobe(lobe: LobePyramid, images: list[torch.Tensor], wi: torch.Tensor, wo: torch.Tensor,
             loss_fn: Loss, steps: int, pairs_per_step: int, lr: float, seed: int,
             progress: bool = True) -> LobeFitResult:
    """Fit ``lobe``'s levels (as many as both have) to ``images`` [(P, R_k, R_k, 3)] of the
    direction pairs wi, wo (P, 3): Adam on the raw texels, ``pairs_per_step`` random pairs per
    step, the rate falling from lr to lr / 100 (cosine). ``loss_fn(pred, target)`` is the
    training loss. The lobe's parameters are changed in place."""
    t0 = time.perf_counter()
    n = min(lobe.n_levels, len(images))
    params = [lobe.levels[k] for k in range(n)]
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    p_total = wi.shape[0]
    d = min(pairs_per_step, p_total)
    losses = [float("nan")] * n
    bar = tqdm(range(steps), desc=f"lobe fit, {n} levels", unit="step", disable=not progress)
    for step in bar:
        adjust_threads()
        for group in opt.param_groups:
            group["lr"] = lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1))))
        idx = torch.randperm(p_total, generator=g)[:d].to(wi.device)
        total = torch.zeros((), device=wi.device)
        for k in range(n):
            maps = lobe.level_params(k)  # (R, R, C)
            r2 = maps["normal"].shape[0] * maps["normal"].shape[1]
            flat = {f: v.reshape(1, r2, -1).expand(d, r2, v.shape[-1]).reshape(d * r2, -1)
                    for f, v in maps.items()}
            wi_q = wi[idx][:, None, :].expand(d, r2, 3).reshape(-1, 3)
            wo_q = wo[idx][:, None, :].expand(d, r2, 3).reshape(-1, 3)
            pred = shade_params(flat, wi_q, wo_q)
            loss = loss_fn(pred, images[k][idx].reshape(-1, 3))
            losses[k] = float(loss.detach())
            total = total + loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        bar.set_postfix(loss=f"{float(total.detach()) / n:.3g}")
    return LobeFitResult(losses, time.perf_counter() - t0)
