"""UBO2014 FMF1 reading and import, on files written by the test-side writer."""

from __future__ import annotations

import numpy as np
import pytest

from btf_data.btf_file import BTFFile
from btf_data.errors import UBOFormatError
from btf_data.import_ubo import ImportConfig, import_ubo
from btf_data.ubo2014 import UBO2014Reader
from tests.fmf1_writer import write_fmf1

VIEWS = np.array([[0.0, 0.0], [0.5, 1.0], [1.0, 4.0]])
LIGHTS = np.array([[0.2, 0.3], [0.7, 2.0], [1.2, 5.5], [0.0, 0.0]])


def _btf(h=8, w=6, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.05 + rng.random((3, 4, h, w, 3))).astype(np.float32)


@pytest.mark.parametrize("scalar", [np.float16, np.float32])
@pytest.mark.parametrize("drr", [False, True])
def test_fmf1_round_trip(tmp_path, scalar, drr):
    btf = _btf()
    path = tmp_path / "m.btf"
    write_fmf1(path, btf, VIEWS, LIGHTS, scalar=scalar, drr=drr)
    r = UBO2014Reader(path)
    assert (r.n_views, r.n_lights) == (3, 4)
    assert r.header.drr == drr and r.header.scalar_size == np.dtype(scalar).itemsize
    np.testing.assert_allclose(r.header.views[1], [np.sin(0.5) * np.cos(1), np.sin(0.5) * np.sin(1),
                                                   np.cos(0.5)], rtol=1e-6)
    got = np.stack([r.images(v, 0, 4) for v in range(3)])
    tol = 2e-2 if scalar == np.float16 else 1e-5
    np.testing.assert_allclose(got, btf, rtol=tol, atol=tol)
    # Light chunks reassemble to the same images.
    chunks = np.concatenate([r.images(2, 0, 1), r.images(2, 1, 4)])
    np.testing.assert_allclose(chunks, got[2], rtol=1e-5, atol=1e-6)


def test_import_streams_into_a_valid_hdf5_with_pyramid(tmp_path):
    btf = _btf(h=8, w=8)
    src = tmp_path / "m.btf"
    write_fmf1(src, btf, VIEWS, LIGHTS)
    out = tmp_path / "m.h5"
    import_ubo(ImportConfig(path=str(src), out=str(out), lights_per_chunk=3, dtype="float32",
                            progress=False, cache_mib=0))
    with BTFFile(out) as f:
        assert f.shape == (3, 4, 8, 8) and f.n_levels == 4
        np.testing.assert_allclose(f.level(0)[()], btf, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(f.image(1, 2, 3)[0, 0], btf[1, 2].mean(axis=(0, 1)), rtol=1e-5)
        assert f.attrs["texel_size_mm"] == pytest.approx(0.1)
        assert f.attrs["source"] == "ubo2014:m.btf"
    cropped = tmp_path / "c.h5"
    import_ubo(ImportConfig(path=str(src), out=str(cropped), crop=4, dtype="float32", progress=False))
    with BTFFile(cropped) as f:
        np.testing.assert_allclose(f.level(0)[()], btf[:, :, 2:6, 2:6], rtol=1e-5, atol=1e-5)


def test_truncated_and_corrupted_files_get_clear_errors(tmp_path):
    path = tmp_path / "m.btf"
    write_fmf1(path, _btf(), VIEWS, LIGHTS)
    data = path.read_bytes()
    cases = {
        "truncated_matrices": (data[:-100], "truncated: matrices end at byte"),
        "truncated_header": (data[:200], "truncated: needs"),
        "trailing": (data + b"\0" * 8, "has trailing bytes"),
        "signature": (b"?" + data[1:], "not a UBO2014 FMF1 file"),
        "header_size": (data[:9] + (999).to_bytes(4, "little") + data[13:], "header size field"),
        "empty": (b"", "truncated"),
    }
    for name, (blob, message) in cases.items():
        bad = tmp_path / f"{name}.btf"
        bad.write_bytes(blob)
        with pytest.raises(UBOFormatError, match=message) as err:
            UBO2014Reader(bad)
        assert str(bad) in str(err.value), name
    with pytest.raises(UBOFormatError, match="no such file"):
        UBO2014Reader(tmp_path / "absent.btf")


def test_corrupted_matrix_values_are_refused(tmp_path):
    path = tmp_path / "m.btf"
    write_fmf1(path, _btf(), VIEWS, LIGHTS, scalar=np.float32)
    data = bytearray(path.read_bytes())
    data[-8:-4] = np.float32(np.nan).tobytes()  # a NaN in SxV
    path.write_bytes(bytes(data))
    with pytest.raises(UBOFormatError, match="NaN"):
        UBO2014Reader(path)
