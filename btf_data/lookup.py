"""Bilinear and trilinear lookups in channels-last texture pyramids with wrap-around.

One lookup serves everything that reads a texture at continuous coordinates: the ground-truth
sampler, the synthetic BTF renderer (heights and maps at hit points), the NeuMIP latent pyramid
and the renderer's materials. Texel (i, j) of a level of resolution (H, W) has its centre at
uv = ((j + 0.5) / W, (i + 0.5) / H); uv has period 1.

Two implementations with one contract (values and gradients agree to float32 round-off, tested):

- the fast path, for a single texture per level (``index`` None: latent pyramids, SVBRDF
  pyramids, map lookups): each level is padded by one texel of wrap and the levels are laid side
  by side in one atlas, so that a whole batch, both levels of every query included, is one
  ``torch.nn.functional.grid_sample`` call (a vectorised kernel, forwards and backwards);
- the gather path (``lookup_bilinear_gather`` / ``lookup_trilinear_gather``), which packs the
  levels into one table and gathers the 8 texels of each query with int64 index arithmetic. It
  serves batches of textures (``index``: the ground-truth sampler, the measured BTF) and is the
  reference twin of the fast path in the tests;
- on the CPU, for float32 textures, both give way to the native kernel (btf_data/lookup_native.py:
  one pass per query, forwards and backwards, 6-10x the torch paths) when it could be built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from btf_data import lookup_native


@dataclass
class PackedLevels:
    """Levels (B, H_k, W_k, C) flattened into one table; pack once when the levels are reused."""

    table: torch.Tensor  # (sum_k B * H_k * W_k, C)
    offsets: torch.Tensor  # (L,) int64: first row of each level
    heights: torch.Tensor  # (L,) int64
    widths: torch.Tensor  # (L,) int64

    @property
    def n_levels(self) -> int:
        return int(self.offsets.numel())


def pack_levels(levels: Sequence[torch.Tensor]) -> PackedLevels:
    """Pack a pyramid of channels-last levels (B, H_k, W_k, C)."""
    c = levels[0].shape[-1]
    device = levels[0].device
    sizes = [lv.numel() // c for lv in levels]
    offsets = torch.tensor([0] + sizes[:-1], device=device).cumsum(0)
    return PackedLevels(
        table=torch.cat([lv.reshape(-1, c) for lv in levels]),
        offsets=offsets,
        heights=torch.tensor([lv.shape[1] for lv in levels], device=device),
        widths=torch.tensor([lv.shape[2] for lv in levels], device=device),
    )


def _corner_weights(uv: torch.Tensor, h: torch.Tensor, w: torch.Tensor):
    """Integer corners (x0, x1, y0, y1), wrapped, and fractions (tx, ty) of bilinear lookups."""
    x = uv[:, 0] * w - 0.5
    y = uv[:, 1] * h - 0.5
    x0f, y0f = torch.floor(x), torch.floor(y)
    tx, ty = (x - x0f).unsqueeze(1), (y - y0f).unsqueeze(1)
    x0 = torch.remainder(x0f.long(), w)
    y0 = torch.remainder(y0f.long(), h)
    return x0, torch.remainder(x0 + 1, w), y0, torch.remainder(y0 + 1, h), tx, ty


def _level_pair(lod: torch.Tensor, n_levels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two levels (lo, hi) (N,) int64 around each lod, clamped to [0, L - 1], and the weight
    of hi, (N, 1)."""
    lod = lod.clamp(0.0, float(n_levels - 1))
    lo = torch.floor(lod).long().clamp(max=n_levels - 1)
    hi = (lo + 1).clamp(max=n_levels - 1)
    return lo, hi, (lod - lo.to(lod.dtype)).unsqueeze(1)


def _blend(t: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """t: (4, N, C) corners (00, 01, 10, 11) -> (N, C)."""
    top = t[0] + (t[1] - t[0]) * tx
    bottom = t[2] + (t[3] - t[2]) * tx
    return top + (bottom - top) * ty


def lookup_bilinear_gather(
    texture: torch.Tensor, uv: torch.Tensor, index: torch.Tensor | None = None
) -> torch.Tensor:
    """Bilinear, wrapped lookup.

    texture: (B, H, W, C); uv: (N, 2) any real values (period 1); index: (N,) int64 in [0, B),
    which texture of the batch each query reads (None: all read texture 0).
    Returns (N, C). Differentiable in ``texture`` and ``uv``.
    """
    b, h, w, c = texture.shape
    x0, x1, y0, y1, tx, ty = _corner_weights(uv, torch.tensor(h), torch.tensor(w))
    base = 0 if index is None else index.long() * (h * w)
    rows = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1]) + base
    return _blend(texture.reshape(b * h * w, c)[rows], tx, ty)


def lookup_trilinear_gather(
    levels: Sequence[torch.Tensor] | PackedLevels,
    uv: torch.Tensor,
    lod: torch.Tensor,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Trilinear lookup: bilinear inside the two levels around ``lod``, linear between them.

    levels: L tensors (B, H_k, W_k, C), level 0 finest, or their :func:`pack_levels`; uv: (N, 2);
    lod: (N,) continuous, clamped to [0, L - 1]; index: (N,) or None as in
    :func:`lookup_bilinear`. Returns (N, C). At integer lod and texel centres it returns the
    texel values exactly.
    """
    p = levels if isinstance(levels, PackedLevels) else pack_levels(levels)
    n_levels = p.n_levels
    lo, hi, frac = _level_pair(lod, n_levels)
    level = torch.cat([lo, hi])
    uv2 = uv.repeat(2, 1)
    h, w = p.heights[level], p.widths[level]
    x0, x1, y0, y1, tx, ty = _corner_weights(uv2, h, w)
    base = p.offsets[level]
    if index is not None:
        base = base + index.long().repeat(2) * h * w
    rows = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1]) + base
    val = _blend(p.table[rows], tx, ty)
    n = uv.shape[0]
    v_lo, v_hi = val[:n], val[n:]
    return v_lo + (v_hi - v_lo) * frac


@dataclass
class Atlas:
    """Levels (B, H_k, W_k, C), each padded by one texel of wrap, side by side in one
    (B, C, max H + 2, sum (W_k + 2)) image per texture; build once with :func:`pack_atlas` when
    reused. B is 1 for the single-texture fast path, the number of images for
    :func:`lookup_trilinear_coherent`."""

    image: torch.Tensor
    x0: torch.Tensor  # (L,) float: left edge of each padded level in the atlas
    heights: torch.Tensor  # (L,) float
    widths: torch.Tensor  # (L,) float

    @property
    def n_levels(self) -> int:
        return int(self.x0.numel())


def _atlas_layout(levels: Sequence[torch.Tensor]) -> tuple[int, list[int]]:
    """(atlas height, left edge of each padded level) of levels (B, H_k, W_k, C)."""
    x0, x = [], 0
    for lv in levels:
        x0.append(x)
        x += lv.shape[2] + 2
    return max(lv.shape[1] for lv in levels) + 2, x0


class _PackAtlas(torch.autograd.Function):
    """The atlas image of levels (B, H_k, W_k, C) -> (B, C, max H + 2, sum (W_k + 2)); its
    backward folds each level's wrap border back onto the texels it copies (a handful of slice
    adds per level, where autograd through pad/cat allocates and zero-fills a tensor per node)."""

    @staticmethod
    def forward(ctx, *levels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        hmax, x0 = _atlas_layout(levels)
        b, c = levels[0].shape[0], levels[0].shape[3]
        img = levels[0].new_zeros(b, c, hmax, x0[-1] + levels[-1].shape[2] + 2)
        for lv, x in zip(levels, x0, strict=True):
            h, w = lv.shape[1], lv.shape[2]
            img[:, :, : h + 2, x : x + w + 2] = torch.nn.functional.pad(lv.permute(0, 3, 1, 2), (1, 1, 1, 1),
                                                                       mode="circular")
        ctx.shapes = [lv.shape for lv in levels]
        ctx.x0 = x0
        return img

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        out = []
        for (_, h, w, _), x in zip(ctx.shapes, ctx.x0, strict=True):
            g = grad[:, :, : h + 2, x : x + w + 2]
            cols = g[..., 1 : w + 1].clone()  # the wrap columns onto the columns they copy
            cols[..., w - 1] += g[..., 0]
            cols[..., 0] += g[..., w + 1]
            rows = cols[:, :, 1 : h + 1].clone()  # then the wrap rows (corners included)
            rows[:, :, h - 1] += cols[:, :, 0]
            rows[:, :, 0] += cols[:, :, h + 1]
            out.append(rows.permute(0, 2, 3, 1))
        return tuple(out)


def pack_atlas(levels: Sequence[torch.Tensor]) -> Atlas:
    """The atlas of levels (B, H_k, W_k, C), one per texture of the batch; differentiable in the
    levels."""
    if any(lv.shape[0] != levels[0].shape[0] for lv in levels):
        raise ValueError(f"pack_atlas: every level needs the same batch of textures, got "
                         f"{[lv.shape[0] for lv in levels]}")
    _, x0 = _atlas_layout(levels)
    dev = levels[0].device
    return Atlas(image=_PackAtlas.apply(*levels), x0=torch.tensor(x0, dtype=torch.float32, device=dev),
                 heights=torch.tensor([lv.shape[1] for lv in levels], dtype=torch.float32, device=dev),
                 widths=torch.tensor([lv.shape[2] for lv in levels], dtype=torch.float32, device=dev))


def _sample_atlas(atlas: Atlas, uv: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Bilinear, wrapped lookups of uv (B, M, 2) in atlas levels ``level`` (B, M) int64 ->
    (B, M, C); row b reads texture b (the atlas's B is 1 or B)."""
    img = atlas.image
    ha, wa = img.shape[2], img.shape[3]
    uvw = torch.remainder(uv, 1.0)
    # Texel j of level k sits at atlas pixel x0_k + 1 + j; uv's texel coordinate is u W_k - 0.5.
    px = atlas.x0[level] + uvw[..., 0] * atlas.widths[level] + 0.5
    py = uvw[..., 1] * atlas.heights[level] + 0.5
    grid = torch.stack([px * (2.0 / (wa - 1)) - 1.0, py * (2.0 / (ha - 1)) - 1.0], dim=-1)
    out = torch.nn.functional.grid_sample(img, grid.to(img.dtype)[:, None], mode="bilinear",
                                          padding_mode="border", align_corners=True)
    return out[:, :, 0].transpose(1, 2)


def _into(out: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    return value if out is None else out.copy_(value)


def lookup_bilinear(
    texture: torch.Tensor, uv: torch.Tensor, index: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bilinear, wrapped lookup.

    texture: (B, H, W, C); uv: (N, 2) any real values (period 1); index: (N,) int64 in [0, B),
    which texture of the batch each query reads (None: all read texture 0); out: None, or an (N,
    C) view to fill (the columns of a wider input: the native kernel then writes there directly).
    Returns (N, C) (``out`` when given). Differentiable in ``texture`` and ``uv``.
    """
    if lookup_native.supports(texture, uv):
        return lookup_native.trilinear_levels([texture], uv, None, index, out)
    if index is not None or texture.shape[0] != 1:
        return _into(out, lookup_bilinear_gather(texture, uv, index))
    atlas = pack_atlas([texture])
    zeros = torch.zeros(1, uv.shape[0], dtype=torch.long, device=uv.device)
    return _into(out, _sample_atlas(atlas, uv[None], zeros)[0])


def lookup_trilinear(
    levels: Sequence[torch.Tensor] | PackedLevels | Atlas,
    uv: torch.Tensor,
    lod: torch.Tensor,
    index: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Trilinear lookup: bilinear inside the two levels around ``lod``, linear between them.

    levels: L tensors (B, H_k, W_k, C), level 0 finest, their :func:`pack_atlas` (one texture per
    level, the fast path) or their :func:`pack_levels` (batches of textures); uv: (N, 2); lod:
    (N,) continuous, clamped to [0, L - 1]; index: (N,) or None and out as in
    :func:`lookup_bilinear`. Returns (N, C), differentiable in the levels, uv and lod. At integer
    lod and texel centres it returns the texel values (to float32 round-off on the fast path).
    """
    if isinstance(levels, PackedLevels):
        if lookup_native.supports(levels.table, uv):
            lay = lookup_native.Layout(levels.offsets, levels.heights, levels.widths)
            return lookup_native.trilinear_table(levels.table, lay, uv, lod, index, out)
        return _into(out, lookup_trilinear_gather(levels, uv, lod, index))
    if not isinstance(levels, Atlas) and lookup_native.supports(levels[0], uv):
        return lookup_native.trilinear_levels(list(levels), uv, lod, index, out)
    if index is not None:
        return _into(out, lookup_trilinear_gather(levels, uv, lod, index))
    atlas = levels if isinstance(levels, Atlas) else pack_atlas(levels)
    if atlas.image.shape[0] != 1:
        raise ValueError(f"lookup_trilinear without index reads one texture, the atlas holds "
                         f"{atlas.image.shape[0]}: use lookup_trilinear_coherent")
    return _into(out, lookup_trilinear_coherent(atlas, uv[None], lod[None])[0])


def lookup_trilinear_coherent(atlas: Atlas, uv: torch.Tensor, lod: torch.Tensor) -> torch.Tensor:
    """Trilinear lookups of B textures, M queries each: uv (B, M, 2) and lod (B, M) read texture
    b of ``atlas`` (a :func:`pack_atlas` of B textures) in row b -> (B, M, C).

    The batched twin of the fast path: one ``grid_sample`` call whose batch is the textures, so
    that training batches of a few direction pairs x many texels read a few images whole (the
    ground-truth sampler's coherent batches) instead of gathering texels over the whole pyramid.
    Same values as :func:`lookup_trilinear_gather` with ``index`` = b for row b.
    """
    b, m = lod.shape
    lo, hi, frac = _level_pair(lod.reshape(-1), atlas.n_levels)
    val = _sample_atlas(atlas, uv.repeat(1, 2, 1), torch.cat([lo.view(b, m), hi.view(b, m)], dim=1))
    v_lo, v_hi = val[:, :m], val[:, m:]
    return v_lo + (v_hi - v_lo) * frac.view(b, m, 1)
