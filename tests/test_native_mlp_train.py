"""The native bf16 MLP's training pass (neumip/mlp_kernel.c, ``mlp_native.TrainMLP``) against two
other implementations: autograd of the same network in float64 on values rounded to bf16 where
the kernel rounds them (inputs, weights, hidden activations, each layer's output gradient), which
it must match to float32 summation order; and torch's own bf16 autocast, whose distance to the
unrounded float64 network it must not exceed by much. Then TorchMLP taking it in bf16 training,
with its gradients mapped onto tiny-cuda-nn's flat layout (the constant-1 columns)."""

from __future__ import annotations

import pytest
import torch

from neumip import mlp_native
from neumip.mlp_backends import TorchMLP
from tests.conftest import require_cpu_features
from tests.test_native_mlp import MLP_KERNEL, random_layers


@pytest.fixture(autouse=True)
def kernel():
    require_cpu_features(MLP_KERNEL, mlp_native.native_mlp_available(), "AVX512-BF16",
                         "torch's bf16 autocast training")


class _Round(torch.autograd.Function):
    """Rounds to bf16 forward and backward: where the kernel rounds an activation, its gradient
    is rounded too."""

    @staticmethod
    def forward(ctx, t):  # type: ignore[override]
        return t.to(torch.bfloat16).double()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g.to(torch.bfloat16).double()


def rounded_reference(x: torch.Tensor, bias: torch.Tensor | None, layers: list[torch.Tensor],
                      grad: torch.Tensor) -> list[torch.Tensor | None]:
    """(output, d x, d bias, d layers...) of the network in float64 autograd with bf16 rounding
    at the kernel's points (the ReLU's derivative from its input, whose sign the kernel's rounded
    output keeps)."""
    xs = x.detach().double().requires_grad_()
    bs = None if bias is None else bias.detach().double().requires_grad_()
    ws = [w.detach().double().requires_grad_() for w in layers]
    h = _rounded_straight_through(xs)  # the input's gradient stays fp32 in the kernel
    for i, w in enumerate(ws):
        h = h @ _rounded_straight_through(w).t()
        if i == 0 and bs is not None:
            h = h + bs
        if i < len(ws) - 1:
            h = _Round.apply(torch.relu(h))
    out = h
    wrt = [xs, *([bs] if bs is not None else []), *ws]
    grads = list(torch.autograd.grad(out, wrt, _Round.apply(grad.double())))
    if bs is None:
        grads.insert(1, None)
    return [out, *grads]


def _rounded_straight_through(w: torch.Tensor) -> torch.Tensor:
    """w rounded to bf16, its gradient passed straight through (the kernel rounds the weights and
    the input, but its weight and input gradients are fp32 sums, not rounded)."""
    return w + (w.to(torch.bfloat16).double() - w).detach()


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).abs().max() / want.abs().max())


SHAPES = [
    (20, 64, 3, 6),   # the plus decoder
    (9, 32, 2, 1),    # the neural offset network
    (12, 32, 2, 3),   # the faithful decoder
    (5, 16, 1, 3),
    (33, 48, 2, 16),  # inputs past 32, three blocks, 16 outputs
    (64, 64, 4, 16),
]


@pytest.mark.parametrize(("n_in", "width", "hidden", "n_out"), SHAPES)
@pytest.mark.parametrize("n", [1001, 47])  # a partial last block of rows; fewer rows than one block
def test_values_and_gradients_equal_the_rounded_reference(n_in, width, hidden, n_out, n):
    g = torch.Generator().manual_seed(n_in * 100 + width + n)
    layers = [w.requires_grad_() for w in random_layers(g, n_in, width, hidden, n_out)]
    bias = (torch.randn(width, generator=g) * 0.1).requires_grad_()
    x = torch.randn(n, n_in, generator=g).requires_grad_()
    out = mlp_native.TrainMLP.apply(x, bias, *layers)
    grad = torch.randn(n, n_out, generator=g)
    got = torch.autograd.grad(out, [x, bias, *layers], grad)
    want = rounded_reference(x, bias, layers, grad)
    assert out.dtype == torch.float32 and out.shape == (n, n_out)
    assert relative_error(out, want[0]) < 1e-3
    # float32 sums against float64: a bf16 rounding can flip near a tie and carry through the layers
    names = ["x", "bias"] + [f"layer {i}" for i in range(len(layers))]
    for name, a, b in zip(names, got, want[1:], strict=True):
        assert a.shape == b.shape, name
        assert relative_error(a, b) < 2e-3, name


@pytest.mark.parametrize(("n_in", "width", "hidden", "n_out"), SHAPES[:2])
def test_no_farther_from_float64_than_torch_bf16_autocast(n_in, width, hidden, n_out):
    """The second implementation: torch's autocast of the same layers, both against the float64
    network without any rounding."""
    g = torch.Generator().manual_seed(7)
    layers = [w.requires_grad_() for w in random_layers(g, n_in, width, hidden, n_out)]
    bias = (torch.randn(width, generator=g) * 0.1).requires_grad_()
    x = torch.randn(3000, n_in, generator=g).requires_grad_()
    grad = torch.randn(3000, n_out, generator=g)
    params = [x, bias, *layers]

    def network(autocast_on: bool, cast: torch.dtype) -> list[torch.Tensor]:  # outputs, gradients
        ps = [p.detach().to(cast).requires_grad_() for p in params]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_on):
            h = torch.relu(torch.addmm(ps[1], ps[0], ps[2].t()))
            for w in ps[3:-1]:
                h = torch.relu(h @ w.t())
            h = h @ ps[-1].t()
        return [h, *torch.autograd.grad(h, ps, grad.to(cast) if not autocast_on else grad)]

    exact = network(False, torch.float64)
    autocast = network(True, torch.float32)
    out = mlp_native.TrainMLP.apply(x, bias, *layers)
    native = [out, *torch.autograd.grad(out, params, grad)]
    for i, (a, b, e) in enumerate(zip(native, autocast, exact, strict=True)):
        assert relative_error(a, e) <= 1.5 * relative_error(b, e) + 2e-3, f"tensor {i}"


def test_without_bias_without_input_gradient_and_deterministic():
    g = torch.Generator().manual_seed(3)
    layers = [w.requires_grad_() for w in random_layers(g, 9, 32, 2, 1)]
    x = torch.randn(500, 9, generator=g)  # no gradient asked for x
    grad = torch.randn(500, 1, generator=g)
    out = mlp_native.TrainMLP.apply(x, None, *layers)
    got = torch.autograd.grad(out, layers, grad)
    want = rounded_reference(x, None, layers, grad)
    for a, b in zip(got, want[3:], strict=True):
        assert relative_error(a, b) < 2e-3
    again = torch.autograd.grad(mlp_native.TrainMLP.apply(x, None, *layers), layers, grad)
    assert all(torch.equal(a, b) for a, b in zip(got, again, strict=True))


def test_one_and_two_threads_agree():
    g = torch.Generator().manual_seed(4)
    layers = [w.requires_grad_() for w in random_layers(g, 20, 64, 3, 6)]
    x = torch.randn(2000, 20, generator=g).requires_grad_()
    grad = torch.randn(2000, 6, generator=g)
    threads = torch.get_num_threads()
    results = []
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            out = mlp_native.TrainMLP.apply(x, None, *layers)
            results.append([out, *torch.autograd.grad(out, [x, *layers], grad)])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results, strict=True):  # sums over rows split differently: float32 order only
        torch.testing.assert_close(a, b, atol=1e-5 * float(b.detach().abs().max()), rtol=0)


def test_refuses_what_it_does_not_serve():
    g = torch.Generator().manual_seed(5)
    with pytest.raises(ValueError, match="not an MLP the kernel serves"):
        mlp_native.TrainMLP.apply(torch.randn(4, 9), None, *random_layers(g, 9, 128, 2, 1))
    with pytest.raises(ValueError, match="not an MLP the kernel serves"):  # layers that do not chain
        mlp_native.TrainMLP.apply(torch.randn(4, 9), None, torch.randn(32, 9), torch.randn(1, 16))
    with pytest.raises(ValueError, match=r"input \(4, 8\), expected \(N, 9\)"):
        mlp_native.TrainMLP.apply(torch.randn(4, 8), None, *random_layers(g, 9, 32, 2, 1))
    layers = [w.requires_grad_() for w in random_layers(g, 9, 32, 2, 1)]
    out = mlp_native.TrainMLP.apply(torch.randn(0, 9), None, *layers)
    assert out.shape == (0, 1)


def test_torch_mlp_trains_through_the_kernel_onto_the_flat_layout(monkeypatch):
    """TorchMLP under bf16 autocast with autograd takes the kernel, and its flat parameters'
    gradient is the reference's mapped by hand: the constant-1 columns each get the bias's
    gradient, the padded output rows none."""
    torch.manual_seed(6)
    mlp = TorchMLP(20, 6, 64, 3)
    x = torch.randn(700, 20, requires_grad=True)
    grad = torch.randn(700, 6)
    calls = []
    real = mlp_native.TrainMLP.apply
    monkeypatch.setattr(mlp_native.TrainMLP, "apply", lambda *a: calls.append(1) or real(*a))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mlp(x)
    assert calls, "bf16 training did not take the native kernel"
    out.backward(grad)
    mats = [m.detach() for m in mlp.matrices()]
    w_in, ones = mats[0][:, :20], mats[0][:, 20:]
    want = rounded_reference(x, ones.sum(dim=1), [w_in, *mats[1:-1], mats[-1][:6]], grad)
    assert relative_error(out, want[0]) < 1e-3
    assert relative_error(x.grad, want[1]) < 2e-3
    g_mats = _views(mlp, mlp.params.grad)
    assert relative_error(g_mats[0][:, :20], want[3]) < 2e-3
    for k in range(20, 32):  # each constant-1 column: d loss / d w = sum of the unit's gradients
        assert relative_error(g_mats[0][:, k], want[2]) < 2e-3
    for a, b in zip(g_mats[1:-1], want[4:-1], strict=True):
        assert relative_error(a, b) < 2e-3
    assert relative_error(g_mats[-1][:6], want[-1]) < 2e-3
    assert torch.count_nonzero(g_mats[-1][6:]) == 0


def _views(mlp: TorchMLP, flat: torch.Tensor) -> list[torch.Tensor]:
    """The [out, in] blocks of a flat vector in tiny-cuda-nn's layout (as FlatMLP.matrices)."""
    out, start = [], 0
    for rows, cols in mlp.shapes:
        out.append(flat[start : start + rows * cols].view(rows, cols))
        start += rows * cols
    return out
