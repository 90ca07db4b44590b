"""The paper's decoder head through the native kernel (``decoder_kernel.c``): rgb from the MLP's
output in one pass per query on the CPU, the numbers of ``YUVLogDecoder.head`` to about 1e-6
relative (its exp is Cephes' polynomial, torch's is SLEEF's); in eval mode without autograd
(:func:`yuv_log_head`) and in training (:class:`TrainHead`, forward and backward).

Why: torch runs the head as six passes over strided (N, 3) column views of the (N, 6) output,
none of them vectorised, and as many again backwards: about 20 ms of a 1080p frame, and 3-4 ms of
a training step of 65,536 queries (issue 22). Both return None / are not served where the kernel
cannot serve (no C compiler, ``NEUMIP_NATIVE=0``, a CPU without AVX-512, not the CPU): the
decoder then keeps its torch head.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from plumbing.native_build import data_pointer as ptr
from plumbing.native_build import load_or_none

_p = ctypes.c_void_p


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    return load_or_none(Path(__file__).with_name("decoder_kernel.c"), {
        "yuv_log_head": ([_p, ctypes.c_int64, _p, ctypes.c_int, ctypes.c_int, _p, ctypes.c_int],
                         ctypes.c_int),
        "yuv_log_head_backward": ([_p, ctypes.c_int64, _p, _p, ctypes.c_int, _p, ctypes.c_int], ctypes.c_int),
        "yuv_log_head_supported": ([], ctypes.c_int),
    }, "the torch decoder head")


def head_kernel_available() -> bool:
    """Whether the kernel is built, loaded and has AVX-512 (builds it on the first call)."""
    lib = _library()
    return lib is not None and bool(lib.yuv_log_head_supported())


def yuv_log_head(t: torch.Tensor, yuv_to_rgb: torch.Tensor, shadow_mask: bool) -> torch.Tensor | None:
    """t (N, 6) float32 (N, 3 without the shadow mask), yuv_to_rgb (3, 3) -> rgb (N, 3) float32
    >= 0: max(expm1(t[:, :3] @ M^T) * (0.1 + sigmoid(t[:, 3:6])), 0); None where the kernel does
    not serve (the caller keeps torch)."""
    if t.requires_grad or not head_served(t, shadow_mask):
        return None
    return _head(t.contiguous(), yuv_to_rgb, shadow_mask, clamp=True)


def head_served(t: torch.Tensor, shadow_mask: bool) -> bool:
    """Whether the kernel serves the head on the MLP output t: float32 (N, 6) (N, 3 without the
    shadow mask) on the CPU, and the kernel available."""
    return (t.device.type == "cpu" and t.dtype == torch.float32 and t.ndim == 2
            and t.shape[1] == (6 if shadow_mask else 3) and head_kernel_available())


def _head(t: torch.Tensor, yuv_to_rgb: torch.Tensor, shadow_mask: bool, clamp: bool) -> torch.Tensor:
    """rgb (N, 3) from t (N, 6 or 3) contiguous, served (:func:`head_served`)."""
    rgb = torch.empty(t.shape[0], 3, dtype=torch.float32)
    m = yuv_to_rgb.detach().to(torch.float32).contiguous()
    _library().yuv_log_head(ptr(t), t.shape[0], ptr(m), int(shadow_mask), int(clamp), ptr(rgb),
                            torch.get_num_threads())
    return rgb


class TrainHead(torch.autograd.Function):
    """The training head rgb = expm1(M t[:, :3]) * (0.1 + sigmoid(t[:, 3:6])) (no clamp, as
    ``YUVLogDecoder.head`` in training) with autograd to t, one native pass each way; the backward
    recomputes the head's intermediates from t instead of keeping them (they cost less to
    recompute than to write and read back). In float32 also under bf16 autocast (where torch's
    head would round the matrix product to bf16), as the eval head.

    ``TrainHead.apply(t, yuv_to_rgb, shadow_mask)``: t (N, 6) float32 (N, 3 without the shadow
    mask), served (:func:`head_served`) -> rgb (N, 3) float32."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, yuv_to_rgb: torch.Tensor, shadow_mask: bool) -> torch.Tensor:
        t = t.detach().contiguous()
        ctx.save_for_backward(t, yuv_to_rgb)
        ctx.shadow_mask = shadow_mask
        return _head(t, yuv_to_rgb, shadow_mask, clamp=False)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        t, yuv_to_rgb = ctx.saved_tensors
        g = grad.float().contiguous()
        grad_t = torch.empty_like(t)
        m = yuv_to_rgb.detach().to(torch.float32).contiguous()
        _library().yuv_log_head_backward(ptr(t), t.shape[0], ptr(g), ptr(m), int(ctx.shadow_mask),
                                         ptr(grad_t), torch.get_num_threads())
        return grad_t, None, None
