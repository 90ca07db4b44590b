"""The native decoder head (neumip/decoder_kernel.c) against torch's head, a second
implementation: values over the range a decoder outputs and far beyond it, NaN and infinities,
without the shadow mask, a partial last block; the training head's values and gradients against
torch's autograd in float64; and the decoder taking the eval head without autograd only and the
training head in training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from neumip import decoder_native
from neumip.config import ModelConfig
from neumip.decoder import YUV_TO_RGB, YUVLogDecoder
from tests.conftest import require_cpu_features

HEAD_KERNEL = Path(decoder_native.__file__).with_name("decoder_kernel.c")


@pytest.fixture(autouse=True)
def kernel():
    runs = decoder_native.yuv_log_head(torch.zeros(1, 6), YUV_TO_RGB, True) is not None
    require_cpu_features(HEAD_KERNEL, runs, "AVX-512", "the decoder's torch head")


def torch_head(t: torch.Tensor, shadow_mask: bool) -> torch.Tensor:
    rgb = torch.expm1(t[:, :3].double() @ YUV_TO_RGB.double().t())
    if shadow_mask:
        rgb = rgb * (0.1 + torch.sigmoid(t[:, 3:6].double()))
    return rgb.clamp_min(0.0)


@pytest.mark.parametrize("shadow_mask", [True, False])
def test_values_equal_torch_in_float64_within_float32_round_off(shadow_mask):
    g = torch.Generator().manual_seed(1)
    n = 4099  # a partial last block of 16
    t = torch.cat([torch.randn(n, 6, generator=g) * 3,          # what decoders output
                   torch.rand(n, 6, generator=g) * 60 - 30,      # far beyond
                   torch.randn(n, 6, generator=g) * 1e-3])       # expm1's cancellation zone
    t = t if shadow_mask else t[:, :3].contiguous()
    got = decoder_native.yuv_log_head(t, YUV_TO_RGB, shadow_mask).double()
    want = torch_head(t, shadow_mask)
    m = YUV_TO_RGB.double()
    l = t[:, :3].double() @ m.t()
    over = torch.expm1(l) > torch.finfo(torch.float32).max  # e^l overflows float32, as in torch's head
    assert bool(over.any()) and bool(got[over].isinf().all())
    # float32 sums l = M t to within a few ulp of sum |M t|, which moves e^l by e^l times that; the
    # exp itself is good to about 1e-6 relative
    spread = t[:, :3].abs().double() @ m.abs().t()
    gate = 0.1 + torch.sigmoid(t[:, 3:6].double()) if shadow_mask else 1.0
    tol = 1e-6 * want.abs() + torch.exp(l) * gate * 2.4e-7 * spread
    fine = ~over
    assert bool(((got - want).abs()[fine] <= tol[fine]).all())
    assert bool((got[fine] >= 0).all())


def test_nan_stays_nan_and_the_float_range_ends_match_torch():
    t = torch.zeros(7, 6)
    t[0, 0] = float("nan")        # NaN in the luminance: NaN out, as torch
    t[1, 4] = float("nan")        # NaN in a shadow mask output: that channel NaN
    t[2, 0] = 200.0               # exp overflows: inf
    t[3, 0] = -200.0              # expm1 -> -1, clamped to 0
    t[4, 3:] = 200.0              # sigmoid -> 1
    t[5, 3:] = -200.0             # sigmoid -> 0: rgb = 0.1 expm1
    t[6, :3] = torch.tensor([1.0, 0.0, 0.0])
    got = decoder_native.yuv_log_head(t, YUV_TO_RGB, True)
    want = torch.expm1(t[:, :3] @ YUV_TO_RGB.t()) * (0.1 + torch.sigmoid(t[:, 3:6]))
    want = want.clamp_min(0.0)
    assert torch.equal(got.isnan(), want.isnan()) and bool(got[0].isnan().all()) and bool(got[1, 1].isnan())
    assert torch.equal(got.isinf(), want.isinf()) and bool(got[2].isinf().any())
    assert bool((got[3] == 0).all())
    finite = want.isfinite()
    torch.testing.assert_close(got[finite], want[finite], rtol=1e-6, atol=0)
    assert float(got[6, 0]) == pytest.approx(math.expm1(1.0) * 0.6, rel=1e-6)  # sigmoid(0) = 1/2


@pytest.mark.parametrize("shadow_mask", [True, False])
def test_training_head_values_and_gradients_equal_torch_autograd_in_float64(shadow_mask):
    g = torch.Generator().manual_seed(2)
    n = 4099
    t = torch.cat([torch.randn(n, 6, generator=g) * 2, torch.randn(n, 6, generator=g) * 1e-3])
    t = t if shadow_mask else t[:, :3].contiguous()
    grad = torch.randn(t.shape[0], 3, generator=g)
    ref = t.double().requires_grad_(True)
    m = YUV_TO_RGB.double()
    l = ref[:, :3] @ m.t()
    want = torch.expm1(l) * (0.1 + torch.sigmoid(ref[:, 3:6])) if shadow_mask else torch.expm1(l)
    want.backward(grad.double())
    got_t = t.clone().requires_grad_(True)
    got = decoder_native.TrainHead.apply(got_t, YUV_TO_RGB, shadow_mask)
    got.backward(grad)
    # not clamped (the training head), and within float32's round-off of the float64 head: l = M t
    # is summed in float32 to a few ulp of sum |M t|, which moves e^l by e^l times that
    assert bool((got < 0).any())
    spread = t[:, :3].abs().double() @ m.abs().t()
    gate = 0.1 + torch.sigmoid(t[:, 3:6].double()) if shadow_mask else 1.0
    l = l.detach()
    value_bound = 1e-6 * want.abs() + torch.exp(l) * gate * 2.4e-7 * spread
    assert bool(((got.double() - want).abs() <= value_bound).all())
    # gradients: at l, g (0.1 + s) e^l, each within float32's round-off of e^l as above, summed
    # through M^T; at the gate's inputs, g e s (1 - s), e within the same bound
    g64 = grad.double()
    dl_bound = g64.abs() * gate * torch.exp(l) * (2e-6 + 2.4e-7 * spread)
    bound = dl_bound @ m.abs() + 1e-6 * (g64.abs() * gate * torch.exp(l)) @ m.abs()
    err = (got_t.grad.double() - ref.grad).abs()
    assert bool((err[:, :3] <= bound).all())
    if shadow_mask:
        s = torch.sigmoid(t[:, 3:6].double())
        e_bound = 1e-6 * torch.expm1(l).abs() + torch.exp(l) * (2e-6 + 2.4e-7 * spread)
        gate_bound = g64.abs() * s * (1 - s) * e_bound
        assert bool((err[:, 3:] <= gate_bound + 1e-6 * ref.grad[:, 3:].abs()).all())


def test_the_decoder_takes_the_eval_head_without_autograd_and_the_training_head_in_training(monkeypatch):
    calls, trains = [], []
    real, real_train = decoder_native.yuv_log_head, decoder_native.TrainHead.apply
    monkeypatch.setattr(decoder_native, "yuv_log_head", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(decoder_native.TrainHead, "apply", lambda *a: trains.append(1) or real_train(*a))
    dec = YUVLogDecoder(ModelConfig(), "torch")
    t = torch.randn(100, 6, requires_grad=True)
    dec.train()
    trained = dec.head(t)  # training: the native training head, not clamped, with autograd
    assert not calls and trains == [1] and bool((trained < 0).any())
    trained.sum().backward()
    torch_t = t.detach().clone().requires_grad_(True)
    want = torch.expm1(torch_t[:, :3] @ YUV_TO_RGB.t()) * (0.1 + torch.sigmoid(torch_t[:, 3:6]))
    want.sum().backward()
    torch.testing.assert_close(trained, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(t.grad, torch_t.grad, rtol=1e-5, atol=1e-6)
    dec.eval()
    with torch.no_grad():
        native = dec.head(t)
    assert calls == [1]
    torch.testing.assert_close(native, trained.detach().clamp_min(0.0), rtol=1e-6, atol=1e-7)
    dec.head(t).sum().backward()  # eval with gradients to the outputs: torch's head
    assert calls == [1] and trains == [1]
