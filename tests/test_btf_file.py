"""The HDF5 BTF format: round trip, refusal of bad files, atomic writes, pyramid rewrite."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from btf_data.btf_file import BTFFile, BTFWriter, rewrite_pyramid
from btf_data.directions import direction_set
from btf_data.errors import BTFFormatError
from btf_data.procedural import procedural_maps
from btf_data.pyramid import filtered_pyramid
from tests.conftest import write_small_btf


def test_round_trip_images_pyramid_directions_and_split(small_btf):
    path, images = small_btf
    with BTFFile(path) as btf:
        assert btf.shape == images.shape[:4]
        assert btf.n_levels == 5 and btf.has_pyramid
        np.testing.assert_array_equal(btf.image(2, 3), images[2, 3])
        np.testing.assert_array_equal(btf.view(1), images[1])
        want = filtered_pyramid(images[4, 0], "box")
        for k in range(1, 5):
            np.testing.assert_allclose(btf.image(4, 0, k), want[k - 1], rtol=1e-6)
        np.testing.assert_allclose(btf.wo_dirs, direction_set("tiny"), atol=1e-7)
        train, held = btf.pairs("train"), btf.pairs("held_out")
        assert len(train) + len(held) == 25 and len(held) == 5
        assert btf.attrs["value_max"] == pytest.approx(images.max())
        assert btf.attrs["value_mean"] == pytest.approx(images.mean(), rel=1e-6)
        assert btf.svbrdf() is None


def test_svbrdf_maps_round_trip(tmp_path):
    maps = procedural_maps("bumps", 16)
    d = direction_set("tiny")
    with BTFWriter(tmp_path / "m.h5", wo_dirs=d, wi_dirs=d, resolution=(16, 16),
                   split=np.zeros((5, 5), np.uint8), name="bumps", source="synthetic",
                   svbrdf=maps) as w:
        for i in range(5):
            w.write(i, np.ones((5, 16, 16, 3), np.float32))
    with BTFFile(tmp_path / "m.h5") as btf:
        back = btf.svbrdf()
        for name in ("albedo", "height", "normal", "roughness", "metallic", "specular"):
            np.testing.assert_array_equal(getattr(back, name), getattr(maps, name))


def _mutate(path: Path, fn) -> None:
    with h5py.File(path, "a") as f:
        fn(f)


def _replace(name: str, data):
    def fn(f):
        del f[name]
        f[name] = data
    return fn


def _set_value(name: str, index, value):
    def fn(f):
        f[name][index] = value
    return fn


BAD_FILES = {
    "missing_dataset": (lambda f: f.__delitem__("wi_dirs"), "missing dataset 'wi_dirs'"),
    "wrong_shape": (_replace("radiance", np.zeros((5, 5, 16, 16, 4), np.float32)), r"expected \(n_wo"),
    "int_dtype": (_replace("radiance", np.zeros((5, 5, 16, 16, 3), np.int32)), "dtype int32"),
    "not_unit": (_set_value("wo_dirs", 2, [0.0, 0.0, 2.0]), r"'wo_dirs'\[2\] is not a unit vector"),
    "below_horizon": (_set_value("wi_dirs", 1, [0.0, 0.6, -0.8]), r"'wi_dirs'\[1\].*below the horizon"),
    "nan_radiance": (_set_value("radiance", (3, 1, 2, 2, 0), np.nan), r"'radiance'\[3, 1\] has NaN"),
    "bad_pyramid": (_set_value("pyramid/2", (0, 0, 1, 1, 0), 9.0), r"'pyramid/2'\[0, 0\] does not match"),
    "missing_level": (lambda f: f.__delitem__("pyramid/3"), "pyramid is incomplete: missing level 3"),
    "bad_split": (_replace("split", np.full((5, 5), 7, np.uint8)), "'split' may hold only 0 .* found 7"),
    "new_version": (lambda f: f.attrs.__setitem__("format_version", 99), "newer than supported"),
    "no_version": (lambda f: f.attrs.__delitem__("format_version"), "missing attribute 'format_version'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_refused_with_a_message_naming_file_and_problem(tmp_path, case):
    path = tmp_path / f"{case}.h5"
    write_small_btf(path)
    mutate, message = BAD_FILES[case]
    _mutate(path, mutate)
    with pytest.raises(BTFFormatError, match=message) as err:
        BTFFile(path)
    assert str(path) in str(err.value)


def test_missing_and_non_hdf5_files_are_refused(tmp_path):
    with pytest.raises(BTFFormatError, match="no such file"):
        BTFFile(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BTFFormatError, match="not a readable HDF5 file"):
        BTFFile(junk)
    truncated = tmp_path / "truncated.h5"
    write_small_btf(truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    with pytest.raises(BTFFormatError):
        BTFFile(truncated)


def test_a_crash_while_writing_leaves_no_file(tmp_path):
    d = direction_set("tiny")
    out = tmp_path / "crash.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with BTFWriter(out, wo_dirs=d, wi_dirs=d, resolution=(8, 8),
                       split=np.zeros((5, 5), np.uint8), name="x", source="test") as w:
            w.write(0, np.ones((5, 8, 8, 3), np.float32))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="never written"):
        with BTFWriter(out, wo_dirs=d, wi_dirs=d, resolution=(8, 8),
                       split=np.zeros((5, 5), np.uint8), name="x", source="test") as w:
            w.write(0, np.ones((5, 8, 8, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_bad_images(tmp_path):
    d = direction_set("tiny")
    with pytest.raises(ValueError, match="NaN"):
        with BTFWriter(tmp_path / "x.h5", wo_dirs=d, wi_dirs=d, resolution=(8, 8),
                       split=np.zeros((5, 5), np.uint8), name="x", source="test") as w:
            w.write(0, np.full((5, 8, 8, 3), math.nan, np.float32))
    assert not (tmp_path / "x.h5").exists()


def test_float16_storage_and_gaussian_pyramid_rewrite(tmp_path):
    path = tmp_path / "g.h5"
    images = write_small_btf(path, dtype="float16")
    with BTFFile(path) as btf:
        assert btf.level(0).dtype == np.float16
        np.testing.assert_allclose(btf.image(0, 0), images[0, 0], rtol=1e-3, atol=1e-4)
    rewrite_pyramid(path, "gaussian", 0.5)
    with BTFFile(path) as btf:
        assert btf.filter == "gaussian"
        want = filtered_pyramid(btf.image(2, 2), "gaussian", 0.5)
        np.testing.assert_allclose(btf.image(2, 2, 1), want[0], rtol=2e-3, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]


def test_a_read_that_fails_mid_training_names_the_file(tmp_path, monkeypatch):
    """A damaged chunk found long after the file was opened (a streaming training run reads images
    every step) is refused naming the file, the image and the level, not as h5py's bare OSError."""
    from btf_data.sampler import PyramidSampler, SamplerConfig
    from tests.conftest import synthetic_btf

    path = synthetic_btf(tmp_path, "bumps")
    with BTFFile(path) as btf:
        sampler = PyramidSampler(btf, SamplerConfig(memory_budget_mib=0, batch_size=64))
        assert not sampler.in_memory
        sampler.sample()  # reads fine

        class DamagedChunk:
            def __getitem__(self, index):
                raise OSError("Can't synchronously read data (filter returned failure during read)")

        monkeypatch.setattr(btf, "level", lambda k: DamagedChunk())
        with pytest.raises(BTFFormatError, match=rf"^{path}: cannot read image \(view \d+, light \d+\) of "
                                                 r"level 0: Can't synchronously read data"):
            sampler.sample()
        with pytest.raises(BTFFormatError, match=r": cannot read view 3 of level 2: "):
            btf.view(3, 2)
