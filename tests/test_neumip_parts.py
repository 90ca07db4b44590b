"""NeuMIP's parts: MLP backends and their layout, blur, latent pyramid, neural offset, queries."""

from __future__ import annotations

import math

import pytest
import torch

from neumip import mlp_native
from neumip.blur import MIN_SIGMA, blur_wrapped, circulant_gaussian
from neumip.config import ModelConfig
from neumip.latent_pyramid import LatentPyramid, latent_level_count
from neumip.mlp_backends import (
    TorchMLP,
    flat_param_count,
    make_mlp,
    resolve_backend,
    tcnn_available,
)
from neumip.model import NeuMIP
from neumip.neural_offset import NeuralOffset

TCNN_OK, TCNN_REASON = tcnn_available()


def _dirs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, 3, generator=g)
    v[:, 2] = v[:, 2].abs() + 0.2
    return v / v.norm(dim=1, keepdim=True)


def test_torch_mlp_has_tiny_cuda_nn_flat_layout():
    mlp = TorchMLP(11, 3, 32, 3)
    # tiny-cuda-nn: pad16(11) * 32 + (3 - 1) * 32 * 32 + 32 * pad16(3)
    assert flat_param_count(11, 3, 32, 3) == 16 * 32 + 2 * 32 * 32 + 32 * 16 == 3072
    assert mlp.params.numel() == 3072 and list(mlp.parameters()) == [mlp.params]
    assert [tuple(m.shape) for m in mlp.matrices()] == [(32, 16), (32, 32), (32, 32), (16, 32)]
    # The matrices are row-major [out, in] views of the flat vector, in layer order.
    assert mlp.matrices()[1].data_ptr() == mlp.params.data_ptr() + 16 * 32 * 4


def test_torch_mlp_pads_inputs_with_ones_like_a_first_layer_bias():
    torch.manual_seed(0)
    mlp = TorchMLP(5, 2, 16, 2)
    x = torch.randn(7, 5)
    w0, w1, w2 = mlp.matrices()
    bias = w0[:, 5:].sum(dim=1)  # the 11 padded columns all see the constant 1
    h = torch.relu(x @ w0[:, :5].t() + bias)
    h = torch.relu(h @ w1.t())
    want = (h @ w2.t())[:, :2]
    torch.testing.assert_close(mlp(x), want)


@pytest.mark.parametrize("fused", [True, False])
def test_torch_mlp_inference_path_equals_the_padded_layout_and_follows_weight_changes(fused, monkeypatch):
    """Without autograd the MLP runs its inference path (oneDNN's fused linear + ReLU, or plain
    linear layers where that is missing; bf16 under autocast, in chunks): the same numbers as the
    padded layout computed by hand (fp32 to round-off, bf16 to its 8-bit mantissa), and new
    numbers once the weights change (its cast weights are rebuilt). oneDNN's bf16 layers here
    (tests/test_native_mlp.py holds the native bf16 kernel that replaces them where it serves)."""
    monkeypatch.setattr(TorchMLP, "_fused", fused)
    monkeypatch.setattr(mlp_native, "serves", lambda *shape: False)
    # 1024 rows a chunk in fp32, 2048 in bf16 (width 32): several chunks and a partial one
    monkeypatch.setattr(TorchMLP, "inference_bytes", 1024 * 32 * 4)
    torch.manual_seed(1)
    mlp = TorchMLP(9, 3, 32, 3)
    x = torch.randn(2500, 9)

    def by_hand() -> torch.Tensor:
        mats = [m.detach() for m in mlp.matrices()]
        h = torch.cat([x, torch.ones(2500, 16 - 9)], dim=1)  # tiny-cuda-nn's padding with ones
        for w in mats[:-1]:
            h = torch.relu(h @ w.t())
        return (h @ mats[-1].t())[:, :3]

    with torch.no_grad():
        torch.testing.assert_close(mlp(x), by_hand(), atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = mlp(x)
        assert low.dtype == torch.float32
        err = (low - by_hand()).abs().max() / by_hand().abs().max()
        assert 1e-5 < err < 3e-2  # bf16 (not fp32 silently), and close
        mlp.params.mul_(-0.5)  # in place: the cached weights must notice
        torch.testing.assert_close(mlp(x), by_hand(), atol=1e-5, rtol=1e-5)


def test_backend_selection():
    if not TCNN_OK:
        assert resolve_backend("auto") == "torch"
        with pytest.raises(RuntimeError, match="backend 'tcnn' was asked for but"):
            resolve_backend("tcnn")
    with pytest.raises(ValueError, match="MLP backend must be"):
        resolve_backend("jax")
    assert make_mlp(4, 1, 16, 1, "torch").backend == "torch"


@pytest.mark.skipif(not TCNN_OK, reason=f"tiny-cuda-nn backend unavailable: {TCNN_REASON}")
def test_tcnn_matches_torch_with_the_same_parameters():  # pragma: no cover - needs CUDA
    from neumip.mlp_backends import TcnnMLP

    torch.manual_seed(0)
    ref = TorchMLP(11, 3, 32, 3).cuda()
    fast = TcnnMLP(11, 3, 32, 3).cuda()
    with torch.no_grad():
        fast.params.copy_(ref.params)
    x = torch.rand(4096, 11, device="cuda")
    torch.testing.assert_close(fast(x), ref(x), rtol=2e-2, atol=2e-3)  # half precision


def test_blur_keeps_constants_wraps_and_skips_tiny_sigmas():
    c = torch.full((1, 8, 8, 3), 0.7)
    torch.testing.assert_close(blur_wrapped(c, 2.0), c)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 16, 8, 2, generator=g)
    rolled = blur_wrapped(torch.roll(x, (3, 5), dims=(1, 2)), 1.5)
    torch.testing.assert_close(rolled, torch.roll(blur_wrapped(x, 1.5), (3, 5), dims=(1, 2)))
    assert blur_wrapped(x, MIN_SIGMA / 2) is x
    m = circulant_gaussian(64, 2.0, torch.float64, torch.device("cpu"))
    d = torch.arange(64, dtype=torch.float64) - 10.0
    d = torch.remainder(d + 32, 64) - 32
    assert abs(math.sqrt(float((m[10] * d * d).sum())) / 2.0 - 1) < 0.03
    wide = circulant_gaussian(4, 8.0, torch.float64, torch.device("cpu"))  # wider than the period
    torch.testing.assert_close(wide.sum(1), torch.ones(4, dtype=torch.float64))


def test_latent_pyramid_levels_init_and_ablation():
    assert latent_level_count(128) == 7
    torch.manual_seed(0)
    p = LatentPyramid(128, 7)
    assert [lv.shape[1] for lv in p.levels] == [128, 64, 32, 16, 8, 4, 2]
    assert abs(float(p.levels[0].detach().std()) - 0.1) < 0.005
    single = LatentPyramid(128, 7, n_levels=1)
    assert single.n_levels == 1
    uv = torch.rand(10, 2)
    torch.testing.assert_close(single(uv, torch.full((10,), 3.0)), single(uv, torch.zeros(10)))
    with pytest.raises(ValueError, match="power of two"):
        LatentPyramid(100, 7)


def test_offset_is_zero_at_init_and_gradients_reach_every_level_and_the_offset_texture():
    torch.manual_seed(0)
    model = NeuMIP(ModelConfig(backend="torch"), 32).train()
    n = 4096
    uv, wi, wo = torch.rand(n, 2), _dirs(n, 1), _dirs(n, 2)
    lod = torch.rand(n) * (model.n_levels - 1)
    assert torch.equal(model.offset(uv, wo), uv)  # exactly no shift at init
    assert torch.all(model.offset.texture == 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # the offset MLP's zero output layer moves first, then the texture learns
        opt.zero_grad()
        model(uv, wi, wo, lod).square().mean().backward()
        opt.step()
    opt.zero_grad()
    model(uv, wi, wo, lod).square().mean().backward()
    for k, lv in enumerate(model.pyramid.levels):
        assert lv.grad is not None and lv.grad.abs().sum() > 0, f"no gradient at level {k}"
    assert model.offset.texture.grad.abs().sum() > 0
    assert model.decoder.mlp.params.grad.abs().sum() > 0


def test_frozen_offset_texture_is_blurred_once_and_again_when_it_changes():
    """After offset_freeze training blurs the frozen texture once, not every step; a changed
    texture (a loaded checkpoint) is blurred anew, and a trainable one keeps its graph."""
    torch.manual_seed(0)
    off = NeuralOffset(16, 3, 16, 2, "torch")
    with torch.no_grad():
        off.texture.normal_()
    assert off.blurred_texture(1.0).requires_grad  # trainable: blurred with autograd every call
    off.texture.requires_grad_(False)
    first = off.blurred_texture(1.0)
    assert off.blurred_texture(1.0) is first and not first.requires_grad
    torch.testing.assert_close(first, blur_wrapped(off.texture, 1.0), rtol=0, atol=0)
    with torch.no_grad():
        off.texture.mul_(2.0)
    again = off.blurred_texture(1.0)
    assert again is not first
    torch.testing.assert_close(again, 2.0 * first)
    assert off.blurred_texture(2.0) is not again  # another sigma: blurred anew


def test_offset_shift_follows_the_view_direction():
    off = NeuralOffset(16, 7, 16, 2, "torch", depth_scale=0.1, min_cos=0.6)
    with torch.no_grad():
        off.mlp.matrices()[0].zero_()
        off.mlp.matrices()[0][:, 15] = 1.0  # a padded (constant 1) input column: depth = const
        for w in off.mlp.matrices()[1:-1]:
            w.copy_(torch.eye(16))
        off.mlp.matrices()[-1].zero_()
        off.mlp.matrices()[-1][0, 0] = 1.0
    uv = torch.rand(3, 2)
    wo = torch.tensor([[0.6, 0.0, 0.8], [0.0, 0.8, 0.6], [0.0, 0.9539392, 0.3]])
    shift = off(uv, wo) - uv
    r = 0.1  # depth_scale * MLP output (= 1)
    want = torch.tensor([[r * 0.6 / 0.8, 0.0], [0.0, r * 0.8 / 0.6], [0.0, r * 0.9539392 / 0.6]])
    torch.testing.assert_close(shift, want)


def test_queries_are_validated_with_clear_messages():
    model = NeuMIP(ModelConfig(backend="torch"), 16).eval()
    n = 5
    uv, w, lod = torch.rand(n, 2), _dirs(n, 0), torch.zeros(n)
    assert model(uv, w, w, lod).shape == (n, 3)
    assert torch.all(model(uv, w, w, lod) >= 0)
    below = w.clone()
    below[2, 2] = -below[2, 2]
    cases = [
        ((uv, below, w, lod), r"wi\[2\] = .* is below the horizon"),
        ((uv, w, w * 2, lod), r"wo\[0\] is not a unit vector"),
        ((uv.clone().fill_(float("nan")), w, w, lod), "uv has NaN"),
        ((uv[:, :1], w, w, lod), r"uv has shape \(5, 1\)"),
        ((uv, w, w, lod[:3]), r"lod has shape \(3,\)"),
    ]
    for args, msg in cases:
        with pytest.raises(ValueError, match=msg):
            model(*args)
