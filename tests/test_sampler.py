"""Training batches drawn from the pyramid, in memory and streamed from the file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from btf_data.btf_file import BTFFile
from btf_data.sampler import PyramidSampler, SamplerConfig


def _truth(btf: BTFFile, batch) -> np.ndarray:
    """Ground truth of integer-lod, texel-centre queries read straight from the file."""
    out = []
    wo = torch.as_tensor(btf.wo_dirs, dtype=torch.float32)
    wi = torch.as_tensor(btf.wi_dirs, dtype=torch.float32)
    for q in range(batch.uv.shape[0]):
        i_wo = int(torch.argmin((wo - batch.wo[q]).norm(dim=1)))
        i_wi = int(torch.argmin((wi - batch.wi[q]).norm(dim=1)))
        k = int(batch.lod[q])
        r = btf.resolution(k)[0]
        j, i = (batch.uv[q] * r).floor().long().tolist()
        out.append(btf.image(i_wo, i_wi, k)[i, j])
    return np.stack(out)


@pytest.mark.parametrize("budget", [64, 0])  # in memory, then streamed (budget 0 MiB)
def test_integer_lod_batches_equal_the_pyramid_texels(small_btf, budget):
    path, _ = small_btf
    with BTFFile(path) as btf:
        cfg = SamplerConfig(batch_size=300, lod="integer", memory_budget_mib=budget, images_per_step=4)
        s = PyramidSampler(btf, cfg, seed=1)
        assert s.in_memory == (budget > 0)
        b = s.sample()
        assert b.uv.shape == (300, 2) and b.rgb.shape == (300, 3)
        assert set(b.lod.long().tolist()) == set(range(btf.n_levels))  # every level is covered
        np.testing.assert_allclose(b.rgb.numpy(), _truth(btf, b), rtol=1e-6)
        train = {tuple(p) for p in btf.pairs("train")}
        wo = torch.as_tensor(btf.wo_dirs, dtype=torch.float32)
        wi = torch.as_tensor(btf.wi_dirs, dtype=torch.float32)
        for q in range(300):
            i_wo = int(torch.argmin((wo - b.wo[q]).norm(dim=1)))
            i_wi = int(torch.argmin((wi - b.wi[q]).norm(dim=1)))
            assert (i_wo, i_wi) in train


def _pair_of_each_query(btf: BTFFile, batch) -> list[tuple[int, int]]:
    wo = torch.as_tensor(btf.wo_dirs, dtype=torch.float32)
    wi = torch.as_tensor(btf.wi_dirs, dtype=torch.float32)
    i_wo, i_wi = torch.cdist(batch.wo, wo).argmin(1).tolist(), torch.cdist(batch.wi, wi).argmin(1).tolist()
    return list(zip(i_wo, i_wi, strict=True))


@pytest.mark.parametrize("budget", [64, 0])  # in memory, then streamed (budget 0 MiB)
def test_coherent_batches_hold_k_distinct_pairs_and_their_texels(small_btf, budget):
    """pairs_per_batch = K: K distinct training pairs, n / K contiguous queries each, and (integer
    lods at texel centres) the texels read straight from the file."""
    path, _ = small_btf
    with BTFFile(path) as btf:
        cfg = SamplerConfig(batch_size=240, lod="integer", memory_budget_mib=budget, pairs_per_batch=6)
        b = PyramidSampler(btf, cfg, seed=2).sample()
        # grid_sample's coordinate arithmetic: float32 round-off, not the gather path's exact texels
        np.testing.assert_allclose(b.rgb.numpy(), _truth(btf, b), rtol=0, atol=3e-6)
        pairs = _pair_of_each_query(btf, b)
        blocks = [set(pairs[i : i + 40]) for i in range(0, 240, 40)]
        assert all(len(block) == 1 for block in blocks)
        assert len(set().union(*blocks)) == 6
        assert set(pairs) <= {tuple(p) for p in btf.pairs("train")}
        assert set(b.lod.long().tolist()) == set(range(btf.n_levels))


def test_coherent_batches_with_more_pairs_than_the_file_has_and_bad_sizes(small_btf):
    path, _ = small_btf
    with BTFFile(path) as btf:
        n_train = len(btf.pairs("train"))
        k = 2 * n_train
        s = PyramidSampler(btf, SamplerConfig(batch_size=3 * k, pairs_per_batch=k), seed=0)
        b = s.sample()
        assert b.rgb.shape == (3 * k, 3)  # K pairs drawn with replacement: the batch keeps its size
        with pytest.raises(ValueError, match="not a multiple of pairs_per_batch"):
            s.sample(batch_size=3 * k + 1)
    with pytest.raises(ValueError, match="pairs_per_batch must be 0 or divide batch_size"):
        SamplerConfig(batch_size=100, pairs_per_batch=7)


def test_continuous_batches_cover_lod_range_and_match_trilinear_mean(small_btf):
    path, images = small_btf
    with BTFFile(path) as btf:
        s = PyramidSampler(btf, SamplerConfig(batch_size=20000, subset="all"), seed=0)
        b = s.sample()
        assert b.lod.min() >= 0 and b.lod.max() <= btf.n_levels - 1
        assert b.lod.max() > 0.9 * (btf.n_levels - 1)
        assert torch.all((b.uv >= 0) & (b.uv < 1))
        # Box pyramids (and bilinear lookups over uniform uv on the torus) preserve the mean, so
        # the batch mean estimates the images' mean, to within 5 of its standard errors.
        q = b.rgb.double().mean(dim=1)
        se = float(q.std()) / math.sqrt(q.numel())
        assert abs(float(q.mean()) - float(images.mean())) < 5 * se, (float(q.mean()), images.mean(), se)
        assert torch.allclose(b.wi.norm(dim=1), torch.ones(20000))


def test_sampler_refuses_a_file_without_pyramid_and_bad_options(small_btf):
    import h5py

    path, _ = small_btf
    with BTFFile(path) as btf, pytest.raises(ValueError, match="sampler lod"):
        PyramidSampler(btf, SamplerConfig(lod="random"))
    with h5py.File(path, "a") as f:
        del f["pyramid"]
    with BTFFile(path) as btf, pytest.raises(Exception, match="no pyramid"):
        PyramidSampler(btf)
