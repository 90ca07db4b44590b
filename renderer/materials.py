"""Materials behind one interface, on batches: ``eval(uv, wi, wo, lod) -> rgb``.

uv (N, 2) tiled coordinates (period 1), wi and wo (N, 3) unit vectors in the tangent frame with
z > 0, lod (N,) continuous level (0 = finest). rgb (N, 3) is the BTF value (BRDF-like, linear):
the renderer multiplies it by cos(theta_i) and the light. The SVBRDF mipmapping baselines plug in
here too (:class:`renderer.baselines.material.SVBRDFPyramidMaterial`).

A material knows itself: its ``name``, its ``resolution`` (level-0 texels per uv unit, what a
footprint in uv is measured in) and its ``n_levels`` (the lods it answers, 0..n_levels - 1), so
the renderer, Mitsuba and the suite take the material alone. ``renderer.material_specs`` opens
any of them from a spec string.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from btf_data.btf_file import BTFFile
from btf_data.btf_render import HeightfieldMaterial, RenderConfig, eval_level0
from btf_data.lookup import lookup_trilinear
from btf_data.pyramid import level_count
from btf_data.sampler import load_pyramid
from btf_data.svbrdf import SVBRDFMaps
from neumip.model import NeuMIP


class Material(Protocol):
    """What the renderer, the Mitsuba BSDF and the suite need of a material."""

    name: str
    resolution: int
    """Level-0 texels per uv unit."""
    n_levels: int
    """Levels it answers: lod in [0, n_levels - 1]."""

    def eval(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, lod: torch.Tensor) -> torch.Tensor:
        """uv (N, 2), wi and wo (N, 3) unit in the tangent frame, lod (N,) -> BTF values (N, 3)."""
        ...


class ConstantMaterial:
    """The same BTF value everywhere (a test material with a closed-form image). Its lod does not
    matter: one texel, one level unless told otherwise."""

    def __init__(self, rgb: tuple[float, float, float], name: str = "constant", resolution: int = 1,
                 n_levels: int = 1) -> None:
        self.rgb = torch.tensor(rgb, dtype=torch.float32)
        self.name, self.resolution, self.n_levels = name, resolution, n_levels

    def eval(self, uv, wi, wo, lod):
        return self.rgb.to(uv.device).expand(uv.shape[0], 3)


class NeuMIPMaterial:
    """A trained NeuMIP checkpoint."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu",
                 backend: str = "auto", name: str = "neumip") -> None:
        self.model = NeuMIP.load(checkpoint, device, backend)
        self.checkpoint = Path(checkpoint)
        self.name = name
        self.resolution, self.n_levels = self.model.resolution, self.model.n_levels

    @torch.no_grad()
    def eval(self, uv, wi, wo, lod):
        return self.model(uv, wi, wo, lod, check=False)


class MeasuredBTFMaterial:
    """The BTF file itself: the captured image pair whose directions are nearest to (wi, wo)
    (largest cosine, each separately), read trilinearly in its box pyramid."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu",
                 memory_budget_mib: int = 4096) -> None:
        with BTFFile(path) as btf:
            n_wo, n_wi, h, w = btf.shape
            need = n_wo * n_wi * h * w * 3 * 4 * 4 / 3 / 2**20
            if need > memory_budget_mib:
                raise ValueError(f"{path}: the measured material needs {need:.0f} MiB in memory, over "
                                 f"the budget of {memory_budget_mib} MiB")
            pairs = np.stack(np.meshgrid(np.arange(n_wo), np.arange(n_wi), indexing="ij"), -1)
            self.levels = load_pyramid(btf, pairs.reshape(-1, 2), device)
            self.wo_dirs = torch.as_tensor(btf.wo_dirs, dtype=torch.float32, device=device)
            self.wi_dirs = torch.as_tensor(btf.wi_dirs, dtype=torch.float32, device=device)
            self.resolution, self.n_levels = btf.resolution(0)[0], btf.n_levels
        self.n_wi = n_wi
        self.name = "measured"

    def eval(self, uv, wi, wo, lod):
        i_wo = torch.argmax(wo @ self.wo_dirs.t(), dim=1)
        i_wi = torch.argmax(wi @ self.wi_dirs.t(), dim=1)
        return lookup_trilinear(self.levels, uv, lod, i_wo * self.n_wi + i_wi)


class MeasuredInterpMaterial:
    """The ``measured_interp`` baseline (issue 20): the BTF's own pyramid, its *training* pairs
    only, interpolated across directions, the natural competitor of a neural material for a
    capture (no maps, no training).

    For a query (wo, wi): the ``k`` nearest file directions of wo and, separately, of wi (by
    angle), each weighted by 1 / (angle + eps)^2 (inverse-distance, Shepard); a pair (a, b) of
    those gets the product of the two weights if it is a training pair and 0 otherwise (a
    held-out pair is never read), and its image is read trilinearly in its box pyramid at (uv,
    lod). At a training pair's exact directions it returns that image (the neighbours' weights are
    about 1e-6 of its own); at a held-out pair's, the mean of its neighbours along wi at the same
    wo, along wo at the same wi and both, by their distances. Where all k x k pairs are held out
    (rare: about 0.1^(k^2) of queries at a 10% split) the nearest training pair by summed angle is
    read."""

    #: Angle (radians) added before inverting, so an exact direction has a finite weight.
    EPS = 1e-3

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", k: int = 3,
                 memory_budget_mib: int = 4096) -> None:
        with BTFFile(path) as btf:
            pairs = btf.pairs("train")
            texels = sum(int(np.prod(btf.resolution(j))) for j in range(btf.n_levels))
            need = len(pairs) * texels * 3 * 4 / 2**20
            if need > memory_budget_mib:
                raise ValueError(f"{path}: measured_interp needs {need:.0f} MiB in memory, over the "
                                 f"budget of {memory_budget_mib} MiB")
            self.levels = load_pyramid(btf, pairs, device)
            self.wo_dirs = torch.as_tensor(btf.wo_dirs, dtype=torch.float32, device=device)
            self.wi_dirs = torch.as_tensor(btf.wi_dirs, dtype=torch.float32, device=device)
            self.resolution, self.n_levels = btf.resolution(0)[0], btf.n_levels
            n_wo, n_wi = len(btf.wo_dirs), len(btf.wi_dirs)
        #: image of each (wo, wi) pair in ``levels``, -1 for a pair that is not a training pair
        self.image = torch.full((n_wo, n_wi), -1, dtype=torch.long, device=device)
        self.image[torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])] = torch.arange(
            len(pairs), device=device)
        self.k_wo, self.k_wi = min(k, n_wo), min(k, n_wi)
        self.stored_numbers = len(pairs) * texels * 3
        self.name = "measured_interp"

    def _nearest(self, w: torch.Tensor, dirs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k nearest of ``dirs`` (D, 3) to each of w (N, 3): indices (N, k) and their
        inverse-distance weights (N, k)."""
        angle = torch.acos((w @ dirs.t()).clamp(-1.0, 1.0))
        d, idx = torch.topk(angle, k, dim=1, largest=False)
        return idx, 1.0 / (d + self.EPS) ** 2

    def eval(self, uv, wi, wo, lod):
        i_wo, w_wo = self._nearest(wo, self.wo_dirs, self.k_wo)
        i_wi, w_wi = self._nearest(wi, self.wi_dirs, self.k_wi)
        acc = torch.zeros(uv.shape[0], 3, device=uv.device)
        total = torch.zeros(uv.shape[0], device=uv.device)
        for a in range(self.k_wo):
            for b in range(self.k_wi):
                image = self.image[i_wo[:, a], i_wi[:, b]]
                w = w_wo[:, a] * w_wi[:, b] * (image >= 0)
                if not bool((w > 0).any()):
                    continue
                acc += w[:, None] * lookup_trilinear(self.levels, uv, lod, image.clamp_min(0))
                total += w
        lost = total <= 0
        if bool(lost.any()):  # every nearby pair held out: the nearest training pair by summed angle
            ang_o = torch.acos((wo[lost] @ self.wo_dirs.t()).clamp(-1.0, 1.0))
            ang_i = torch.acos((wi[lost] @ self.wi_dirs.t()).clamp(-1.0, 1.0))
            cost = ang_o[:, :, None] + ang_i[:, None, :] + torch.where(self.image < 0, math.inf, 0.0)
            flat = cost.flatten(1).argmin(dim=1)
            image = self.image.flatten()[flat]
            acc[lost] = lookup_trilinear(self.levels, uv[lost], lod[lost], image)
            total[lost] = 1.0
        return acc / total[:, None]


class SVBRDFMaterial:
    """The level-0 SVBRDF a synthetic material was made from, evaluated exactly for any
    directions (heightfield parallax and shadows traced per query): the reference. It ignores
    lod: the reference filters by supersampling pixels, not by looking up coarser levels.
    ``n_levels`` is that of the material's pyramid (the maps' own when not given)."""

    def __init__(self, maps: SVBRDFMaps, device: str | torch.device = "cpu",
                 cfg: RenderConfig | None = None, n_levels: int | None = None) -> None:
        self.mat = HeightfieldMaterial(maps, device)
        self.cfg = cfg or RenderConfig()
        self.name = "svbrdf"
        h, w = maps.resolution
        self.resolution, self.n_levels = h, n_levels or level_count(h, w)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> SVBRDFMaterial:
        with BTFFile(path) as btf:
            maps = btf.svbrdf()
            if maps is None:
                raise ValueError(f"{path}: a measured material has no SVBRDF maps to render a "
                                 "reference from; use the measured material at lod 0")
            return cls(maps, device, n_levels=btf.n_levels)

    def eval(self, uv, wi, wo, lod):
        return eval_level0(self.mat, uv, wi, wo, self.cfg)
