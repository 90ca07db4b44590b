"""The native wrapped blur (neumip/blur_kernel.c) against blur.py's circulant matrix products in
float64, a second implementation: values and gradients for kernels narrower than the tile,
wider than it (taps wrapping more than once), non-square levels, a batch of textures and channel
counts 1 to 16; and blur_wrapped taking it for float32 on the CPU only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neumip import blur
from tests.conftest import require_native_kernel

BLUR_KERNEL = Path(blur.__file__).with_name("blur_kernel.c")


@pytest.fixture(autouse=True)
def kernel():
    require_native_kernel(BLUR_KERNEL)


def circulant64(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """blur.py's circulant products in float64 (the native kernel switched off)."""
    _, h, w, _ = x.shape
    mh = blur.circulant_gaussian(h, sigma, torch.float64, x.device)
    mw = blur.circulant_gaussian(w, sigma, torch.float64, x.device)
    return (mh @ x.double().permute(0, 3, 1, 2) @ mw.t()).permute(0, 2, 3, 1)


@pytest.mark.parametrize(("shape", "sigma"), [((1, 128, 128, 16), 0.37), ((1, 64, 64, 7), 8.0),
                                              ((2, 4, 4, 3), 8.0), ((1, 32, 16, 5), 1.3),
                                              ((3, 2, 2, 1), 0.5), ((1, 8, 8, 16), 30.0)])
def test_values_and_gradients_equal_the_circulant_products(shape, sigma):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g).requires_grad_(True)
    grad = torch.randn(*shape, generator=g)
    out = blur.blur_wrapped(x, sigma)
    assert out.dtype == torch.float32 and out.is_contiguous()
    out.backward(grad)
    want = circulant64(x.detach(), sigma)
    # each output a convex combination of inputs: float32 round-off of the largest values
    tol = 4e-7 * float(x.detach().abs().max()) * 4
    assert float((out.detach().double() - want).abs().max()) <= tol
    x64 = x.detach().double().requires_grad_(True)
    circulant64(x64, sigma).backward(grad.double())
    assert float((x.grad.double() - x64.grad).abs().max()) <= 4e-7 * float(grad.abs().max()) * 4


def test_blur_wrapped_takes_the_kernel_for_float32_on_the_cpu_only(monkeypatch):
    calls = []
    real = blur._native_blur
    monkeypatch.setattr(blur, "_native_blur", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(1, 16, 16, 4)
    native = blur.blur_wrapped(x, 1.5)
    assert calls == [1]
    f64 = blur.blur_wrapped(x.double(), 1.5)  # float64: the circulant products
    assert calls == [1] and f64.dtype == torch.float64
    torch.testing.assert_close(native.double(), f64, rtol=0, atol=1e-6)
    assert blur.blur_wrapped(x, blur.MIN_SIGMA / 2) is x and calls == [1]
