"""The native batch draw (btf_data/draw_kernel.c) against the closed forms of the distributions it
draws: image indices uniform (chi-square) and in ascending order, uv uniform, lods of the `power`
and `official` schedules (Kolmogorov-Smirnov against their CDFs, the official mixture's atoms at 0
and at max_lod); the same batch for the same generator state on 1 and 2 threads; and the sampler
taking it for continuous lods only."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from btf_data import draw_native
from btf_data.btf_file import BTFFile
from btf_data.sampler import PyramidSampler, SamplerConfig
from tests.conftest import require_native_kernel, write_small_btf

DRAW_KERNEL = Path(draw_native.__file__).with_name("draw_kernel.c")
N = 200_000
KS_LIMIT = 2.0 / math.sqrt(N)  # a Kolmogorov-Smirnov distance this large has p < 1e-3


@pytest.fixture(autouse=True)
def kernel():
    require_native_kernel(DRAW_KERNEL)


def draw(mode: str, n_images: int = 7, max_lod: float = 6.0, power: float = 1.0, seed: int = 0):
    return draw_native.draw_queries(torch.Generator().manual_seed(seed), N, n_images, max_lod, mode, power)


def ks_distance(samples: torch.Tensor, cdf) -> float:
    x = np.sort(samples.double().numpy())
    f = cdf(x)
    i = np.arange(1, len(x) + 1) / len(x)
    return float(max(np.max(i - f), np.max(f - (i - 1 / len(x)))))


def test_indices_are_uniform_over_the_images_and_ascending():
    index, _, _ = draw("power", n_images=7)
    assert index.dtype == torch.int64 and bool((index[1:] >= index[:-1]).all())
    counts = torch.bincount(index, minlength=7).double()
    assert counts.numel() == 7
    chi2 = float(((counts - N / 7) ** 2 / (N / 7)).sum())
    assert chi2 < 27.9  # chi-square, 6 degrees of freedom: p = 1e-4


def test_uv_is_uniform_in_the_unit_square():
    _, _, uv = draw("official")
    assert uv.shape == (N, 2) and bool(((uv >= 0) & (uv < 1)).all())
    for c in range(2):
        assert ks_distance(uv[:, c], lambda x: x) < KS_LIMIT
    assert abs(float(torch.corrcoef(uv.t())[0, 1])) < 4 / math.sqrt(N)  # u and v independent


@pytest.mark.parametrize("power", [1.0, 2.5])
def test_power_lods_follow_their_cdf(power):
    _, lod, _ = draw("power", power=power)
    assert bool(((lod >= 0) & (lod <= 6)).all())
    # lod = 6 u^p: P(lod <= l) = (l / 6)^(1 / p)
    assert ks_distance(lod, lambda x: (x / 6.0) ** (1.0 / power)) < KS_LIMIT


def test_official_lods_follow_the_mixture():
    """10% at 0, 30% uniform on [0, 3], 60% with P(lod > l) = 4^-l clamped to max_lod 3."""
    _, lod, _ = draw("official", max_lod=3.0)
    assert bool(((lod >= 0) & (lod <= 3)).all())
    assert abs(float((lod == 0).double().mean()) - 0.1) < 4 * math.sqrt(0.09 / N)
    atom = 0.6 * 4.0 ** -3  # the geometric part's mass beyond max_lod, clamped onto it
    assert abs(float((lod == 3).double().mean()) - atom) < 4 * math.sqrt(atom / N)
    inside = lod[(lod > 0) & (lod < 3)]
    mass = 0.9 - atom  # what lies strictly between the atoms

    def cdf(x):
        return (0.3 * x / 3.0 + 0.6 * (1 - 4.0 ** -x)) / mass

    assert ks_distance(inside, cdf) < 2.0 / math.sqrt(len(inside))


def test_the_same_generator_state_draws_the_same_batch_on_any_thread_count():
    threads = torch.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            g = torch.Generator().manual_seed(3)
            out.append(draw_native.draw_queries(g, 10_001, 13, 5.0, "official", 1.0))
            out.append(torch.rand(1, generator=g))  # the generator moved on by the seed's draw
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(out[0], out[2], strict=True))
    assert torch.equal(out[1], out[3])
    other = draw_native.draw_queries(torch.Generator().manual_seed(4), 10_001, 13, 5.0, "official", 1.0)
    assert not torch.equal(other[2], out[0][2])


def test_the_sampler_draws_continuous_lods_natively_and_integer_lods_with_torch(tmp_path, monkeypatch):
    write_small_btf(tmp_path / "m.h5")
    calls = []
    real = draw_native.draw_queries
    monkeypatch.setattr(draw_native, "draw_queries", lambda *a: calls.append(1) or real(*a))
    btf = BTFFile(tmp_path / "m.h5")
    batch = PyramidSampler(btf, SamplerConfig(batch_size=500)).sample()
    assert calls == [1] and batch.uv.shape == (500, 2)
    PyramidSampler(btf, SamplerConfig(batch_size=500, lod="integer")).sample()
    assert calls == [1]  # texel centres at integer levels: torch's draw
    monkeypatch.setattr(draw_native, "draw_queries", lambda *a: None)  # no kernel: torch's draw
    fallback = PyramidSampler(btf, SamplerConfig(batch_size=500)).sample()
    assert fallback.uv.shape == (500, 2) and bool((fallback.lod <= btf.n_levels - 1).all())
