"""The native bf16 MLP kernel (neumip/mlp_kernel.c) against a second implementation: the same
network computed with torch in float32 on bf16-rounded inputs, weights and hidden activations
(what oneDNN's bf16 layers compute, to the order of summation); its shapes, strides, partial
tiles and thread counts; and TorchMLP's bf16 inference path taking it where it serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neumip import mlp_native
from neumip.mlp_backends import TorchMLP
from tests.conftest import require_cpu_features

MLP_KERNEL = Path(mlp_native.__file__).with_name("mlp_kernel.c")


@pytest.fixture(autouse=True)
def kernel():
    require_cpu_features(MLP_KERNEL, mlp_native.native_mlp_available(), "AVX512-BF16",
                         "oneDNN's bf16 layers")


def bf16_reference(x: torch.Tensor, layers: list[torch.Tensor], bias: torch.Tensor | None) -> torch.Tensor:
    """float32 sums of bf16-rounded inputs, weights and hidden activations (after the ReLU)."""
    def r(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.bfloat16).double()

    h = r(x)
    for i, w in enumerate(layers):
        h = h @ r(w).t()
        if i == 0 and bias is not None:
            h = h + bias.double()
        if i < len(layers) - 1:
            h = r(torch.relu(h))
    return h.float()


def random_layers(g: torch.Generator, n_in: int, width: int, hidden: int, n_out: int) -> list[torch.Tensor]:
    shapes = [(width, n_in)] + [(width, width)] * (hidden - 1) + [(n_out, width)]
    return [torch.randn(o, i, generator=g) / i**0.5 for o, i in shapes]


@pytest.mark.parametrize(("n_in", "width", "hidden", "n_out"), [
    (20, 64, 3, 6),   # the plus decoder
    (9, 32, 3, 1),    # the neural offset network
    (12, 32, 2, 3),   # the faithful decoder
    (1, 16, 1, 16),
    (33, 48, 2, 5),   # odd inputs past 32, three blocks
    (64, 64, 4, 16),
])
def test_values_equal_the_bf16_reference_for_every_served_shape(n_in, width, hidden, n_out):
    g = torch.Generator().manual_seed(n_in * 100 + width)
    layers = random_layers(g, n_in, width, hidden, n_out)
    bias = torch.randn(width, generator=g) * 0.1
    n = 1001  # not a multiple of any tile's rows
    x = torch.randn(n, n_in, generator=g)
    got = mlp_native.mlp_bf16(x, mlp_native.pack(layers), bias, width, hidden, n_out)
    want = bf16_reference(x, layers, bias)
    # the sums' order differs from torch's: a hidden activation near a bf16 rounding boundary can
    # round the other way (one bf16 step, 2^-8 relative) and carry a little into the output
    scale = float(want.abs().max())
    torch.testing.assert_close(got, want, atol=3e-3 * scale, rtol=0)
    assert float((got - want).abs().mean()) < 2e-4 * scale
    # and the bias matters: without it the numbers move
    unbiased = mlp_native.mlp_bf16(x, mlp_native.pack(layers), None, width, hidden, n_out)
    assert not torch.allclose(unbiased, got)


def test_strided_rows_out_views_partial_tiles_and_threads_give_the_same_rows():
    g = torch.Generator().manual_seed(5)
    layers = random_layers(g, 20, 64, 3, 6)
    packed = mlp_native.pack(layers)
    wide = torch.randn(37, 29, generator=g)  # x = columns 3..22 of a wider buffer
    x = wide[:, 3:23]
    want = mlp_native.mlp_bf16(x.contiguous(), packed, None, 64, 3, 6)
    out = torch.full((37, 10), 7.0)
    got = mlp_native.mlp_bf16(x, packed, None, 64, 3, 6, out=out[:, 2:8])
    assert torch.equal(got, want) and torch.equal(out[:, 2:8], want)
    assert bool((out[:, :2] == 7.0).all() and (out[:, 8:] == 7.0).all())  # nothing written beside
    for n in (1, 5, 6, 7):  # fewer rows than a tile, a tile, a tile and one
        assert torch.equal(mlp_native.mlp_bf16(x[:n].contiguous(), packed, None, 64, 3, 6), want[:n])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = mlp_native.mlp_bf16(x, packed, None, 64, 3, 6)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, want)
    assert mlp_native.mlp_bf16(x[:0], packed, None, 64, 3, 6).shape == (0, 6)


def test_unserved_shapes_are_refused_and_torch_mlp_keeps_onednn_for_them():
    assert not mlp_native.serves(9, 3, 128) and not mlp_native.serves(9, 17, 32)
    assert not mlp_native.serves(65, 3, 32) and mlp_native.serves(20, 6, 64)
    with pytest.raises(ValueError, match="not served"):
        mlp_native.mlp_bf16(torch.randn(4, 9), torch.zeros(1, dtype=torch.int16), None, 128, 2, 3)
    packed = mlp_native.pack(random_layers(torch.Generator().manual_seed(0), 9, 32, 3, 1))
    with pytest.raises(ValueError, match="do not fit"):  # weights of another MLP: refused, not read
        mlp_native.mlp_bf16(torch.randn(4, 20), packed, None, 32, 3, 1)
    with pytest.raises(ValueError, match="do not fit"):
        mlp_native.mlp_bf16(torch.randn(4, 9), packed, torch.zeros(64), 32, 3, 1)
    assert mlp_native.mlp_bf16(torch.randn(4, 9), packed, torch.zeros(32), 32, 3, 1).shape == (4, 1)
    torch.manual_seed(0)
    mlp = TorchMLP(9, 3, 128, 2)  # too wide for the kernel: oneDNN's bf16 layers
    x = torch.randn(300, 9)
    with torch.no_grad():
        want = mlp(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = mlp(x)
    torch.testing.assert_close(got, want, atol=3e-2 * float(want.abs().max()), rtol=0)


def test_torch_mlp_bf16_inference_runs_the_kernel_and_follows_weight_changes(monkeypatch):
    torch.manual_seed(2)
    mlp = TorchMLP(20, 6, 64, 3)
    x = torch.randn(500, 20)
    calls = []
    real = mlp_native.mlp_bf16
    monkeypatch.setattr(mlp_native, "mlp_bf16", lambda *a, **k: calls.append(1) or real(*a, **k))

    def by_hand() -> torch.Tensor:  # tiny-cuda-nn's layout: columns 20..31 read the constant 1
        mats = [m.detach() for m in mlp.matrices()]
        ones_columns = mats[0][:, 20:].sum(dim=1)  # an fp32 bias, as the MLP folds them
        return bf16_reference(x, [mats[0][:, :20], *mats[1:-1], mats[-1][:6]], ones_columns)

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        first = mlp(x)
        assert calls, "the bf16 inference path did not take the native kernel"
        want = by_hand()
        torch.testing.assert_close(first, want, atol=3e-3 * float(want.abs().max()), rtol=0)
        mlp.params.mul_(0.5)  # new weights: the packed copy must follow
        second = mlp(x)
        want = by_hand()
        torch.testing.assert_close(second, want, atol=3e-3 * float(want.abs().max()), rtol=0)
        assert not torch.allclose(first, second)
