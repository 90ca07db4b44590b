"""The native twin of btf_data/lookup.py's trilinear lookup (``lookup_kernel.c``), forwards and
backwards, for float32 textures on the CPU.

Why: on the CPU the torch paths spend most of a query in ``grid_sample`` (the atlas, 4.2 M
queries/s for 16 channels on 2 cores) and most of a training step's sampler in int64 index
arithmetic and gathers; the kernel reads the 8 texels of a query in one pass with no
intermediate tensors (issue 22). Same contract and texel convention as lookup.py; its tests hold
it to the gather path, values and gradients. :func:`native_available` is False where the kernel
cannot be built (no C compiler, ``NEUMIP_NATIVE=0``): lookup.py then keeps its torch paths.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from plumbing.native_build import data_pointer as _ptr
from plumbing.native_build import load_or_none

#: The kernel's most channels per texel (its per-query stack arrays).
MAX_CHANNELS = 64

_p = ctypes.c_void_p
_i64 = ctypes.c_int64


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    return load_or_none(Path(__file__).with_name("lookup_kernel.c"), {
        "trilinear_forward": ([_p, _i64, _i64, _p, _p, _p, _p, _p, _p, _i64, _p, _i64, ctypes.c_int], None),
        "trilinear_backward": ([_p, _i64, _i64, _i64, _p, _p, _p, _p, _p, _p, _i64, _p, _i64, _p, _p, _p,
                                ctypes.c_int], ctypes.c_int),
    }, "torch lookups")


def native_available() -> bool:
    """Whether the kernel is built and loaded (builds it on the first call)."""
    return _library() is not None


def supports(table: torch.Tensor, uv: torch.Tensor) -> bool:
    """Whether the kernel serves this lookup: float32 CPU tensors, at most MAX_CHANNELS channels,
    the kernel built."""
    return (table.device.type == "cpu" and uv.device.type == "cpu" and table.dtype == torch.float32
            and uv.dtype == torch.float32 and table.shape[-1] <= MAX_CHANNELS and native_available())


class Layout:
    """The pyramid's level offsets (rows), heights and widths, int64 on the CPU."""

    def __init__(self, offs: torch.Tensor, hs: torch.Tensor, ws: torch.Tensor) -> None:
        self.offs, self.hs, self.ws = (t.to(torch.int64).contiguous() for t in (offs, hs, ws))
        self.n_levels = int(self.offs.numel())

    def textures(self, rows: int) -> int:
        """Textures per level of a table of ``rows`` rows (level 0's rows over its texels)."""
        end = int(self.offs[1]) if self.n_levels > 1 else rows
        return (end - int(self.offs[0])) // int(self.hs[0] * self.ws[0])


def layout_of(levels: list[torch.Tensor]) -> Layout:
    """Layout of levels (B, H_k, W_k, C) packed in order (lookup.py's ``pack_levels``)."""
    sizes = [lv.numel() // lv.shape[-1] for lv in levels]
    offs = torch.tensor([0] + sizes[:-1], dtype=torch.int64).cumsum(0)
    return Layout(offs, torch.tensor([lv.shape[1] for lv in levels]),
                  torch.tensor([lv.shape[2] for lv in levels]))


def _forward(table: torch.Tensor, lay: Layout, uv: torch.Tensor, lod: torch.Tensor | None,
             index: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
    n, c = uv.shape[0], table.shape[-1]
    if out is None:
        out = torch.empty(n, c, dtype=torch.float32)
    _library().trilinear_forward(_ptr(table), c, lay.n_levels, _ptr(lay.offs), _ptr(lay.hs), _ptr(lay.ws),
                                 _ptr(uv), _ptr(lod), _ptr(index), n, _ptr(out), out.stride(0),
                                 torch.get_num_threads())
    return out


class _Trilinear(torch.autograd.Function):
    """(table (rows, C), uv (N, 2), lod (N,) or None) -> (N, C); gradients to all three."""

    @staticmethod
    def forward(ctx, table, uv, lod, lay, index):  # type: ignore[override]
        ctx.save_for_backward(table, uv, lod, index)
        ctx.lay = lay
        return _forward(table, lay, uv, lod, index)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        table, uv, lod, index = ctx.saved_tensors
        lay = ctx.lay
        if grad.dtype != torch.float32 or grad.stride(1) != 1:  # rows may be strided (a slice of
            grad = grad.float().contiguous()                     # the decoder's input gradient)
        n, c = uv.shape[0], table.shape[-1]
        g_table = torch.empty_like(table)
        g_uv = torch.empty(n, 2) if ctx.needs_input_grad[1] else None
        g_lod = torch.empty(n) if lod is not None and ctx.needs_input_grad[2] else None
        failed = _library().trilinear_backward(
            _ptr(table), table.shape[0], c, lay.n_levels, _ptr(lay.offs), _ptr(lay.hs), _ptr(lay.ws),
            _ptr(uv), _ptr(lod), _ptr(index), n, _ptr(grad), grad.stride(0), _ptr(g_table), _ptr(g_uv),
            _ptr(g_lod), torch.get_num_threads())
        if failed:
            raise MemoryError("native lookup backward: no memory for the per-thread gradient copies")
        return g_table, g_uv, g_lod, None, None


def trilinear_table(table: torch.Tensor, lay: Layout, uv: torch.Tensor, lod: torch.Tensor | None,
                    index: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Trilinear lookups in a packed table (rows, C) of layout ``lay``: uv (N, 2), lod (N,) or
    None (level 0, bilinear), index (N,) int64 or None (texture 0) -> (N, C) float32,
    differentiable in table, uv and lod. ``out``: an (N, C) float32 view to fill and return (e.g.
    the first columns of an MLP's input, so that no concatenation copies the lookups again):
    written by the kernel directly without autograd, copied into with it."""
    n = uv.shape[0]
    # The kernel reads raw memory: shapes and indices are checked here, where torch would check them.
    shapes = [tuple(t.shape) if t is not None else None for t in (uv, lod, index)]
    if shapes[0] != (n, 2) or shapes[1] not in (None, (n,)) or shapes[2] not in (None, (n,)):
        raise ValueError(f"lookup: uv {shapes[0]}, lod {shapes[1]}, index {shapes[2]}: "
                         "expected (N, 2), (N,), (N,)")
    uv = uv.contiguous()
    lod = None if lod is None else lod.to(torch.float32).contiguous()
    index = None if index is None else index.to(torch.int64).contiguous()
    if index is not None and n:
        b, lo, hi = lay.textures(table.shape[0]), int(index.min()), int(index.max())
        if lo < 0 or hi >= b:
            raise IndexError(f"lookup: texture index {lo if lo < 0 else hi} is out of range for {b} textures")
    if out is not None:
        if out.shape != (n, table.shape[-1]) or out.dtype != torch.float32:
            raise ValueError(f"lookup: out is {out.dtype} {tuple(out.shape)}, expected float32 "
                             f"({n}, {table.shape[-1]})")
        graph = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (table, uv, lod))
        if not graph and out.stride(1) == 1:
            return _forward(table.contiguous(), lay, uv, lod, index, out)
        return out.copy_(_Trilinear.apply(table.contiguous(), uv, lod, lay, index))
    return _Trilinear.apply(table.contiguous(), uv, lod, lay, index)


def trilinear_levels(levels: list[torch.Tensor], uv: torch.Tensor, lod: torch.Tensor | None,
                     index: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """The same for levels (B, H_k, W_k, C), packed here (differentiably: gradients reach each
    level through the concatenation)."""
    c = levels[0].shape[-1]
    table = levels[0].reshape(-1, c) if len(levels) == 1 else torch.cat([lv.reshape(-1, c) for lv in levels])
    return trilinear_table(table, layout_of(levels), uv, lod, index, out)
