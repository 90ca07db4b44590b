"""NeuMIP's training loss through the native kernel (``loss_kernel.c``): the loss and its gradient
in one pass on the CPU, the numbers of the torch formula in ``neumip.train.neumip_loss`` to about
1e-6 relative.

Why: torch runs the loss as a dozen passes over the batch forwards and as many backwards, about
1.5 ms of a training step of 65,536 queries (issue 22). :func:`native_loss` returns None where the
kernel cannot serve (no C compiler, ``NEUMIP_NATIVE=0``, a CPU without AVX-512, not float32 on the
CPU, a target that wants a gradient): the caller then keeps torch's formula.
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
    lib = load_or_none(Path(__file__).with_name("loss_kernel.c"), {
        "neumip_loss_forward": ([_p, _p, ctypes.c_int64, ctypes.c_float, _p, _p, ctypes.c_int], ctypes.c_int),
        "neumip_loss_supported": ([], ctypes.c_int),
    }, "the torch loss")
    return lib if lib is not None and lib.neumip_loss_supported() else None


class _NeumipLoss(torch.autograd.Function):
    """(pred, target, l1_weight) -> the loss, a 0-d float32 tensor; the gradient at pred is
    computed with the loss and kept (the backward scales it)."""

    @staticmethod
    def forward(ctx: Any, pred: torch.Tensor, target: torch.Tensor, l1_weight: float) -> torch.Tensor:
        p, y = pred.detach().contiguous(), target.detach().contiguous()
        grad = torch.empty_like(p)
        loss = ctypes.c_double()
        if _library().neumip_loss_forward(ptr(p), ptr(y), p.numel(), l1_weight, ptr(grad), ctypes.byref(loss),
                                          torch.get_num_threads()):
            raise MemoryError("native loss: no memory for the per-block sums")
        ctx.save_for_backward(grad)
        return torch.tensor(loss.value, dtype=torch.float32)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * grad_loss, None, None


def native_loss(pred: torch.Tensor, target: torch.Tensor, l1_weight: float) -> torch.Tensor | None:
    """The loss of ``neumip.train.neumip_loss`` over pred and target of the same shape, float32 on
    the CPU, with autograd to pred; None where the kernel does not serve."""
    served = (pred.device.type == "cpu" and target.device.type == "cpu" and pred.dtype == torch.float32
              and target.dtype == torch.float32 and pred.shape == target.shape and pred.numel() > 0
              and not target.requires_grad)
    if not served or _library() is None:
        return None
    return _NeumipLoss.apply(pred, target, float(l1_weight))
