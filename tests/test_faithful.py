"""The official NeuMIP's choices (straintensor/NeuMIP) and the continuous-direction data: closed
forms and counts, each able to fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from btf_data.btf_file import BTFFile
from btf_data.directions import direction_set, random_directions, split_by_direction
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
    """The official code's footprints (straintensor/NeuMIP dataset/rays.py,
    camera_generate_path_size): 30% 2^(u (L - 1)), 60% 1 / sqrt(y), 10% 1, with lod = log2 of the
    footprint: uniform on [0, max] / P(lod > l) = P(y < 4^-l) = 4^-l / 0. So its CDF is
    F(l) = 0.1 + 0.3 l / max + 0.6 (1 - 4^-l) below max (clamped: F(max) = 1). Checked on a 128 x 128
    file (max lod 7, the case of ScheduleConfig.lod_sampling's "59% below lod 1") with a tolerance
    of 5 binomial standard errors."""
    path = tmp_path / "s128.h5"
    dirs = direction_set("tiny")[:2]
    write_small_btf(path, images=np.zeros((2, 2, 128, 128, 3), np.float32), dirs=dirs)
    n = 200000
    with BTFFile(path) as btf:
        s = PyramidSampler(btf, SamplerConfig(batch_size=n, lod_sampling="official", subset="all"), seed=0)
        assert s.max_lod == 7.0
        lod = s.sample().lod.double()

    def cdf(level: float) -> float:
        return 1.0 if level >= 7 else 0.1 + 0.3 * level / 7 + 0.6 * (1 - 4.0**-level)

    def check(got: float, p: float, what: str) -> None:
        se = math.sqrt(p * (1 - p) / n)
        assert abs(got - p) < 5 * se + 1e-12, f"{what}: {got:.5f}, want {p:.5f} +- {5 * se:.5f}"

    assert cdf(1.0 - 1e-12) == pytest.approx(0.59, abs=0.003)  # the docstring's 59%
    check(float((lod == 0).double().mean()), 0.1, "P(lod = 0)")  # only the 10% share sits at 0
    check(float((lod < 1).double().mean()), 0.1 + 0.3 / 7 + 0.45, "P(lod < 1)")
    for level in (0.25, 0.5, 2.0, 3.0, 5.0, 6.9):
        check(float((lod <= level).double().mean()), cdf(level), f"P(lod <= {level})")
    assert float(lod.min()) == 0.0 and float(lod.max()) <= 7.0
    with BTFFile(path) as btf, pytest.raises(ValueError, match="lod_sampling"):
        PyramidSampler(btf, SamplerConfig(lod_sampling="bogus"))


def test_shadow_mask_multiplies_the_decoded_rgb():
    """The official decoder head (straintensor/NeuMIP neural_rendering.py): rgb = exp(YUV->RGB(t)) - 1,
    times 0.1 + sigmoid(m), clamped at 0 in eval mode. Known answers: log1p of a chosen rgb, taken
    to YUV by the BT.601 forward transform (W_R 0.299, W_B 0.114, U_max 0.436, V_max 0.615),
    decodes back to that rgb; mask logits ln 3, 0, -ln 3 scale it by 0.85, 0.6 and 0.35."""
    torch.manual_seed(0)
    model = NeuMIP(ModelConfig(backend="torch", shadow_mask=True), 16).eval()
    assert model.decoder.mlp.n_out == 6

    def rgb_to_yuv(c: torch.Tensor) -> torch.Tensor:
        r, g, b = c.unbind(-1)
        y = 0.299 * r + 0.587 * g + 0.114 * b
        return torch.stack([y, 0.436 / (1 - 0.114) * (b - y), 0.615 / (1 - 0.299) * (r - y)], -1)

    rgb = torch.tensor([[1.0, 0.5, 2.0], [0.0, 3.0, 0.25], [-0.5, 0.2, 0.0]], dtype=torch.float64)
    ln3 = math.log(3.0)
    logits = torch.tensor([[ln3, 0.0, -ln3]] * 3, dtype=torch.float64)
    t = torch.cat([rgb_to_yuv(torch.log1p(rgb)), logits], 1).float()
    want = torch.tensor([[0.85, 0.3, 0.7], [0.0, 1.8, 0.0875], [-0.425, 0.12, 0.0]])
    tol = {"rtol": 1e-4, "atol": 2e-5}  # the official matrix's constants are rounded to 1e-5
    with torch.no_grad():
        torch.testing.assert_close(model.decoder.head(t), want.clamp_min(0), **tol)
        model.decoder.train()
        torch.testing.assert_close(model.decoder.head(t), want, **tol)  # unclamped in training
        model.decoder.eval()
        # The model's forward is that head on the MLP of (latent, wi.xy, wo.xy) at the offset uv.
        n = 7
        uv, lod = torch.rand(n, 2), torch.rand(n) * 3
        w = torch.nn.functional.normalize(torch.rand(n, 3) + torch.tensor([0, 0, 1.0]), dim=1)
        latent = model.pyramid(model.offset(uv, w, 0.0), lod)
        t = model.decoder.mlp(torch.cat([latent, w[:, :2], w[:, :2]], 1))
        torch.testing.assert_close(model(uv, w, w, lod), model.decoder.head(t))
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


def official_blur_factor(n: int, freq: int, sigma: float) -> float:
    """How much the official code's wrapped blur (utils/tensor.py blur1d: taps |d| <= ceil(3 sigma)
    of exp(-d^2 / 2 sigma^2), normalised, on the texture tiled around) scales cos(2 pi freq x / n)."""
    r = math.ceil(3 * sigma)
    d = np.arange(-r, r + 1)
    w = np.exp(-(d * d) / (2 * sigma * sigma))
    return float((w * np.cos(2 * np.pi * freq * d / n)).sum() / w.sum())


#: (fx, fy) of each channel of :func:`plane_waves`: a constant and three waves.
WAVES = ((0, 0), (1, 0), (0, 2), (1, 3))


def plane_waves(n: int, amplitude=lambda fx, fy: 1.0) -> torch.Tensor:
    """(1, n, n, 4): channel c is amplitude(fx, fy) cos(2 pi (fx x + fy y) / n), (fx, fy) = WAVES[c].
    A separable, symmetric blur scales such a wave by its factor at fx times its factor at fy."""
    i = torch.arange(n, dtype=torch.float64)
    y, x = torch.meshgrid(i, i, indexing="ij")
    waves = [amplitude(fx, fy) * torch.cos(2 * math.pi * (fx * x + fy * y) / n) for fx, fy in WAVES]
    return torch.stack(waves, -1)[None].float()


def test_offset_texture_is_read_blurred_at_least_blur_min():
    """With blur_min 1, plane waves in the offset texture read as the waves scaled by the official
    blur's factors (closed form above) at sigma max(asked, 1)."""
    torch.manual_seed(0)
    off = NeuralOffset(16, 4, 16, 2, "torch", blur_min=1.0)
    known = NeuralOffset(16, 4, 16, 2, "torch", blur_min=0.0)  # reads its texture as it is
    uv, wo = torch.rand(50, 2), torch.nn.functional.normalize(torch.rand(50, 3) + 1, dim=1)
    with torch.no_grad():
        off.texture.copy_(plane_waves(16))
        off.mlp.matrices()[-1].normal_()
        known.load_state_dict(off.state_dict())
        for asked, sigma in ((0.0, 1.0), (0.6, 1.0), (2.0, 2.0)):
            known.texture.copy_(plane_waves(16, lambda fx, fy, s=sigma: official_blur_factor(16, fx, s)
                                            * official_blur_factor(16, fy, s)))
            torch.testing.assert_close(off.depth(uv, wo, asked), known.depth(uv, wo, 0.0), rtol=1e-4,
                                       atol=1e-6, msg=f"asked sigma {asked}")
        first = off.depth(uv, wo, 0.0)
        off.texture.mul_(2.0)  # the cached blur (no autograd) follows the texture's changes
        cached = off.depth(uv, wo, 0.0)
    fresh = off.depth(uv, wo, 0.0)  # with autograd: blurred anew
    torch.testing.assert_close(cached, fresh.detach())
    assert not torch.allclose(first, cached)


def test_fuse_blur_blends_each_level_towards_its_blur():
    """The official fuse_blur (mipmaptexture.py: weight 0.1, blur 1.03 texels of each level):
    plane waves come out scaled by 0.9 + 0.1 x the official blur's factor, on every level: on the
    4 x 4 and 2 x 2 levels the official 9-tap kernel wraps around the level, its taps adding up
    periodically (a wave of the finest frequency is damped, never flipped in sign)."""
    pyr = LatentPyramid(16, 4)
    with torch.no_grad():
        for t in pyr.levels:
            t.copy_(plane_waves(t.shape[1]) + 0.3)
    means = [t.detach().mean(dim=(1, 2)) for t in pyr.levels]
    pyr.fuse_blur(0.1, 1.03)
    for t, mean in zip(pyr.levels, means, strict=True):
        n = t.shape[1]
        got = t.detach()
        want = plane_waves(n, lambda fx, fy, n=n: 0.9 + 0.1 * official_blur_factor(n, fx, 1.03)
                           * official_blur_factor(n, fy, 1.03)) + 0.3
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=f"{n} x {n}")
        torch.testing.assert_close(got[..., 0], torch.full_like(got[..., 0], 1.3))  # the constant
        torch.testing.assert_close(got.mean(dim=(1, 2)), mean, atol=1e-6, rtol=0)  # mass kept


def test_scores_split_by_light_band(tmp_path):
    """Known answers: every image is constant, 1 under the overhead light and 3 under the four at
    45 deg ("tiny" directions), scored against a zero prediction. Tone-mapped (x / (1 + x), then
    sRGB) the errors are srgb(1/2) and srgb(3/4), so each band's PSNR is -20 log10 of its error,
    the overall MSE their pair-weighted mean; as rendered (x cos theta_i) the 45 deg values are
    3 / sqrt(2). No light is grazing."""
    path = tmp_path / "s.h5"
    values = np.array([1.0, 3.0, 3.0, 3.0, 3.0], np.float32)  # per light
    write_small_btf(path, images=np.broadcast_to(values[None, :, None, None, None], (5, 5, 16, 16, 3)).copy(),
                    dirs=direction_set("tiny"))

    def black(uv, wi, wo, lod):  # a zero prediction: every error is the ground truth's own value
        return torch.zeros(uv.shape[0], 3)

    def srgb_of_reinhard(x: float) -> float:
        y = x / (1 + x)
        return 1.055 * y ** (1 / 2.4) - 0.055

    e0, e45 = srgb_of_reinhard(1.0), srgb_of_reinhard(3.0)
    e45_cos = srgb_of_reinhard(3.0 / math.sqrt(2.0))
    overhead, mid, grazing = light_band_labels()
    with BTFFile(path) as btf:
        scores = evaluate_query(black, btf, levels=2, subset="all")
    assert len(scores) == 2  # constant images: level 1 scores as level 0
    for s in scores:
        assert s.pairs_by_light == {overhead: 5, mid: 20, grazing: 0}
        assert s.psnr_by_light[overhead] == pytest.approx(-20 * math.log10(e0), rel=1e-6)
        assert s.psnr_by_light[mid] == pytest.approx(-20 * math.log10(e45), rel=1e-6)
        assert s.psnr_by_light[grazing] is None
        assert s.mse_tonemapped == pytest.approx((5 * e0**2 + 20 * e45**2) / 25, rel=1e-6)
        assert s.psnr == pytest.approx(-10 * math.log10((5 * e0**2 + 20 * e45**2) / 25), rel=1e-6)
        assert s.mse_linear == pytest.approx((5 * 1.0 + 20 * 9.0) / 25, rel=1e-6)
        assert s.psnr_cos == pytest.approx(-10 * math.log10((5 * e0**2 + 20 * e45_cos**2) / 25), rel=1e-6)


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
