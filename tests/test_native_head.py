"""The native decoder head (neumip/decoder_kernel.c) against torch's head, a second
implementation: values over the range a decoder outputs and far beyond it, NaN and infinities,
without the shadow mask, a partial last block; and the decoder taking it in eval mode only."""

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


def test_the_decoder_takes_it_in_eval_without_autograd_only(monkeypatch):
    calls = []
    real = decoder_native.yuv_log_head
    monkeypatch.setattr(decoder_native, "yuv_log_head", lambda *a: calls.append(1) or real(*a))
    dec = YUVLogDecoder(ModelConfig(), "torch")
    t = torch.randn(100, 6)
    dec.train()
    trained = dec.head(t)  # training: torch's head, not clamped
    assert not calls and bool((trained < 0).any())
    dec.eval()
    with torch.no_grad():
        native = dec.head(t)
    assert calls == [1]
    torch.testing.assert_close(native, trained.clamp_min(0.0), rtol=1e-6, atol=1e-7)
    t.requires_grad_(True)
    dec.head(t).sum().backward()  # gradients to the outputs: torch's head again
    assert calls == [1] and t.grad is not None
