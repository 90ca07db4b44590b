"""Filtered pyramids and the trilinear lookup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from btf_data import lookup_native
from btf_data.lookup import lookup_bilinear, lookup_trilinear
from btf_data.pyramid import filtered_pyramid, gaussian_matrix, level_count
from tests.conftest import require_native_kernel


@pytest.fixture(params=["torch", "native"])
def lookup_path(request, monkeypatch):
    """Runs a test through the torch paths and through the native kernel (required under CI)."""
    if request.param == "torch":
        monkeypatch.setattr(lookup_native, "supports", lambda table, uv: False)
    else:
        require_native_kernel(Path(lookup_native.__file__).with_name("lookup_kernel.c"))
    return request.param


def test_box_level_k_is_the_mean_of_each_block_and_preserves_the_mean():
    rng = np.random.default_rng(0)
    img = rng.random((2, 32, 32, 3)).astype(np.float32) ** 3
    levels = filtered_pyramid(img, "box")
    assert [lv.shape[1] for lv in levels] == [16, 8, 4, 2, 1]
    for k, lv in enumerate(levels, start=1):
        s = 2**k
        block = img[:, 5 * s % 32 : 5 * s % 32 + s, 3 * s % 32 : 3 * s % 32 + s].mean(axis=(1, 2))
        np.testing.assert_allclose(lv[:, (5 * s % 32) // s, (3 * s % 32) // s], block, rtol=1e-6)
        np.testing.assert_allclose(lv.mean(axis=(1, 2)), img.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(levels[-1][:, 0, 0], img.mean(axis=(1, 2)), rtol=1e-6)


def test_level_count_halves_while_both_sides_are_even():
    assert level_count(128, 128) == 8
    assert level_count(400, 400) == 5  # 400, 200, 100, 50, 25
    assert level_count(16, 8) == 4


def test_gaussian_keeps_constants_and_has_the_documented_sigma():
    img = np.full((1, 64, 64, 3), 0.7, np.float32)
    for lv in filtered_pyramid(img, "gaussian"):
        np.testing.assert_allclose(lv, 0.7, rtol=1e-6)
    for k in (1, 2, 3):
        m = gaussian_matrix(256, k, 0.5).numpy()
        centre = (10 + 0.5) * 2**k - 0.5
        d = np.arange(256) - centre
        std = np.sqrt((m[10] * d**2).sum())
        assert abs(std / (0.5 * 2**k) - 1) < 0.03  # truncation at 3 sigma trims ~1.3%
        assert abs((m[10] * d).sum()) < 1e-9  # centred on the level-k texel


def test_bad_filter_is_refused():
    with pytest.raises(ValueError, match="unknown pyramid filter"):
        filtered_pyramid(np.zeros((4, 4, 3)), "median")


@pytest.mark.usefixtures("lookup_path")
def test_lookup_is_exact_at_texel_centres_and_integer_lod():
    g = torch.Generator().manual_seed(0)
    levels = [torch.rand(2, 8 >> k, 8 >> k, 3, generator=g) for k in range(4)]
    for k, lv in enumerate(levels):
        r = lv.shape[1]
        i, j = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
        uv = torch.stack([(j.flatten() + 0.5) / r, (i.flatten() + 0.5) / r], 1)
        idx = torch.ones(uv.shape[0], dtype=torch.long)
        got = lookup_trilinear(levels, uv, torch.full((uv.shape[0],), float(k)), idx)
        torch.testing.assert_close(got, lv[1].reshape(-1, 3), rtol=0, atol=1e-6)


@pytest.mark.usefixtures("lookup_path")
def test_lookup_wraps_at_the_border_and_blends_levels_linearly():
    tex = torch.arange(4.0).reshape(1, 1, 4, 1).expand(1, 4, 4, 1).contiguous()  # value = column
    at_seam = lookup_bilinear(tex, torch.tensor([[0.0, 0.5], [1.0, 0.5], [-1.0, 0.5]]))
    torch.testing.assert_close(at_seam[:, 0], torch.tensor([1.5, 1.5, 1.5]))  # (3 + 0) / 2
    levels = [torch.zeros(1, 4, 4, 1), torch.ones(1, 2, 2, 1), torch.full((1, 1, 1, 1), 5.0)]
    uv = torch.rand(5, 2)
    for lod, want in ((0.25, 0.25), (1.0, 1.0), (1.5, 3.0), (7.0, 5.0), (-2.0, 0.0)):
        got = lookup_trilinear(levels, uv, torch.full((5,), lod))
        torch.testing.assert_close(got[:, 0], torch.full((5,), want))


@pytest.mark.usefixtures("lookup_path")
def test_lookup_is_continuous_across_level_boundaries_and_differentiable():
    g = torch.Generator().manual_seed(1)
    levels = [torch.rand(1, 16 >> k, 16 >> k, 2, generator=g, requires_grad=True) for k in range(3)]
    uv = torch.rand(50, 2, generator=g)
    eps = 1e-4
    below = lookup_trilinear(levels, uv, torch.full((50,), 1.0 - eps))
    above = lookup_trilinear(levels, uv, torch.full((50,), 1.0 + eps))
    assert (below - above).abs().max() < 1e-3
    lookup_trilinear(levels, uv, torch.rand(50, generator=g) * 2).sum().backward()
    assert all(lv.grad is not None and lv.grad.abs().sum() > 0 for lv in levels)


def test_fast_atlas_lookup_matches_its_gather_twin_in_values_and_gradients():
    """The grid_sample atlas path and the gather reference agree to float32 round-off; uv
    gradients may differ only at the few points that sit on a texel boundary (a kink of
    bilinear interpolation, where either side's slope is right)."""
    from btf_data.lookup import lookup_bilinear_gather, lookup_trilinear_gather, pack_atlas

    torch.manual_seed(0)
    levels = [torch.randn(1, 32 >> k, 32 >> k, 5, dtype=torch.float32, requires_grad=True) for k in range(5)]
    n = 20000
    uv = (torch.rand(n, 2) * 3 - 1).requires_grad_(True)
    lod = (torch.rand(n) * 5.5 - 0.5).requires_grad_(True)
    fast = lookup_trilinear(pack_atlas(levels), uv, lod)
    ref = lookup_trilinear_gather(levels, uv, lod)
    torch.testing.assert_close(fast, ref, atol=3e-5, rtol=0)
    g_fast = torch.autograd.grad((fast * fast).sum(), [*levels, uv, lod])
    g_ref = torch.autograd.grad((ref * ref).sum(), [*levels, uv, lod])
    for a, b in zip(g_fast[:-2], g_ref[:-2], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4 * float(b.abs().max()), rtol=0)
    for a, b in zip(g_fast[-2:], g_ref[-2:], strict=True):
        off = (a - b).abs().reshape(n, -1).max(dim=1).values > 1e-3 * float(b.abs().max())
        assert off.float().mean() < 1e-3
    tex = levels[0].detach()
    torch.testing.assert_close(lookup_bilinear(tex, uv.detach()), lookup_bilinear_gather(tex, uv.detach()),
                               atol=3e-5, rtol=0)


def test_coherent_lookup_reads_texture_b_in_row_b_as_the_gather_path_does():
    """lookup_trilinear_coherent (one batched grid_sample, texture b for row b) against the gather
    path with index = b (a second implementation), and at integer lods and texel centres against
    the texels themselves."""
    from btf_data.lookup import lookup_trilinear_coherent, lookup_trilinear_gather, pack_atlas

    g = torch.Generator().manual_seed(4)
    b, m = 3, 5000
    levels = [torch.randn(b, 16 >> k, 16 >> k, 3, generator=g) for k in range(4)]
    uv = torch.rand(b, m, 2, generator=g) * 3 - 1
    lod = torch.rand(b, m, generator=g) * 3.6 - 0.3
    got = lookup_trilinear_coherent(pack_atlas(levels), uv, lod)
    index = torch.arange(b).repeat_interleave(m)
    ref = lookup_trilinear_gather(levels, uv.reshape(-1, 2), lod.reshape(-1), index).view(b, m, 3)
    torch.testing.assert_close(got, ref, atol=3e-5, rtol=0)
    k = torch.randint(4, (b, m), generator=g)
    res = (16 >> k).float()
    ij = torch.floor(torch.rand(b, m, 2, generator=g) * res[..., None])
    texel = lookup_trilinear_coherent(pack_atlas(levels), (ij + 0.5) / res[..., None], k.float())
    truth = torch.stack([torch.stack([levels[int(k[r, q])][r, int(ij[r, q, 1]), int(ij[r, q, 0])]
                                      for q in range(0, m, 97)]) for r in range(b)])
    torch.testing.assert_close(texel[:, ::97], truth, atol=3e-5, rtol=0)  # grid_sample: float32 round-off
    with pytest.raises(ValueError, match="lookup_trilinear_coherent"):
        lookup_trilinear(pack_atlas(levels), uv[0], lod[0])


@pytest.mark.parametrize("shapes", [
    [(1, 16, 16, 5), (1, 8, 8, 5), (1, 4, 4, 5), (1, 2, 2, 5), (1, 1, 1, 5)],
    [(3, 8, 6, 2), (3, 4, 3, 2)],  # a batch of textures, non-square levels
])
def test_atlas_and_its_folded_backward_match_autograd_through_wrap_padding(shapes):
    """pack_atlas's hand-written backward (each wrap border folded onto its source texels)
    against autograd through circular padding and concatenation, a second implementation."""
    from btf_data.lookup import pack_atlas

    g = torch.Generator().manual_seed(1)
    levels = [torch.randn(*s, generator=g, requires_grad=True) for s in shapes]
    image = pack_atlas(levels).image
    hmax = max(s[1] for s in shapes) + 2
    ref = torch.cat([torch.nn.functional.pad(
        torch.nn.functional.pad(lv.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="circular"),
        (0, 0, 0, hmax - lv.shape[1] - 2)) for lv in levels], dim=3)
    assert torch.equal(image, ref)
    weight = torch.randn(ref.shape, generator=g)
    got = torch.autograd.grad((image * weight).sum(), levels)
    want = torch.autograd.grad((ref * weight).sum(), levels)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
