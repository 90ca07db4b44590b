"""The paper's decoder head through the native kernel (``decoder_kernel.c``): rgb from the MLP's
output in one pass per query on the CPU, the numbers of ``YUVLogDecoder.head`` in eval mode to
about 1e-6 relative (its exp is Cephes' polynomial, torch's is SLEEF's).

Why: torch runs the head as six passes over strided (N, 3) column views of the (N, 6) output,
none of them vectorised: about 20 ms of a 1080p frame (issue 22). :func:`yuv_log_head` returns
None where the kernel cannot serve (no C compiler, ``NEUMIP_NATIVE=0``, not the CPU, autograd
wanted): the decoder then keeps its torch head.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from plumbing.native_build import data_pointer as ptr
from plumbing.native_build import load_or_none

_p = ctypes.c_void_p


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    return load_or_none(Path(__file__).with_name("decoder_kernel.c"), {
        "yuv_log_head": ([_p, ctypes.c_int64, _p, ctypes.c_int, _p, ctypes.c_int], ctypes.c_int),
    }, "the torch decoder head")


def yuv_log_head(t: torch.Tensor, yuv_to_rgb: torch.Tensor, shadow_mask: bool) -> torch.Tensor | None:
    """t (N, 6) float32 (N, 3 without the shadow mask), yuv_to_rgb (3, 3) -> rgb (N, 3) float32
    >= 0: max(expm1(t[:, :3] @ M^T) * (0.1 + sigmoid(t[:, 3:6])), 0); None where the kernel does
    not serve (the caller keeps torch)."""
    if (t.device.type != "cpu" or t.dtype != torch.float32 or t.ndim != 2
            or t.shape[1] != (6 if shadow_mask else 3) or t.requires_grad or _library() is None):
        return None
    t = t.contiguous()
    rgb = torch.empty(t.shape[0], 3, dtype=torch.float32)
    m = yuv_to_rgb.detach().to(torch.float32).contiguous()
    lib = _library()
    if lib.yuv_log_head(ptr(t), t.shape[0], ptr(m), int(shadow_mask), ptr(rgb), torch.get_num_threads()):
        return None  # built without AVX-512
    return rgb
