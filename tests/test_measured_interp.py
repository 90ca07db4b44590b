"""The ``measured_interp`` baseline (renderer.materials.MeasuredInterpMaterial): the BTF's training
pairs interpolated across directions. Known answers: a training pair's own image, a constant
material, poisoned held-out images that must never leak, and the nearest-pair fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from btf_data.btf_file import BTFFile, BTFWriter
from btf_data.directions import random_directions
from renderer.materials import MeasuredInterpMaterial

POISON = 1e4


def _write(path: Path, images: np.ndarray, dirs: np.ndarray, split: np.ndarray) -> None:
    with BTFWriter(path, wo_dirs=dirs, wi_dirs=dirs, resolution=images.shape[2:4], split=split,
                   name="interp", source="test", filter="box", dtype="float32") as w:
        for i in range(images.shape[0]):
            w.write(i, images[i])


def _query(m: MeasuredInterpMaterial, dirs: np.ndarray, a: int, b: int, level: int = 0) -> torch.Tensor:
    """The material at every texel centre of ``level`` for the file's pair (wo a, wi b): (R, R, 3)."""
    r = m.resolution >> level
    j, i = np.meshgrid(np.arange(r), np.arange(r), indexing="xy")
    uv = torch.as_tensor(np.stack([(j.ravel() + 0.5) / r, (i.ravel() + 0.5) / r], 1), dtype=torch.float32)
    n = len(uv)
    wo = torch.as_tensor(dirs[a], dtype=torch.float32).expand(n, 3)
    wi = torch.as_tensor(dirs[b], dtype=torch.float32).expand(n, 3)
    return m.eval(uv, wi, wo, torch.full((n,), float(level))).reshape(r, r, 3)


def _material(tmp_path: Path, k: int = 3, seed: int = 0):
    dirs = random_directions(7, 80.0, seed)
    rng = np.random.default_rng(seed)
    images = rng.random((7, 7, 8, 8, 3)).astype(np.float32)
    split = (rng.random((7, 7)) < 0.25).astype(np.uint8)
    split[0, 0] = 1
    images[split == 1] = POISON  # held-out images: any leak shows
    _write(tmp_path / "f.h5", images, dirs, split)
    return MeasuredInterpMaterial(tmp_path / "f.h5", k=k), images, dirs, split


def test_a_training_pair_returns_its_own_image_at_every_level(tmp_path):
    m, images, dirs, split = _material(tmp_path)
    with BTFFile(tmp_path / "f.h5") as btf:
        for a, b in btf.pairs("train")[:6]:
            for level in (0, 2):
                stored = torch.as_tensor(btf.image(int(a), int(b), level))
                got = _query(m, dirs, int(a), int(b), level)
                torch.testing.assert_close(got, stored, rtol=1e-4, atol=1e-4)


def test_held_out_images_are_never_read_and_a_constant_is_kept(tmp_path):
    dirs = random_directions(7, 80.0, 1)
    images = np.full((7, 7, 8, 8, 3), 0.25, dtype=np.float32)
    rng = np.random.default_rng(1)
    split = (rng.random((7, 7)) < 0.3).astype(np.uint8)
    images[split == 1] = POISON
    _write(tmp_path / "c.h5", images, dirs, split)
    m = MeasuredInterpMaterial(tmp_path / "c.h5")
    for a, b in zip(*np.nonzero(split), strict=True):
        torch.testing.assert_close(_query(m, dirs, int(a), int(b)), torch.full((8, 8, 3), 0.25))
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 3, generator=g)
    w[:, 2] = w[:, 2].abs() + 0.1
    w = w / w.norm(dim=1, keepdim=True)
    out = m.eval(torch.rand(64, 2, generator=g), w, w.flip(0), torch.rand(64, generator=g) * 3)
    torch.testing.assert_close(out, torch.full((64, 3), 0.25))


def test_with_every_nearby_pair_held_out_it_reads_the_nearest_training_pair(tmp_path):
    """k = 1 at a held-out pair: the training pair with the least summed angle, found here by
    brute force over the whole grid."""
    m, images, dirs, split = _material(tmp_path, k=1)
    ang = np.arccos(np.clip(dirs @ dirs.T, -1, 1))
    for a, b in zip(*np.nonzero(split), strict=True):
        cost = ang[a][:, None] + ang[b][None, :] + np.where(split == 1, np.inf, 0.0)
        a2, b2 = np.unravel_index(np.argmin(cost), cost.shape)
        torch.testing.assert_close(_query(m, dirs, int(a), int(b)), torch.as_tensor(images[a2, b2]))
