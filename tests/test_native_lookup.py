"""The native lookup kernel (btf_data/lookup_kernel.c) against the torch gather path, a second
implementation: values and gradients (levels, uv, lod), batches of textures, thread counts; and
how the kernel is built, cached and given up."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from btf_data import lookup_native
from btf_data.lookup import lookup_trilinear, lookup_trilinear_gather, pack_levels
from plumbing import native_build
from tests.conftest import require_native_kernel

LOOKUP_KERNEL = Path(lookup_native.__file__).with_name("lookup_kernel.c")


@pytest.fixture(autouse=True)
def kernel():
    require_native_kernel(LOOKUP_KERNEL)


@pytest.mark.parametrize("channels", [3, 7, 16, 5])  # specialised copies and the generic loop
def test_values_and_gradients_equal_the_gather_path(channels):
    g = torch.Generator().manual_seed(channels)
    levels = [torch.randn(1, 32 >> k, 32 >> k, channels, generator=g, requires_grad=True) for k in range(5)]
    n = 20000
    uv = (torch.rand(n, 2, generator=g) * 3 - 1).requires_grad_(True)  # wraps both ways
    lod = (torch.rand(n, generator=g) * 5.5 - 0.5).requires_grad_(True)  # clamps both ends
    got = lookup_native.trilinear_levels(levels, uv, lod)
    ref = lookup_trilinear_gather(levels, uv, lod)
    torch.testing.assert_close(got, ref, atol=3e-5, rtol=0)
    w = torch.randn(n, channels, generator=g)
    g_got = torch.autograd.grad((got * w).sum(), [*levels, uv, lod])
    g_ref = torch.autograd.grad((ref * w).sum(), [*levels, uv, lod])
    for a, b in zip(g_got[:-2], g_ref[:-2], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5 * float(b.abs().max()), rtol=0)
    for a, b in zip(g_got[-2:], g_ref[-2:], strict=True):  # kinks at texel boundaries: a few may differ
        off = (a - b).abs().reshape(n, -1).max(dim=1).values > 1e-3 * float(b.abs().max())
        assert off.float().mean() < 1e-3


def test_a_strided_output_gradient_gives_the_gradients_of_a_contiguous_one():
    """The lookup's output concatenated with more columns (as the decoder's input): its gradient
    arrives as a column slice with strided rows, which the kernel reads in place."""
    g = torch.Generator().manual_seed(11)
    levels = [torch.randn(1, 32 >> k, 32 >> k, 16, generator=g, requires_grad=True) for k in range(5)]
    n = 3001
    uv = torch.rand(n, 2, generator=g).requires_grad_(True)
    lod = torch.rand(n, generator=g) * 4
    w = torch.randn(n, 20, generator=g)
    got = lookup_native.trilinear_levels(levels, uv, lod)
    x = torch.cat([got, torch.zeros(n, 4)], dim=1)  # its backward hands the lookup w[:, :16]
    g_strided = torch.autograd.grad((x * w).sum(), [*levels, uv])
    again = lookup_native.trilinear_levels(levels, uv, lod)
    g_contiguous = torch.autograd.grad((again * w[:, :16].contiguous()).sum(), [*levels, uv])
    for a, b in zip(g_strided, g_contiguous, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("lod_value", [None, -1.0, 0.0, 2.0, 4.0, 6.0])
def test_single_level_reads_equal_the_gather_path_with_gradients(lod_value):
    """The kernel reads one level where the lod selects it alone (bilinear lookups, integer lods,
    lods clamped to either end): the values, the gradients and the lod's derivative (v_hi - v_lo
    at interior integer lods, 0 at the top) must still be the gather path's."""
    g = torch.Generator().manual_seed(3)
    levels = [torch.randn(1, 32 >> k, 32 >> k, 7, generator=g, requires_grad=True) for k in range(5)]
    n = 5000
    uv = (torch.rand(n, 2, generator=g) * 3 - 1).requires_grad_(True)
    if lod_value is None:
        levels, lod, inputs = levels[:1], None, [levels[0], uv]
    else:
        lod = torch.full((n,), lod_value, requires_grad=True)
        inputs = [*levels, uv, lod]
    got = lookup_native.trilinear_levels(levels, uv, lod)
    ref = lookup_trilinear_gather(levels, uv, torch.zeros(n) if lod is None else lod)
    torch.testing.assert_close(got, ref, atol=3e-5, rtol=0)  # uv wrapped from [-1, 2): round-off
    w = torch.randn(n, 7, generator=g)
    g_got = torch.autograd.grad((got * w).sum(), inputs)
    g_ref = torch.autograd.grad((ref * w).sum(), inputs)
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5 * max(1.0, float(b.abs().max())), rtol=0)
    if lod_value == 2.0:  # an interior integer lod: the derivative is not zero
        assert float(g_got[-1].abs().max()) > 0.1


def test_batches_of_textures_read_texture_index_as_the_gather_path_and_the_texels():
    g = torch.Generator().manual_seed(7)
    b, n = 6, 30000
    levels = [torch.rand(b, 16 >> k, 16 >> k, 3, generator=g) for k in range(4)]
    uv = torch.rand(n, 2, generator=g)
    lod = torch.rand(n, generator=g) * 3
    index = torch.randint(b, (n,), generator=g)
    packed = pack_levels(levels)
    got = lookup_trilinear(packed, uv, lod, index)  # the dispatch takes the kernel
    torch.testing.assert_close(got, lookup_trilinear_gather(packed, uv, lod, index), atol=3e-6, rtol=0)
    # texel centres at integer lods are the texels themselves
    k = torch.randint(4, (n,), generator=g)
    res = (16 >> k).float()
    ij = torch.floor(torch.rand(n, 2, generator=g) * res[:, None]).long()
    texel = lookup_trilinear(packed, (ij + 0.5) / res[:, None], k.float(), index)
    want = torch.stack([levels[int(k[q])][index[q], ij[q, 1], ij[q, 0]] for q in range(0, n, 97)])
    torch.testing.assert_close(texel[::97], want, atol=1e-6, rtol=0)


def test_one_thread_and_two_give_the_same_lookup_and_gradient():
    g = torch.Generator().manual_seed(3)
    levels = [torch.randn(1, 64 >> k, 64 >> k, 16, generator=g, requires_grad=True) for k in range(6)]
    uv = torch.rand(50000, 2, generator=g)
    lod = torch.rand(50000, generator=g) * 5
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = lookup_native.trilinear_levels(levels, uv, lod)
            runs.append((out, torch.autograd.grad(out.square().sum(), levels)))
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(runs[0][0], runs[1][0], atol=0, rtol=0)
    for a, b in zip(runs[0][1], runs[1][1], strict=True):  # summed in another order
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bad_shapes_and_indices_are_refused_before_the_kernel_reads_memory():
    levels = [torch.rand(2, 8, 8, 3), torch.rand(2, 4, 4, 3)]
    uv, lod = torch.rand(10, 2), torch.rand(10)
    with pytest.raises(IndexError, match="texture index 2 is out of range for 2 textures"):
        lookup_native.trilinear_levels(levels, uv, lod, torch.full((10,), 2))
    with pytest.raises(IndexError, match="texture index -1"):
        lookup_native.trilinear_levels(levels, uv, lod, torch.full((10,), -1))
    with pytest.raises(ValueError, match=r"lod \(9,\)"):
        lookup_native.trilinear_levels(levels, uv, lod[:9])


def test_non_finite_uv_reads_a_texel_instead_of_wild_memory():
    levels = [torch.rand(1, 8, 8, 3)]
    uv = torch.tensor([[float("nan"), 0.5], [float("inf"), -float("inf")], [1e30, -1e30]])
    out = lookup_native.trilinear_levels(levels, uv, None)
    assert torch.isfinite(out).all()
    assert ((out >= levels[0].min()) & (out <= levels[0].max())).all()


def test_the_build_is_cached_and_refused_cleanly(tmp_path, monkeypatch):
    source = tmp_path / "answer.c"
    source.write_text("int answer(void) { return 42; }\n")
    monkeypatch.setenv("NEUMIP_CACHE", str(tmp_path / "cache"))
    lib = native_build.build(source)
    assert lib.parent == tmp_path / "cache" / "native" and lib.exists()
    assert native_build.load(source).answer() == 42
    stamp = lib.stat().st_mtime_ns
    assert native_build.build(source) == lib and lib.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in lib.parent.iterdir()] == [lib.name]  # no temporary left
    source.write_text("int answer(void) { return 43 }\n")  # a syntax error: refused, nothing cached
    with pytest.raises(native_build.NativeUnavailable, match="failed on answer.c"):
        native_build.build(source)
    assert [p.name for p in lib.parent.iterdir()] == [lib.name]
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with pytest.raises(native_build.NativeUnavailable, match="no C compiler"):
        native_build.build(source)
    monkeypatch.setenv("NEUMIP_NATIVE", "0")
    with pytest.raises(native_build.NativeUnavailable, match="NEUMIP_NATIVE=0"):
        native_build.load(Path(source))


def test_an_included_file_is_part_of_the_build_key(tmp_path, monkeypatch):
    """A kernel built from several files (``#include "part.h"``) is rebuilt when a part changes."""
    (tmp_path / "parts").mkdir()
    part = tmp_path / "parts" / "value.h"
    part.write_text("#define VALUE 1\n")
    source = tmp_path / "main.c"
    source.write_text('#include <stdint.h>\n#include "parts/value.h"\nint value(void) { return VALUE; }\n')
    monkeypatch.setenv("NEUMIP_CACHE", str(tmp_path / "cache"))
    first = native_build.build(source)
    part.write_text("#define VALUE 2\n")
    second = native_build.build(source)
    assert first != second and native_build.load(source).value() == 2
    part.unlink()
    with pytest.raises(native_build.NativeUnavailable, match="cannot read main.c"):
        native_build.build(source)


def test_without_the_kernel_lookups_fall_back_to_torch(monkeypatch, caplog):
    monkeypatch.setenv("NEUMIP_NATIVE", "0")
    lookup_native._library.cache_clear()
    try:
        assert not lookup_native.native_available()
        assert "native lookup_kernel off, torch lookups used instead: NEUMIP_NATIVE=0" in caplog.text
        levels = [torch.rand(1, 8 >> k, 8 >> k, 3) for k in range(3)]
        uv, lod = torch.rand(100, 2), torch.rand(100) * 2
        want = lookup_trilinear_gather(levels, uv, lod)
        torch.testing.assert_close(lookup_trilinear(levels, uv, lod), want, atol=3e-6, rtol=0)
    finally:
        monkeypatch.delenv("NEUMIP_NATIVE")
        lookup_native._library.cache_clear()
    assert lookup_native.native_available()


def test_out_fills_the_columns_of_a_wider_input_with_and_without_autograd():
    """``out`` (a column block of an MLP's input): without autograd the kernel writes there
    directly (strided rows), with it the lookup is copied in and gradients flow through the copy;
    both equal the plain lookup, and the other columns are left alone."""
    g = torch.Generator().manual_seed(11)
    levels = [torch.randn(1, 16 >> k, 16 >> k, 7, generator=g, requires_grad=True) for k in range(4)]
    uv, lod = torch.rand(3000, 2, generator=g), torch.rand(3000, generator=g) * 3
    want = lookup_trilinear_gather(levels, uv, lod)
    with torch.no_grad():
        x = torch.full((3000, 10), -7.0)
        got = lookup_trilinear(levels, uv, lod, out=x[:, 2:9])
        assert got.data_ptr() == x[:, 2:9].data_ptr()
    torch.testing.assert_close(x[:, 2:9], want.detach(), atol=3e-6, rtol=0)
    assert (x[:, :2] == -7).all() and (x[:, 9] == -7).all()
    x = torch.zeros(3000, 10)
    lookup_trilinear(levels, uv, lod, out=x[:, 2:9])
    grads = torch.autograd.grad(x.sum(), levels)
    for a, b in zip(grads, torch.autograd.grad(want.sum(), levels), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"out is torch.float32 \(3000, 6\)"):
        lookup_trilinear(levels, uv, lod, out=x[:, 2:8])
