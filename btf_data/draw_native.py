"""A training batch's random queries through the native kernel (``draw_kernel.c``): image indices
in ascending order, uv and continuous lods, from one seed drawn from the sampler's generator.

Why: torch's generator and the lod mixture's passes took 1.5-2 ms of a training step of 65,536
queries (issue 22); the kernel draws them in parallel from a counter-based generator in 0.6 ms
(the official lod mixture) or 0.1 ms (power lods). The batch depends on the seed alone (not on
the thread count), and the seed on the sampler's torch generator, whose state the checkpoints
keep, so a resumed run draws the same batches. :func:`draw_queries` returns None where the kernel
cannot serve (no C compiler, ``NEUMIP_NATIVE=0``): the sampler then draws with torch (the same
distribution, other numbers).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from plumbing.native_build import data_pointer as ptr
from plumbing.native_build import load_or_none

#: lod_sampling names -> the kernel's codes.
LOD_SAMPLING = {"power": 0, "official": 1}


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    return load_or_none(Path(__file__).with_name("draw_kernel.c"), {
        "draw_queries": ([ctypes.c_uint64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_int,
                          ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int],
                         ctypes.c_int),
    }, "torch's generator")


def draw_queries(generator: torch.Generator, n: int, n_images: int, max_lod: float, lod_sampling: str,
                 lod_power: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(index (n,) int64 in [0, n_images) ascending, lod (n,) float32 in [0, max_lod], uv (n, 2)
    float32 in [0, 1)) on the CPU, the lods as ``SamplerConfig.lod_sampling`` says; one seed is
    drawn from ``generator``. None where the kernel does not serve."""
    lib = _library()
    if lib is None or lod_sampling not in LOD_SAMPLING:
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    index = torch.empty(n, dtype=torch.int64)
    lod = torch.empty(n, dtype=torch.float32)
    uv = torch.empty(n, 2, dtype=torch.float32)
    if lib.draw_queries(seed, n, n_images, max_lod, LOD_SAMPLING[lod_sampling], lod_power, ptr(index),
                        ptr(lod), ptr(uv), torch.get_num_threads()):
        raise MemoryError("native batch draw: no memory for the per-thread counts")
    return index, lod, uv
