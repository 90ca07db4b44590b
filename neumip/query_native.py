"""NeuMIP's whole query in bfloat16 through one native kernel (``query_kernel.c``): the neural
offset, the latent lookup, the decoder's MLP and head, a block of 96 queries at a time, for the
models it serves on a CPU with AVX512-BF16. The same numbers, bit for bit, as the query stage by
stage through the separate kernels (the lookups', the MLP's, the head's), which its tests hold.

Why: stage by stage, each stage's output makes a round trip through memory, the lookups find
their textures evicted by the MLPs' activations, and torch's glue between the stages is a dozen
passes over each chunk (issue 22). :func:`fused_query` returns None where the kernel does not
serve (another model, fp32, autograd, training mode, no AVX512-BF16, no C compiler): the model
then runs its stages.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from neumip import mlp_native
from neumip.decoder import YUVLogDecoder
from neumip.mlp_backends import TorchMLP
from plumbing.native_build import data_pointer as ptr
from plumbing.native_build import load_or_none

if TYPE_CHECKING:
    from neumip.model import NeuMIP

_p = ctypes.c_void_p
_i64 = ctypes.c_int64
_f = ctypes.c_float


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    lib = load_or_none(Path(__file__).with_name("query_kernel.c"), {
        "neumip_query_bf16": ([_p, _p, _p, _p, _i64,  # uv, wi, wo, lod, n
                               _p, _i64, _i64, _i64, _p, _p, _i64, _i64, _f, _f,  # the offset
                               _p, _i64, _i64, _p, _p, _p,  # the latent pyramid
                               _p, _p, _i64, _i64, _i64, _p, ctypes.c_int,  # the decoder
                               _p, ctypes.c_int], ctypes.c_int),
        "neumip_query_supported": ([], ctypes.c_int),
    }, "the query stage by stage")
    return lib if lib is not None and lib.neumip_query_supported() else None


def served(model: NeuMIP) -> bool:
    """Whether the fused kernel serves this model's architecture (not yet its inputs' state)."""
    dec = model.decoder
    mlps = [dec.mlp] + ([model.offset.mlp] if model.offset is not None else [])
    return (type(dec) is YUVLogDecoder and dec.encoding == "xy" and model.lobe is None
            and model.horizon is None and model.grazing is None
            and all(type(m) is TorchMLP for m in mlps)
            and mlp_native.serves(dec.mlp.n_in, dec.mlp.n_out, dec.mlp.width)
            and (model.offset is None or (model.offset.mlp.n_out == 1 and mlp_native.serves(
                model.offset.mlp.n_in, 1, model.offset.mlp.width))))


def fused_query(model: NeuMIP, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, lod: torch.Tensor,
                sigma: float) -> torch.Tensor | None:
    """rgb (N, 3) float32 for uv (N, 2), wi, wo (N, 3), lod (N,) float32 on the CPU, as
    ``model._forward_batch`` computes it under bf16 autocast in eval mode without autograd; None
    where the kernel does not serve."""
    if (torch.is_grad_enabled() or model.training or not mlp_native.cpu_bf16_autocast()
            or uv.device.type != "cpu" or any(t.dtype != torch.float32 for t in (uv, wi, wo, lod))
            or not served(model) or _library() is None):
        return None
    n = uv.shape[0]
    if (uv.shape, wi.shape, wo.shape, lod.shape) != ((n, 2), (n, 3), (n, 3), (n,)):
        return None  # the kernel reads raw memory: the stages raise torch's own shape errors
    uv, wi, wo, lod = (t.contiguous() for t in (uv, wi, wo, lod))
    table, lay = model.pyramid.packed_levels(sigma)
    dec = model.decoder
    dec_packed, dec_bias = dec.mlp.native_weights()
    off = model.offset
    if off is not None:
        tex = off.blurred_texture(max(sigma, off.blur_min)).contiguous()
        off_packed, off_bias = off.mlp.native_weights()
        off_args = (ptr(tex), tex.shape[-1], tex.shape[1], tex.shape[2], ptr(off_packed), ptr(off_bias),
                    off.mlp.width, off.mlp.hidden_layers, float(off.depth_scale), float(off.min_cos))
    else:
        off_args = (None, 0, 0, 0, None, None, 0, 0, 0.0, 0.0)
    yuv = dec.yuv_to_rgb.detach().float().contiguous()
    rgb = torch.empty(n, 3, dtype=torch.float32)
    failed = _library().neumip_query_bf16(
        ptr(uv), ptr(wi), ptr(wo), ptr(lod), n, *off_args, ptr(table), table.shape[-1], lay.n_levels,
        ptr(lay.offs), ptr(lay.hs), ptr(lay.ws), ptr(dec_packed), ptr(dec_bias), dec.mlp.width,
        dec.mlp.hidden_layers, dec.mlp.n_out, ptr(yuv), int(dec.shadow_mask), ptr(rgb),
        torch.get_num_threads())
    return None if failed else rgb
