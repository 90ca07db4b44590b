"""The native training loss (neumip/loss_kernel.c) against the loss's torch formula in float64, a
second implementation: value and gradient over the range of BRDF values and far beyond, the
log1p's small-value zone (where log(1 + x) alone would lose the digits), the clamp at -0.1 and
its gradient mask, abs's zero derivative, a partial last block, NaN and infinities; the same loss
on 1 and 2 threads; and neumip_loss taking it on the CPU only for float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neumip import loss_native
from neumip.train import neumip_loss
from tests.conftest import require_cpu_features

LOSS_KERNEL = Path(loss_native.__file__).with_name("loss_kernel.c")
CLAMP = float(torch.tensor(-0.1, dtype=torch.float32))  # float32's -0.1, where the kernel clamps


@pytest.fixture(autouse=True)
def kernel():
    runs = loss_native._library() is not None
    require_cpu_features(LOSS_KERNEL, runs, "AVX-512", "torch's loss formula")


def torch_loss64(p: torch.Tensor, y: torch.Tensor, w: float) -> tuple[float, torch.Tensor]:
    """The loss and its gradient at p by torch's autograd in float64."""
    p64 = p.double().requires_grad_(True)
    y64 = y.double()
    loss = torch.mean((torch.log1p(p64.clamp_min(CLAMP)) - torch.log1p(y64)) ** 2)
    loss = loss + w * torch.mean(torch.abs(p64 - y64))
    loss.backward()
    return loss.item(), p64.grad


def cases(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = 4099  # 3 x 4099 values: a partial last block of 16
    p = torch.cat([torch.randn(n, 3, generator=g),                 # below the clamp and around 0
                   torch.rand(n, 3, generator=g) * 100,             # bright highlights
                   torch.rand(n, 3, generator=g) * 1e-4])           # log1p's small-value zone
    y = torch.cat([torch.rand(n, 3, generator=g), torch.rand(n, 3, generator=g) * 100,
                   torch.rand(n, 3, generator=g) * 1e-4])
    p[:4] = CLAMP              # exactly at the clamp: its gradient passes there (torch's >=)
    p[4:8] = y[4:8]            # p == y: abs's derivative 0
    return p, y


@pytest.mark.parametrize("w", [0.1, 0.0])
def test_loss_and_gradient_equal_torch_autograd_in_float64(w):
    p, y = cases(0)
    want, want_grad = torch_loss64(p, y, w)
    q = p.clone().requires_grad_(True)
    got = loss_native.native_loss(q, y, w)
    assert got.dtype == torch.float32 and got.shape == ()
    assert got.item() == pytest.approx(want, rel=1e-6)
    (3.0 * got).backward()
    # each element: (2 d / (1 + a) + w sign) / n, d the difference of two log1p to about 1 ulp of
    # each (float32's eps 1.2e-7), the division and the sum a few ulp more
    a = p.double().clamp_min(CLAMP)
    lp, ly = torch.log1p(a), torch.log1p(y.double())
    n = p.numel()
    logs = 2 * 3e-7 * (lp.abs() + ly.abs()) / (1 + a)
    bound = 3.0 * (logs + 1e-6 * (2 * (lp - ly).abs() / (1 + a) + w)) / n
    assert bool(((q.grad.double() - 3.0 * want_grad).abs() <= bound).all())
    assert bool((q.grad[:4] != 0).all())  # at the clamp the log term's gradient passes (w = 0 too)


def test_the_small_value_zone_keeps_its_digits():
    """log1p(x) as log(1 + x) loses about log2(1 / x) bits: at 1e-4, a 4e-4 relative error in d."""
    g = torch.Generator().manual_seed(3)
    p = torch.rand(999, generator=g) * 1e-4
    y = p * (1 + 1e-3 * torch.randn(999, generator=g))
    q = p.clone().requires_grad_(True)
    loss_native.native_loss(q, y, 0.0).backward()
    _, want = torch_loss64(p, y, 0.0)
    assert bool(((q.grad.double() - want).abs() <= 1e-3 * want.abs() + 1e-12).all())


def test_nan_and_infinities_as_torch():
    y = torch.ones(16)
    p = torch.ones(16)
    p[3] = float("nan")
    assert torch.isnan(loss_native.native_loss(p, y, 0.1))
    p = torch.ones(16)
    y[5] = float("inf")
    assert torch.isinf(loss_native.native_loss(p, y, 0.1))


def test_the_loss_is_the_same_on_one_and_two_threads():
    p, y = cases(1)
    threads = torch.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            q = p.clone().requires_grad_(True)
            loss = loss_native.native_loss(q, y, 0.1)
            loss.backward()
            out.append((loss.item(), q.grad))
    finally:
        torch.set_num_threads(threads)
    assert out[0][0] == out[1][0] and torch.equal(out[0][1], out[1][1])


def test_neumip_loss_takes_the_kernel_for_float32_on_the_cpu(monkeypatch):
    calls = []
    real = loss_native.native_loss
    monkeypatch.setattr(loss_native, "native_loss", lambda *a: calls.append(1) or real(*a))
    p, y = cases(2)
    native = neumip_loss(p, y, 0.1)
    assert calls == [1]
    torch_formula = neumip_loss(p.double(), y.double(), 0.1)  # float64: the kernel declines
    assert torch_formula.dtype == torch.float64
    assert float(native) == pytest.approx(float(torch_formula), rel=1e-6)
    y_grad = y.clone().requires_grad_(True)  # a target that wants a gradient: torch's formula
    neumip_loss(p, y_grad, 0.1).backward()
    assert y_grad.grad is not None
