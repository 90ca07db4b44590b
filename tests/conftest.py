"""Shared helpers: small BTF files made on the spot (tests never download data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from btf_data.btf_file import BTFWriter
from btf_data.directions import direction_set, split_pairs
from neumip.config_store import register_configs

register_configs()  # tests compose conf/train.yaml, whose model/full, schedule/paper... are dataclasses


def write_small_btf(
    path: Path,
    images: np.ndarray | None = None,
    dirs: np.ndarray | None = None,
    dtype: str = "float32",
    filter: str = "box",
    seed: int = 0,
) -> np.ndarray:
    """Write a BTF of random (or given) images (n_wo, n_wi, H, W, 3); returns the images."""
    dirs = direction_set("tiny") if dirs is None else dirs
    n = len(dirs)
    if images is None:
        rng = np.random.default_rng(seed)
        images = rng.random((n, n, 16, 16, 3)).astype(np.float32)
    with BTFWriter(
        path,
        wo_dirs=dirs,
        wi_dirs=dirs,
        resolution=images.shape[2:4],
        split=split_pairs(images.shape[0], images.shape[1], 0.2, 0),
        name="random",
        source="test",
        filter=filter,
        dtype=dtype,
    ) as w:
        for i in range(images.shape[0]):
            w.write(i, images[i])
    return images


def synthetic_btf(directory: Path, material: str, resolution: int = 16,
                  directions: str = "small") -> Path:
    """A procedural material rendered to a float32 BTF file in ``directory`` (about a second at
    16 x 16 texels and 19 x 19 directions)."""
    from btf_data.generate import GenerateConfig, MaterialConfig, generate

    path = directory / f"{material}{resolution}.h5"
    generate(GenerateConfig(material=MaterialConfig(name=material), resolution=resolution,
                            directions=directions, out=str(path), progress=False, dtype="float32"))
    return path


@pytest.fixture
def small_btf(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "small.h5"
    images = write_small_btf(path)
    return path, images


def require_native_kernel(source: Path) -> None:
    """Tests of a native kernel (a C source the package compiles on first use) need it built. Where
    it cannot be (no C compiler, ``NEUMIP_NATIVE=0``) they skip, the reason being the build's own
    message; under CI (``CI`` set, where ``.ci/run`` installs a compiler) they fail instead, so a
    kernel can never go untested there silently."""
    from plumbing.native_build import NativeUnavailable, load

    try:
        load(source)
    except NativeUnavailable as e:
        if os.environ.get("CI"):
            raise RuntimeError(f"the native kernel {source.name} could not be built under CI: {e}") from None
        pytest.skip(f"the native kernel {source.name} could not be built here: {e}")


def require_cpu_features(source: Path, runs_here: bool, features: str, instead: str) -> None:
    """A kernel built (:func:`require_native_kernel`) that needs instructions this CPU may lack
    (``runs_here`` False: it compiled to a stub that declines every call). Its tests cannot run on
    such a CPU, under CI or not: they skip, saying which instructions are missing and which path
    serves instead there (``instead``, tested on every machine by the suite's other tests)."""
    require_native_kernel(source)
    if not runs_here:
        pytest.skip(f"{source.name} needs {features}, which this CPU does not have; {instead} serves "
                    "here, and the tests of that path run")
