"""The native twin of TorchMLP's bf16 paths (``mlp_kernel.c``): inference, every layer of a tile of
rows in one pass, and training (:class:`TrainMLP`: the forward pass keeping each layer's input,
the backward pass of a block of rows through every layer), with AVX512-BF16 dot products, for
float32 inputs on the CPU.

Why: under bf16 autocast oneDNN runs each layer over the whole chunk, so the activations make a
round trip through memory per layer and the thin layers (the decoder's 6 outputs, the offset
network's 9 inputs and single output) run far below the GEMM rate (issue 22). The numbers are
oneDNN's bf16 numbers (bf16 inputs, weights and hidden activations, fp32 sums) to the order of
summation, except the output, kept in fp32. :func:`native_mlp_available` is False where the
kernel cannot serve (no C compiler, ``NEUMIP_NATIVE=0``, a CPU without AVX512-BF16): TorchMLP
then keeps oneDNN.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from plumbing.native_build import data_pointer as ptr
from plumbing.native_build import load_or_none

#: What the kernel serves: widths of 16 to 64 in steps of 16, up to 64 inputs and 16 outputs.
WIDTHS = (16, 32, 48, 64)
MAX_IN = 64
MAX_OUT = 16

_p = ctypes.c_void_p
_i64 = ctypes.c_int64


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    lib = load_or_none(Path(__file__).with_name("mlp_kernel.c"), {
        "mlp_bf16_forward": ([_p, _i64, _i64, _i64, _p, _p, _i64, _i64, _i64, _p, _i64, ctypes.c_int],
                             ctypes.c_int),
        "mlp_bf16_supported": ([], ctypes.c_int),
        "mlp_bf16_train_forward": ([_p, _i64, _i64, _i64, _p, _p, _i64, _i64, _i64, _p, _i64, _p, _p,
                                    ctypes.c_int], ctypes.c_int),
        "mlp_bf16_train_backward": ([_p, _i64, _i64, _i64, _p, _i64, _i64, _i64, _p, _p, _p, _p, _p, _i64,
                                     ctypes.c_int], ctypes.c_int),
    }, "oneDNN's bf16 layers")
    return lib if lib is not None and lib.mlp_bf16_supported() else None


def native_mlp_available() -> bool:
    """Whether the kernel is built, loaded and has AVX512-BF16 (builds it on the first call)."""
    return _library() is not None


def cpu_bf16_autocast() -> bool:
    """Whether CPU autocast to bfloat16 is on: the state in which the bf16 kernels serve."""
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def shape_served(n_in: int, n_out: int, width: int, hidden_layers: int = 1) -> bool:
    """Whether the kernel's shapes include an MLP of these sizes (mlp_kernel.c's own check)."""
    return width in WIDTHS and 1 <= n_in <= MAX_IN and 1 <= n_out <= MAX_OUT and hidden_layers >= 1


def serves(n_in: int, n_out: int, width: int) -> bool:
    """Whether the kernel serves an MLP of these sizes (and is available)."""
    return shape_served(n_in, n_out, width) and native_mlp_available()


def pack_layer(w: torch.Tensor) -> torch.Tensor:
    """w (out, in) float -> the kernel's layout of one layer, int16 (bf16 bits): for each pair p of
    input columns and each output j (padded to a multiple of 16), (w[j, 2p], w[j, 2p + 1]),
    zeros in the padding."""
    out, k = w.shape
    padded = torch.zeros((out + 15) // 16 * 16, (k + 1) // 2 * 2, dtype=torch.bfloat16)
    padded[:out, :k] = w.to(torch.bfloat16)
    pairs = padded.view(padded.shape[0], -1, 2).transpose(0, 1)  # (in / 2, out, 2)
    return pairs.contiguous().view(torch.int16).reshape(-1)


def pack(layers: list[torch.Tensor]) -> torch.Tensor:
    """The MLP's [out, in] matrices in layer order -> one packed int16 vector for the kernel."""
    return torch.cat([pack_layer(w) for w in layers])


def mlp_bf16(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, width: int,
             hidden_layers: int, n_out: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """x (N, n_in) float32 (rows may be strided, columns contiguous) -> (N, n_out) float32 through
    the packed MLP (:func:`pack`), the first layer's ``bias`` (width,) float32 or None, ReLU after
    every hidden layer. ``out``: an (N, n_out) float32 view to fill (contiguous columns)."""
    lib = _library()
    if lib is None:
        raise RuntimeError("the native bf16 MLP kernel is not available here")
    n, n_in = x.shape
    if x.dtype != torch.float32 or x.device.type != "cpu" or (n > 1 and x.stride(1) != 1):
        x = x.float().contiguous()
    if out is None:
        out = torch.empty(n, n_out, dtype=torch.float32)
    if out.shape != (n, n_out) or out.dtype != torch.float32 or (n > 1 and out.stride(1) != 1):
        raise ValueError(f"mlp_bf16: out is {out.dtype} {tuple(out.shape)}, expected float32 ({n}, {n_out})")
    if not shape_served(n_in, n_out, width, hidden_layers):
        raise ValueError(f"mlp_bf16: an MLP {n_in} -> {width} x {hidden_layers} -> {n_out} is not served")
    # the kernel reads raw memory: the packed weights and the bias must be of these shapes
    pairs = (n_in + 1) // 2 * width + (hidden_layers - 1) * width // 2 * width + width // 2 * 16
    bias_ok = bias is None or bias.numel() == width
    if packed.dtype != torch.int16 or packed.numel() != 2 * pairs or not bias_ok:
        raise ValueError(f"mlp_bf16: packed weights {packed.dtype} {packed.numel()} / bias "
                         f"{None if bias is None else bias.numel()} do not fit an MLP {n_in} -> {width} x "
                         f"{hidden_layers} -> {n_out}")
    if bias is not None:
        bias = bias.float().contiguous()
    if n == 0:
        return out
    if lib.mlp_bf16_forward(ptr(x), n, x.stride(0), n_in, ptr(packed), ptr(bias), width, hidden_layers,
                            n_out, ptr(out), out.stride(0), torch.get_num_threads()):
        raise ValueError(f"mlp_bf16: the kernel refused {n_in} -> {width} x {hidden_layers} -> {n_out}")
    return out


def _check_layers(layers: list[torch.Tensor], bias: torch.Tensor | None) -> tuple[int, int, int, int]:
    """(n_in, width, hidden_layers, n_out) of [out, in] matrices in layer order, or ValueError."""
    width, n_in = layers[0].shape
    n_out = layers[-1].shape[0]
    hidden = len(layers) - 1
    chain = len(layers) >= 2 and layers[-1].shape[1] == width
    chain = chain and all(w.shape == (width, width) for w in layers[1:-1])
    bias_fits = bias is None or bias.shape == (width,)
    if not chain or not bias_fits or not shape_served(n_in, n_out, width, hidden):
        raise ValueError(f"native bf16 MLP training: layers {[tuple(w.shape) for w in layers]} with bias "
                         f"{None if bias is None else tuple(bias.shape)} are not an MLP the kernel serves")
    return n_in, width, hidden, n_out


class TrainMLP(torch.autograd.Function):
    """The MLP ``x -> layers`` (ReLU between them, ``bias`` added to the first) with autograd, in
    bf16 as CPU autocast computes it: inputs, weights, hidden activations and each layer's output
    gradient rounded to bf16, sums in fp32. The output and the weight gradients stay fp32 (autocast
    rounds both to bf16; these are the nearer to fp32). Called by TorchMLP in training under bf16
    autocast, where it replaces three oneDNN GEMMs per layer, the ReLU, its mask and the casts.

    ``TrainMLP.apply(x, bias, *layers)``: x (N, n_in) float; bias (width,) or None; layers the
    [out, in] float32 matrices in order -> (N, n_out) float32."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bias: torch.Tensor | None, *layers: torch.Tensor) -> torch.Tensor:
        lib = _library()
        if lib is None:
            raise RuntimeError("the native bf16 MLP kernel is not available here")
        n_in, width, hidden, n_out = _check_layers(list(layers), bias)
        if x.dim() != 2 or x.shape[1] != n_in:
            raise ValueError(f"native bf16 MLP training: input {tuple(x.shape)}, expected (N, {n_in})")
        xf = x.detach()
        if xf.dtype != torch.float32 or xf.device.type != "cpu" or (xf.shape[0] > 1 and xf.stride(1) != 1):
            xf = xf.float().contiguous()
        mats = [w.detach() for w in layers]
        n = xf.shape[0]
        out = torch.empty(n, n_out, dtype=torch.float32)
        act0 = torch.empty(n, (n_in + 15) // 16 * 16, dtype=torch.int16)
        hid = torch.empty(hidden, n, width, dtype=torch.int16)
        b = None if bias is None else bias.detach().float().contiguous()
        packed = pack(mats)
        if n and lib.mlp_bf16_train_forward(ptr(xf), n, xf.stride(0), n_in, ptr(packed), ptr(b), width,
                                            hidden, n_out, ptr(out), out.stride(0), ptr(act0), ptr(hid),
                                            torch.get_num_threads()):
            raise ValueError(f"native bf16 MLP training: the kernel refused {n_in} -> {width} x {hidden} "
                             f"-> {n_out}")
        ctx.save_for_backward(act0, hid)
        ctx.packed_t = pack([w.t() for w in mats])
        ctx.sizes = (n_in, width, hidden, n_out, x.dtype, bias is not None)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        act0, hid = ctx.saved_tensors
        n_in, width, hidden, n_out, x_dtype, has_bias = ctx.sizes
        n = act0.shape[0]
        g = grad.float()
        if n > 1 and g.stride(1) != 1:
            g = g.contiguous()
        sizes = [width * n_in] + [width * width] * (hidden - 1) + [n_out * width]
        grad_w = torch.empty(sum(sizes), dtype=torch.float32)
        grad_bias = torch.empty(width, dtype=torch.float32) if has_bias and ctx.needs_input_grad[1] else None
        grad_x = torch.empty(n, n_in, dtype=torch.float32) if ctx.needs_input_grad[0] else None
        if n == 0:
            grad_w.zero_()
            if grad_bias is not None:
                grad_bias.zero_()
        else:
            code = _library().mlp_bf16_train_backward(
                ptr(g), n, g.stride(0), n_in, ptr(ctx.packed_t), width, hidden, n_out, ptr(act0), ptr(hid),
                ptr(grad_w), ptr(grad_bias), ptr(grad_x), n_in, torch.get_num_threads())
            if code:
                raise RuntimeError("native bf16 MLP training: the backward kernel "
                                   + ("ran out of memory" if code == 2 else "refused its shapes"))
        shapes = [(width, n_in)] + [(width, width)] * (hidden - 1) + [(n_out, width)]
        grads = [part.view(shape) for part, shape in zip(grad_w.split(sizes), shapes, strict=True)]
        if grad_x is not None and x_dtype != torch.float32:
            grad_x = grad_x.to(x_dtype)
        return (grad_x, grad_bias, *grads)
