"""The official NeuMIP's choices (straintensor/NeuMIP) and the continuous-direction data: closed
forms and counts, each able to fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from btf_data.btf_file import BTFFile
from btf_data.directions import random_directions, split_by_direction
from btf_data.generate import GenerateConfig, MaterialConfig, RandomDirectionsConfig, generate
from btf_data.sampler import PyramidSampler, SamplerConfig
from neumip.config import ModelConfig
from neumip.evaluate import evaluate_query, light_band_labels
from neumip.latent_pyramid import LatentPyramid
from neumip.model import NeuMIP, model_config_from_meta
from neumip.neural_offset import NeuralOffset
from tests.conftest import write_small_btf


def test_random_directions_are_uniform_on_the_projected_disk():
    d = random_directions(20000, 84.0, seed=3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    assert d[:, 2].min() >= math.cos(math.radians(84.0)) - 1e-12
    r2 = 1.0 - d[:, 2] ** 2  # squared radius on the disk: uniform in [0, sin^2 max]
    assert r2.mean() == pytest.approx(math.sin(math.radians(84.0)) ** 2 / 2, rel=0.02)
    phi = np.arctan2(d[:, 1], d[:, 0])
    assert np.histogram(phi, bins=8)[0].min() > 0.9 * 20000 / 8
    np.testing.assert_array_equal(random_directions(5, 60.0, 1), random_directions(5, 60.0, 1))
    with pytest.raises(ValueError, match="max_theta"):
        random_directions(5, 95.0, 1)


def test_split_by_direction_holds_out_whole_directions():
    split = split_by_direction(20, 30, 0.1, seed=0)
    held_views = np.nonzero(split.all(axis=1))[0]
    held_lights = np.nonzero(split.all(axis=0))[0]
    assert len(held_views) == 2 and len(held_lights) == 3
    train = np.argwhere(split == 0)
    assert not np.isin(train[:, 0], held_views).any() and not np.isin(train[:, 1], held_lights).any()
    assert split.sum() == 20 * 30 - 18 * 27


def test_random_direction_file_has_its_own_views_and_lights(tmp_path):
    path = tmp_path / "r.h5"
    rd = RandomDirectionsConfig(views=6, lights=5, max_theta=80.0, seed=2)
    generate(
        GenerateConfig(
            material=MaterialConfig(name="bumps"),
            resolution=8,
            directions="random",
            random_directions=rd,
            out=str(path),
            progress=False,
            dtype="float32",
        )
    )
    with BTFFile(path) as btf:
        assert btf.shape[:2] == (6, 5)
        np.testing.assert_allclose(btf.wo_dirs, random_directions(6, 80.0, 2), atol=1e-6)
        np.testing.assert_allclose(btf.wi_dirs, random_directions(5, 80.0, 3), atol=1e-6)
        held = btf.pairs("held_out")
        train = btf.pairs("train")
        assert len(held) == 6 * 5 - 5 * 4  # one view and one light held out whole
        unseen_views = set(map(int, held[:, 0])) - set(map(int, train[:, 0]))
        unseen_lights = set(map(int, held[:, 1])) - set(map(int, train[:, 1]))
        assert len(unseen_views) == 1 and len(unseen_lights) == 1


def test_official_lod_mixture(tmp_path):
    path = tmp_path / "s.h5"
    write_small_btf(path)  # 16 x 16: levels 0..4
    with BTFFile(path) as btf:
        s = PyramidSampler(btf, SamplerConfig(batch_size=200000, lod_sampling="official"), seed=0)
        lod = s.sample().lod
    top = float(s.max_lod)
    assert float((lod == 0).float().mean()) == pytest.approx(0.1, abs=0.01)
    # P(lod < 1) = 0.1 + 0.3 / max_lod + 0.6 * (1 - 1/4)
    assert float((lod < 1).float().mean()) == pytest.approx(0.1 + 0.3 / top + 0.45, abs=0.01)
    # the geometric part: P(lod > 2) = 0.3 * (top - 2) / top + 0.6 / 16
    assert float((lod > 2).float().mean()) == pytest.approx(0.3 * (top - 2) / top + 0.6 / 16, abs=0.01)
    assert float(lod.max()) <= top
    with BTFFile(path) as btf, pytest.raises(ValueError, match="lod_sampling"):
        PyramidSampler(btf, SamplerConfig(lod_sampling="bogus"))


def test_shadow_mask_multiplies_the_decoded_rgb():
    torch.manual_seed(0)
    model = NeuMIP(ModelConfig(backend="torch", shadow_mask=True), 16).eval()
    n = 7
    uv, lod = torch.rand(n, 2), torch.rand(n) * 3
    w = torch.nn.functional.normalize(torch.rand(n, 3) + torch.tensor([0, 0, 1.0]), dim=1)
    with torch.no_grad():
        uv_s = model.offset(uv, w, 0.0)
        latent = model.pyramid(uv_s, lod)
        t = model.decoder.mlp(torch.cat([latent, w[:, :2], w[:, :2]], 1))
        want = torch.expm1(t[:, :3] @ model.decoder.yuv_to_rgb.t()) * (0.1 + torch.sigmoid(t[:, 3:6]))
        torch.testing.assert_close(model(uv, w, w, lod), want.clamp_min(0))
        assert model.decoder.mlp.n_out == 6
        # the mask moves the output: mask logits of -inf leave 0.1 of the rgb
        model.decoder.mlp.matrices()[-1][3:6].zero_()
        half = model(uv, w, w, lod)
        model.decoder.mlp.matrices()[-1][3:6].fill_(-1e4)
        torch.testing.assert_close(model(uv, w, w, lod), half * (0.1 / 0.6), rtol=1e-5, atol=1e-7)


def test_old_checkpoints_keep_their_model():
    """Checkpoints written before shadow_mask / offset_blur_min existed were trained without them."""
    meta = {"model": {"latent_channels": 7, "depth_scale": 0.1}, "resolution": 16}
    cfg = model_config_from_meta("old.safetensors", meta, "torch")
    assert cfg.shadow_mask is False and cfg.offset_blur_min == 0.0 and cfg.depth_scale == 0.1
    assert ModelConfig().shadow_mask is True and ModelConfig().depth_scale == 0.05


def test_offset_texture_is_read_blurred_at_least_blur_min():
    torch.manual_seed(0)
    off = NeuralOffset(16, 3, 16, 2, "torch", blur_min=1.0)
    with torch.no_grad():
        off.texture.normal_()
        off.mlp.matrices()[-1].normal_()
        sharp = NeuralOffset(16, 3, 16, 2, "torch", blur_min=0.0)
        sharp.load_state_dict(off.state_dict())
        uv, wo = torch.rand(50, 2), torch.nn.functional.normalize(torch.rand(50, 3) + 1, dim=1)
        from neumip.blur import blur_wrapped

        sharp.texture.copy_(blur_wrapped(off.texture, 1.0))
        torch.testing.assert_close(off.depth(uv, wo, 0.0), sharp.depth(uv, wo, 0.0))
        torch.testing.assert_close(
            off.depth(uv, wo, 2.0), sharp.depth(uv, wo, math.sqrt(3.0)), rtol=1e-2, atol=1e-3
        )  # sigma 2 = blur 1 then blur sqrt(3)
        first = off.depth(uv, wo, 0.0)
        off.texture.mul_(2.0)  # the cached blur (no autograd) follows the texture's changes
        cached = off.depth(uv, wo, 0.0)
    fresh = off.depth(uv, wo, 0.0)  # with autograd: blurred anew
    torch.testing.assert_close(cached, fresh.detach())
    assert not torch.allclose(first, cached)


def test_fuse_blur_blends_each_level_towards_its_blur():
    torch.manual_seed(0)
    pyr = LatentPyramid(16, 2)
    before = [t.detach().clone() for t in pyr.levels]
    pyr.fuse_blur(0.1, 1.03)
    from neumip.blur import blur_wrapped

    for b, t in zip(before, pyr.levels, strict=True):
        torch.testing.assert_close(t.detach(), 0.9 * b + 0.1 * blur_wrapped(b, 1.03))
        torch.testing.assert_close(t.detach().sum(), b.sum(), rtol=1e-4, atol=1e-4)  # mass kept
    flat = LatentPyramid(8, 1)
    with torch.no_grad():
        for t in flat.levels:
            t.fill_(0.3)
    flat.fuse_blur(0.5, 2.0)
    assert all(torch.allclose(t, torch.full_like(t, 0.3)) for t in flat.levels)


def test_scores_split_by_light_band(tmp_path):
    path = tmp_path / "s.h5"
    write_small_btf(path)
    with BTFFile(path) as btf:

        def black(uv, wi, wo, lod):  # a zero prediction: every error is the ground truth's own value
            return torch.zeros(uv.shape[0], 3)

        scores = evaluate_query(black, btf, levels=2, subset="all")
        theta = np.degrees(np.arccos(btf.wi_dirs[:, 2]))
        pairs = btf.pairs("all")
        n_mid = int(((theta[pairs[:, 1]] >= 35) & (theta[pairs[:, 1]] < 60)).sum())
        s = scores[0]
        labels = light_band_labels()
        assert list(s.psnr_by_light) == labels
        assert s.pairs_by_light[labels[1]] == n_mid and sum(s.pairs_by_light.values()) == len(pairs)
        # the overall MSE is the pair-weighted mean of the bands' MSEs
        mse = sum(
            10 ** (-s.psnr_by_light[b] / 10) * s.pairs_by_light[b] for b in labels if s.pairs_by_light[b]
        ) / len(pairs)
        assert mse == pytest.approx(s.mse_tonemapped, rel=1e-6)
        assert s.psnr_cos > s.psnr  # a zero prediction: the cos-weighted ground truth is darker


def test_sh3_encoding_is_orthonormal_and_the_variant_builds():
    from neumip.direction_encoding import encoding_width, real_sh3

    n = 200000  # Fibonacci sphere: near-uniform, deterministic quadrature
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = (1 - z * z).sqrt()
    w = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], 1)
    y = real_sh3(w)
    gram = y.t() @ y * (4 * math.pi / n)
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=2e-3, rtol=0)
    up = real_sh3(torch.tensor([[0.0, 0.0, 1.0]]))[0]
    assert up[2] == pytest.approx(math.sqrt(3 / (4 * math.pi)))  # Y_1,0 at the pole
    assert encoding_width("sh3") == 16
    with pytest.raises(ValueError, match="direction encoding"):
        encoding_width("fourier")
    model = NeuMIP(
        ModelConfig(backend="torch", latent_channels=16, decoder_width=64, direction_encoding="sh3"), 16
    ).eval()
    assert model.decoder.mlp.n_in == 16 + 32
    uv, lod = torch.rand(5, 2), torch.rand(5)
    wv = torch.nn.functional.normalize(torch.rand(5, 3) + torch.tensor([0, 0, 1.0]), dim=1)
    assert model(uv, wv, wv, lod).shape == (5, 3)
