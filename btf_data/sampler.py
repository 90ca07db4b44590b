"""Training batches (uv, lod, wi, wo) -> RGB drawn from a BTF file's filtered pyramid.

Queries read the pyramid with the project's one trilinear lookup, so a query at a texel centre
and an integer lod returns that texel's ground truth exactly, and a continuous lod blends the
two levels around it. The whole pyramid of the chosen pairs is held in memory (on the sampler's
device) when it fits the memory budget; otherwise each step reads a few images (all their
levels) from the file and draws the batch from those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from btf_data import draw_native
from btf_data.btf_file import BTFFile
from btf_data.lookup import (
    Atlas,
    PackedLevels,
    lookup_trilinear,
    lookup_trilinear_coherent,
    pack_atlas,
    pack_levels,
)


@dataclass
class SamplerConfig:
    """How batches are drawn (conf/sampler/default.yaml)."""

    batch_size: int = 2**14
    """Queries per batch."""
    subset: str = "train"
    """Which (wo, wi) pairs: ``train``, ``held_out`` or ``all``."""
    memory_budget_mib: int = 2048
    """Hold the pyramid in memory when it needs at most this many MiB (float32)."""
    images_per_step: int = 16
    """Streaming mode: images (with all their levels) read from the file per batch."""
    lod: str = "continuous"
    """``continuous``: lod uniform in [0, max_lod]; ``integer``: a uniform level in
    0..floor(max_lod), at texel centres."""
    max_lod: float | None = None
    """Highest lod drawn (None: the file's coarsest level, L - 1)."""
    lod_sampling: str = "power"
    """Continuous lods: ``power`` (max_lod * u^lod_power) or ``official`` (NeuMIP's training
    mixture: 10% at lod 0, 30% uniform in [0, max_lod], 60% with P(lod > l) = 4^-l, clamped)."""
    lod_power: float = 1.0
    """Continuous ``power`` lods are max_lod * u^lod_power, u uniform: 1 spreads them evenly over
    the levels, > 1 puts more of them on the fine levels (every level is still covered)."""
    pairs_per_batch: int = 0
    """0: every query draws its own (wo, wi) pair. K > 0: coherent batches, K distinct pairs
    (drawn with replacement when the file has fewer) with batch_size / K queries each, so that
    the ground truth is read from K whole images (one batched lookup) rather than gathered over
    every image of the pyramid; in streaming mode K replaces images_per_step. batch_size must be
    a multiple of K."""

    def __post_init__(self) -> None:
        if self.pairs_per_batch < 0 or (self.pairs_per_batch and self.batch_size % self.pairs_per_batch):
            raise ValueError(f"sampler pairs_per_batch must be 0 or divide batch_size "
                             f"({self.batch_size}), got {self.pairs_per_batch}")


@dataclass
class Batch:
    """One batch of queries and their ground truth, all on the sampler's device."""

    uv: torch.Tensor  # (N, 2) in [0, 1)
    lod: torch.Tensor  # (N,) in [0, L - 1]
    wi: torch.Tensor  # (N, 3) unit, z > 0
    wo: torch.Tensor  # (N, 3) unit, z > 0
    rgb: torch.Tensor  # (N, 3) BRDF-like linear RGB


def load_levels(btf: BTFFile, pairs: np.ndarray, device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """Every level of the images of ``pairs`` (P, 2): [(P, R_k, R_k, 3)] on ``device``; image p
    is pair p. Reads one view at a time."""
    levels = []
    for k in range(btf.n_levels):
        out = np.empty((len(pairs), *btf.resolution(k), 3), dtype=np.float32)
        for i_wo in np.unique(pairs[:, 0]):
            rows = np.nonzero(pairs[:, 0] == i_wo)[0]
            out[rows] = btf.view(int(i_wo), k)[pairs[rows, 1]]
        levels.append(torch.from_numpy(out).to(device))
    return levels


def load_pyramid(btf: BTFFile, pairs: np.ndarray, device: str | torch.device = "cpu") -> PackedLevels:
    """:func:`load_levels` as one packed table (the sampler's lookups read it)."""
    return pack_levels(load_levels(btf, pairs, device))


class PyramidSampler:
    """Draws :class:`Batch` es from a :class:`BTFFile` with a pyramid."""

    def __init__(
        self,
        btf: BTFFile,
        cfg: SamplerConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.cfg = cfg or SamplerConfig()
        if self.cfg.lod_sampling not in ("power", "official"):
            raise ValueError(f"sampler lod_sampling must be 'power' or 'official', got "
                             f"{self.cfg.lod_sampling!r}")
        if self.cfg.lod not in ("continuous", "integer"):
            raise ValueError(f"sampler lod must be 'continuous' or 'integer', got {self.cfg.lod!r}")
        if not btf.has_pyramid and btf.n_levels > 1:
            btf.level(1)  # raises the file's "no pyramid" error
        self.btf = btf
        self.device = torch.device(device)
        self.pairs = btf.pairs(self.cfg.subset)
        if len(self.pairs) == 0:
            raise ValueError(f"{btf.path}: no {self.cfg.subset} pairs to sample")
        self.n_levels = btf.n_levels
        self.max_lod = float(self.n_levels - 1 if self.cfg.max_lod is None
                             else min(self.cfg.max_lod, self.n_levels - 1))
        self.pairs_t = torch.as_tensor(self.pairs, device=self.device)
        self.wo = torch.as_tensor(btf.wo_dirs, dtype=torch.float32, device=self.device)
        self.wi = torch.as_tensor(btf.wi_dirs, dtype=torch.float32, device=self.device)
        # each pair's directions (P, 3), so that a batch's are one row gather each (torch's
        # advanced indexing of 3-float rows through the pair table took 4x as long)
        self.wi_of_pair = self.wi[self.pairs_t[:, 1]].contiguous()
        self.wo_of_pair = self.wo[self.pairs_t[:, 0]].contiguous()
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.in_memory = self.pyramid_bytes() <= self.cfg.memory_budget_mib * 2**20
        self.levels: PackedLevels | None = None
        self.atlas: Atlas | None = None  # coherent batches in memory: one atlas image per pair
        if self.in_memory and self.cfg.pairs_per_batch:
            self.atlas = pack_atlas(load_levels(btf, self.pairs, self.device))
        elif self.in_memory:
            self.levels = load_pyramid(btf, self.pairs, self.device)

    def pyramid_bytes(self) -> int:
        """Bytes the chosen pairs' pyramid takes in memory as float32 (as a table of texels, or
        as atlases, with their wrap padding, for coherent batches)."""
        if self.cfg.pairs_per_batch:
            h = self.btf.resolution(0)[0] + 2
            texels = h * sum(self.btf.resolution(k)[1] + 2 for k in range(self.n_levels))
        else:
            texels = sum(np.prod(self.btf.resolution(k)) for k in range(self.n_levels))
        return int(len(self.pairs) * texels * 3 * 4)

    def _continuous_lods(self, n: int) -> torch.Tensor:
        g = self.generator
        if self.cfg.lod_sampling == "power":
            return torch.rand(n, generator=g) ** self.cfg.lod_power * self.max_lod
        which = torch.rand(n, generator=g)
        uniform = torch.rand(n, generator=g) * self.max_lod
        geometric = -torch.log1p(-torch.rand(n, generator=g)) / math.log(4.0)  # P(> l) = 4^-l
        lod = torch.where(which < 0.3, uniform, geometric.clamp(max=self.max_lod))
        return torch.where(which >= 0.9, torch.zeros_like(lod), lod)

    def _draw(self, n: int, n_images: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image index, lod, uv) of n queries over n_images images, the indices in ascending order:
        the same draws sorted by counting, so that the ground truth is read image by image (its
        reads nearer each other in the caches and the TLB). uv and lod are drawn independently of
        the image, so the batch is as random as in the order drawn. Continuous lods are drawn by
        the native kernel where it is built (draw_native.py), else by torch."""
        if self.cfg.lod == "continuous":
            native = draw_native.draw_queries(self.generator, n, n_images, self.max_lod,
                                              self.cfg.lod_sampling, self.cfg.lod_power)
            if native is not None:
                return tuple(t.to(self.device) for t in native)  # type: ignore[return-value]
        index = torch.randint(n_images, (n,), generator=self.generator)
        index = torch.repeat_interleave(torch.arange(n_images), torch.bincount(index, minlength=n_images))
        return (index.to(self.device), *self._draw_texels(n))

    def _draw_texels(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(lod (n,), uv (n, 2)) of n queries, as ``cfg.lod`` says."""
        g = self.generator
        if self.cfg.lod == "continuous":
            lod = self._continuous_lods(n)
            uv = torch.rand(n, 2, generator=g)
        else:
            lod = torch.randint(int(self.max_lod) + 1, (n,), generator=g).float()
            res = (2.0 ** -lod) * self.btf.resolution(0)[0]
            ij = torch.floor(torch.rand(n, 2, generator=g) * res[:, None])
            uv = (ij + 0.5) / res[:, None]
        return lod.to(self.device), uv.to(self.device)

    def _sample_coherent(self, n: int) -> Batch:
        """K pairs x n / K queries, the queries of one pair contiguous in the batch. The K pairs
        are distinct, or drawn with replacement when the file has fewer than K."""
        k = self.cfg.pairs_per_batch
        if n % k:
            raise ValueError(f"sampler batch of {n} queries is not a multiple of pairs_per_batch {k}")
        m, p = n // k, len(self.pairs)
        if self.atlas is not None:
            chosen = (torch.randperm(p, generator=self.generator)[:k] if k <= p
                      else torch.randint(p, (k,), generator=self.generator)).to(self.device)
            a = self.atlas
            atlas = Atlas(image=a.image[chosen], x0=a.x0, heights=a.heights, widths=a.widths)
            pairs = self.pairs_t[chosen]
        else:
            pick = self.rng.choice(p, size=k, replace=k > p)
            atlas = pack_atlas([
                torch.from_numpy(np.stack([self.btf.image(int(a), int(b), lv) for a, b in self.pairs[pick]]))
                .to(self.device) for lv in range(self.n_levels)])
            pairs = torch.as_tensor(self.pairs[pick], device=self.device)
        lod, uv = self._draw_texels(n)
        rgb = lookup_trilinear_coherent(atlas, uv.view(k, m, 2), lod.view(k, m)).reshape(n, 3)
        pairs = pairs.repeat_interleave(m, dim=0)
        return Batch(uv=uv, lod=lod, wi=self.wi[pairs[:, 1]], wo=self.wo[pairs[:, 0]], rgb=rgb)

    def sample(self, batch_size: int | None = None) -> Batch:
        """A batch of ``batch_size`` (default cfg.batch_size) queries and their ground truth."""
        n = batch_size or self.cfg.batch_size
        if self.cfg.pairs_per_batch:
            return self._sample_coherent(n)
        if self.in_memory:
            assert self.levels is not None
            index, lod, uv = self._draw(n, len(self.pairs))
            rgb = lookup_trilinear(self.levels, uv, lod, index)
            return Batch(uv=uv, lod=lod, wi=torch.index_select(self.wi_of_pair, 0, index),
                         wo=torch.index_select(self.wo_of_pair, 0, index), rgb=rgb)
        pick = self.rng.choice(len(self.pairs), size=min(self.cfg.images_per_step, len(self.pairs)),
                               replace=False)
        chosen = self.pairs[np.sort(pick)]
        levels = [
            torch.from_numpy(
                np.stack([self.btf.image(int(a), int(b), k) for a, b in chosen])
            ).to(self.device)
            for k in range(self.n_levels)
        ]
        index, lod, uv = self._draw(n, len(chosen))
        pairs = torch.as_tensor(chosen, device=self.device)[index]
        rgb = lookup_trilinear(levels, uv, lod, index)
        return Batch(uv=uv, lod=lod, wi=self.wi[pairs[:, 1]], wo=self.wo[pairs[:, 0]], rgb=rgb)
