"""The HDF5 BTF format (one material per file), its validating reader and its atomic writer.

Layout, format version 1:

- ``radiance``: float16/float32 (n_wo, n_wi, H, W, 3), chunked one image per chunk, compressed.
  BRDF-like linear RGB (a white Lambertian plane reads 1/pi).
- ``wo_dirs`` (n_wo, 3), ``wi_dirs`` (n_wi, 3): unit vectors, tangent frame, z > 0.
- ``split`` uint8 (n_wo, n_wi): 0 = training pair, 1 = held-out pair.
- ``pyramid/<k>`` for k = 1..L-1: filtered ground truth, (n_wo, n_wi, H / 2^k, W / 2^k, 3).
- ``svbrdf/{albedo, normal, roughness, height, metallic, specular}``: optional maps the material
  was made from (see :class:`btf_data.svbrdf.SVBRDFMaps`).
- attributes: ``format_version``, ``name``, ``source``, ``filter``, ``sigma_scale``,
  ``texel_size_mm`` (NaN when unknown), ``value_min``, ``value_max``, ``value_mean``, ``config``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from btf_data.errors import BTFFormatError
from btf_data.pyramid import filtered_pyramid, level_count
from btf_data.svbrdf import SVBRDFMaps
from plumbing.atomic import atomic_path

FORMAT_VERSION = 1
SVBRDF_MAPS = ("albedo", "normal", "roughness", "height", "metallic", "specular")
_DTYPES = {"float16": np.float16, "float32": np.float32}
#: A file whose radiance is at most this big has every value checked for NaN/inf on open; a
#: bigger one has a sample of images checked (``BTFFile(..., full_check=True)`` checks all).
FULL_CHECK_BYTES = 256 * 2**20
_SAMPLE_IMAGES = 8
_UNIT_TOL = 1e-3


def compression_options(compression: str | None) -> dict:
    """h5py dataset options: gzip (level 4) or lzf, both behind the byte-shuffle filter, which
    makes half floats compress to about 2/3 of their size; None stores raw."""
    if compression is None:
        return {}
    if compression not in ("gzip", "lzf"):
        raise ValueError(f"compression must be 'gzip', 'lzf' or null, got {compression!r}")
    opts: dict = dict(compression=compression, shuffle=True)
    if compression == "gzip":
        opts["compression_opts"] = 4
    return opts


@dataclass
class FileStats:
    """Running value statistics of a file being written."""

    lo: float = math.inf
    hi: float = -math.inf
    total: float = 0.0
    count: int = 0

    def add(self, images: np.ndarray) -> None:
        self.lo = min(self.lo, float(images.min()))
        self.hi = max(self.hi, float(images.max()))
        self.total += float(images.astype(np.float64).sum())
        self.count += images.size


class BTFFile:
    """A validated, read-only BTF file with lazy access to images and pyramid levels.

    Opening checks the whole structure (datasets, shapes, dtypes, unit directions above the
    horizon, split, pyramid shapes), that values are finite (all of them for files up to
    FULL_CHECK_BYTES, a sample of images otherwise) and that the pyramid matches level 0 on a
    sample of images. A bad file raises :class:`BTFFormatError` naming the file and the problem.
    """

    def __init__(self, path: str | Path, full_check: bool = False, check_pyramid: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BTFFormatError(self.path, "no such file")
        if self.path.is_dir():
            raise BTFFormatError(self.path, "is a directory, not a BTF file")
        self.full_check = full_check
        self.value_stats: tuple[float, float, float] | None = None
        """(min, max, mean) of all radiance values, measured by a full check (None otherwise)."""
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise BTFFormatError(self.path, f"not a readable HDF5 file ({e})") from None
        try:
            self._validate(full_check, check_pyramid)
        except BTFFormatError:
            self._f.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as e:
            self._f.close()
            raise BTFFormatError(self.path, f"corrupt or unreadable content ({e})") from None

    # -- validation ---------------------------------------------------------------------------
    def _fail(self, problem: str) -> None:
        raise BTFFormatError(self.path, problem)

    def _validate(self, full_check: bool, check_pyramid: bool) -> None:
        f = self._f
        version = f.attrs.get("format_version")
        if version is None:
            self._fail("missing attribute 'format_version' (not a neumip BTF file?)")
        if int(version) > FORMAT_VERSION:
            self._fail(f"format_version {int(version)} is newer than supported ({FORMAT_VERSION})")
        for name in ("radiance", "wo_dirs", "wi_dirs", "split"):
            if name not in f:
                self._fail(f"missing dataset '{name}'")
            if not isinstance(f[name], h5py.Dataset):
                self._fail(f"'{name}' is an HDF5 {type(f[name]).__name__.lower()}, expected a dataset")
        rad = f["radiance"]
        if rad.ndim != 5 or rad.shape[-1] != 3:
            self._fail(f"'radiance' has shape {rad.shape}, expected (n_wo, n_wi, H, W, 3)")
        if rad.dtype not in (np.float16, np.float32):
            self._fail(f"'radiance' has dtype {rad.dtype}, expected float16 or float32")
        n_wo, n_wi, h, w, _ = rad.shape
        if min(rad.shape) == 0:
            self._fail(f"'radiance' is empty, shape {rad.shape}")
        self.wo_dirs = self._directions("wo_dirs", n_wo)
        self.wi_dirs = self._directions("wi_dirs", n_wi)
        split = f["split"][()]
        if split.shape != (n_wo, n_wi):
            self._fail(f"'split' has shape {split.shape}, expected (n_wo, n_wi) = {(n_wo, n_wi)}")
        bad = np.setdiff1d(np.unique(split), (0, 1))
        if bad.size:
            self._fail(f"'split' may hold only 0 (training) and 1 (held-out), found {int(bad[0])}")
        self.split = split.astype(np.uint8)
        self.n_levels = level_count(h, w)
        self.has_pyramid = "pyramid" in f
        if self.has_pyramid:
            for k in range(1, self.n_levels):
                key = f"pyramid/{k}"
                if key not in f:
                    self._fail(f"pyramid is incomplete: missing level {k} of 1..{self.n_levels - 1}")
                if not isinstance(f[key], h5py.Dataset):
                    self._fail(f"'{key}' is not a dataset")
                want = (n_wo, n_wi, h >> k, w >> k, 3)
                if f[key].shape != want:
                    self._fail(f"'{key}' has shape {f[key].shape}, expected {want}")
        if "svbrdf" in f:
            for name in f["svbrdf"]:
                shape = f[f"svbrdf/{name}"].shape
                if name not in SVBRDF_MAPS or shape[:2] != (h, w):
                    self._fail(f"'svbrdf/{name}' is unknown or has shape {shape}, not ({h}, {w}, ...)")
        self._check_values(full_check, check_pyramid)
        if self.has_pyramid and check_pyramid:
            self._check_pyramid(full_check)

    def _directions(self, name: str, n: int) -> np.ndarray:
        d = self._f[name][()].astype(np.float64)
        if d.shape != (n, 3):
            self._fail(f"'{name}' has shape {d.shape}, expected ({n}, 3) to match 'radiance'")
        if not np.isfinite(d).all():
            self._fail(f"'{name}' has NaN or infinite values")
        norms = np.linalg.norm(d, axis=1)
        bad = np.nonzero(np.abs(norms - 1.0) > _UNIT_TOL)[0]
        if bad.size:
            self._fail(f"'{name}'[{bad[0]}] is not a unit vector (length {norms[bad[0]]:.4f})")
        below = np.nonzero(d[:, 2] <= 0)[0]
        if below.size:
            self._fail(f"'{name}'[{below[0]}] = {d[below[0]].round(4).tolist()} is below the horizon")
        return d

    def _sample_pairs(self) -> list[tuple[int, int]]:
        n_wo, n_wi = self.split.shape
        rng = np.random.default_rng(0)
        pairs = {(0, 0), (n_wo - 1, n_wi - 1)}
        for _ in range(_SAMPLE_IMAGES):
            pairs.add((int(rng.integers(n_wo)), int(rng.integers(n_wi))))
        return sorted(pairs)

    def _check_images(self, name: str, data: np.ndarray, i: int, j: int | None = None) -> None:
        """Values must be finite and non-negative (radiance): either breaks training. data is one
        view (n_wi, H, W, 3) when j is None, else one image; the message names the (wo, wi) pair."""
        per_image = data.reshape(data.shape[0], -1) if j is None else data.reshape(1, -1)
        finite = np.isfinite(per_image).all(axis=1)
        negative = (np.where(np.isfinite(per_image), per_image, 0) < 0).any(axis=1)
        for bad, problem in ((~finite, "has NaN or infinite values"), (negative, "has negative values")):
            if bad.any():
                jj = int(np.nonzero(bad)[0][0]) if j is None else j
                extra = ""
                if problem.startswith("has negative"):
                    img = per_image[int(np.nonzero(bad)[0][0])]
                    extra = f" (min {float(img.min()):.4g}); radiance must be >= 0"
                self._fail(f"'{name}'[{i}, {jj}] {problem}{extra}")

    def _check_values(self, full_check: bool, check_pyramid: bool) -> None:
        """Every image of level 0 and the pyramid when the file is small or ``full_check``,
        a sample of images otherwise; a full check also measures the values' statistics."""
        names = ["radiance"] + ([f"pyramid/{k}" for k in range(1, self.n_levels)]
                                if self.has_pyramid and check_pyramid else [])
        rad = self._f["radiance"]
        everything = full_check or rad.size * rad.dtype.itemsize <= FULL_CHECK_BYTES
        for name in names:
            ds = self._f[name]
            if everything:
                lo, hi, total = math.inf, -math.inf, 0.0
                for i in range(ds.shape[0]):
                    view = ds[i]
                    self._check_images(name, view, i)
                    if name == "radiance":
                        lo, hi = min(lo, float(view.min())), max(hi, float(view.max()))
                        total += float(view.astype(np.float64).sum())
                if name == "radiance":
                    self.value_stats = (lo, hi, total / rad.size)
            else:
                for i, j in self._sample_pairs():
                    self._check_images(name, ds[i, j], i, j)

    def _check_pyramid(self, full_check: bool) -> None:
        """The pyramid is the filter of level 0: on two sample images, or on every image."""
        kind = self.filter
        tol = 2e-3 if self._f["radiance"].dtype == np.float16 else 1e-5
        if full_check:
            pairs = [(i, j) for i in range(self.split.shape[0]) for j in range(self.split.shape[1])]
        else:
            pairs = self._sample_pairs()[:2]
        for i, j in pairs:
            base = self.image(i, j).astype(np.float64)
            want = filtered_pyramid(base, kind, self.sigma_scale)
            for k, ref in enumerate(want, start=1):
                got = self.image(i, j, k)
                scale = max(float(np.abs(ref).max()), 1e-6)
                if not np.allclose(got, ref, rtol=tol, atol=tol * scale):
                    err = float(np.abs(got - ref).max())
                    self._fail(
                        f"'pyramid/{k}'[{i}, {j}] does not match the {kind} filter of level 0 "
                        f"(max abs error {err:.3g}); btf-pyramid FILE rewrites it"
                    )

    # -- access -------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._f.attrs)

    @property
    def name(self) -> str:
        return str(self._f.attrs.get("name", self.path.stem))

    @property
    def filter(self) -> str:
        return str(self._f.attrs.get("filter", "box"))

    @property
    def sigma_scale(self) -> float:
        return float(self._f.attrs.get("sigma_scale", 0.5))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(n_wo, n_wi, H, W) of level 0."""
        return tuple(self._f["radiance"].shape[:4])  # type: ignore[return-value]

    def resolution(self, level: int = 0) -> tuple[int, int]:
        h, w = self.shape[2:]
        return h >> level, w >> level

    def level(self, k: int) -> h5py.Dataset:
        """The lazy dataset of level k: (n_wo, n_wi, H / 2^k, W / 2^k, 3)."""
        if k == 0:
            return self._f["radiance"]
        if not self.has_pyramid:
            raise BTFFormatError(self.path, "has no pyramid; run `btf-pyramid` on it first")
        if not 0 < k < self.n_levels:
            raise IndexError(f"level {k} out of range 0..{self.n_levels - 1}")
        return self._f[f"pyramid/{k}"]

    def image(self, i_wo: int, i_wi: int, level: int = 0) -> np.ndarray:
        """One image (H_k, W_k, 3) float32."""
        return self._read(level, (i_wo, i_wi), f"image (view {i_wo}, light {i_wi})")

    def view(self, i_wo: int, level: int = 0) -> np.ndarray:
        """All light directions of one view: (n_wi, H_k, W_k, 3) float32."""
        return self._read(level, (i_wo,), f"view {i_wo}")

    def _read(self, level: int, index: tuple[int, ...], what: str) -> np.ndarray:
        """A read of level ``level`` as float32; a damaged chunk (h5py's OSError, e.g. a failed
        decompression) is refused naming this file, what was read and the level, wherever it
        happens (a training run reads images long after it opened the file)."""
        ds = self.level(level)
        try:
            return ds[index].astype(np.float32)
        except OSError as e:
            raise BTFFormatError(self.path, f"cannot read {what} of level {level}: "
                                 f"{str(e).splitlines()[0]}") from None

    def pairs(self, subset: str = "train") -> np.ndarray:
        """(P, 2) int64 (i_wo, i_wi) of the ``train``, ``held_out`` or ``all`` pairs."""
        if subset == "all":
            mask = np.ones_like(self.split, dtype=bool)
        elif subset in ("train", "held_out"):
            mask = self.split == (0 if subset == "train" else 1)
        else:
            raise ValueError(f"subset must be 'train', 'held_out' or 'all', got {subset!r}")
        return np.argwhere(mask).astype(np.int64)

    @property
    def svbrdf_names(self) -> list[str]:
        """Names of the stored SVBRDF maps (empty for a measured material)."""
        return sorted(self._f["svbrdf"]) if "svbrdf" in self._f else []

    def svbrdf(self) -> SVBRDFMaps | None:
        """The SVBRDF maps the material was made from, or None for a measured material."""
        if "svbrdf" not in self._f:
            return None
        g = self._f["svbrdf"]
        missing = [m for m in SVBRDF_MAPS if m not in g]
        if missing:
            raise BTFFormatError(self.path, f"svbrdf group lacks maps {missing}")
        return SVBRDFMaps(**{m: g[m][()] for m in SVBRDF_MAPS})

    @property
    def nbytes_on_disk(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> BTFFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BTFWriter:
    """Write a BTF file view by view; it appears under its final name only when complete.

    Use as a context manager: ``write`` every image (its pyramid levels are filtered and
    written with it), and on a clean exit the attributes are finalised and the temporary file is
    renamed to ``path``. An exception, or a view never written, leaves no file at ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        wo_dirs: np.ndarray,
        wi_dirs: np.ndarray,
        resolution: tuple[int, int],
        split: np.ndarray,
        name: str,
        source: str,
        filter: str = "box",
        sigma_scale: float = 0.5,
        dtype: str = "float16",
        compression: str | None = "gzip",
        svbrdf: SVBRDFMaps | None = None,
        texel_size_mm: float = float("nan"),
        config: dict | None = None,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
        if filter not in ("box", "gaussian"):
            raise ValueError(f"filter must be 'box' or 'gaussian', got {filter!r}")
        self.path = Path(path)
        self.wo_dirs = np.asarray(wo_dirs, dtype=np.float32)
        self.wi_dirs = np.asarray(wi_dirs, dtype=np.float32)
        self.resolution = tuple(resolution)
        self.split = np.asarray(split, dtype=np.uint8)
        self.filter = filter
        self.sigma_scale = sigma_scale
        self.dtype = _DTYPES[dtype]
        self.compression = compression
        self.attrs = dict(
            format_version=FORMAT_VERSION,
            name=name,
            source=source,
            filter=filter,
            sigma_scale=sigma_scale,
            texel_size_mm=texel_size_mm,
            config=json.dumps(config or {}),
        )
        self.svbrdf = svbrdf
        self.stats = FileStats()
        self._written = np.zeros((len(self.wo_dirs), len(self.wi_dirs)), dtype=bool)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> BTFWriter:
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._f = self._stack.enter_context(h5py.File(tmp, "w"))
        n_wo, n_wi = len(self.wo_dirs), len(self.wi_dirs)
        h, w = self.resolution
        self._f["wo_dirs"] = self.wo_dirs
        self._f["wi_dirs"] = self.wi_dirs
        self._f["split"] = self.split
        self._levels = [self._image_dataset("radiance", n_wo, n_wi, h, w)]
        for k in range(1, level_count(h, w)):
            self._levels.append(self._image_dataset(f"pyramid/{k}", n_wo, n_wi, h >> k, w >> k))
        if self.svbrdf is not None:
            for m in SVBRDF_MAPS:
                self._f.create_dataset(f"svbrdf/{m}", data=getattr(self.svbrdf, m))
        return self

    def _image_dataset(self, name: str, n_wo: int, n_wi: int, h: int, w: int) -> h5py.Dataset:
        return self._f.create_dataset(
            name, shape=(n_wo, n_wi, h, w, 3), dtype=self.dtype, chunks=(1, 1, h, w, 3),
            **compression_options(self.compression),
        )

    def write(self, i_wo: int, images: np.ndarray, wi_start: int = 0) -> None:
        """Write images (n, H, W, 3) of level 0 for view i_wo and lights [wi_start, wi_start + n);
        their pyramid levels are filtered and written with them."""
        n = images.shape[0] if images.ndim == 4 else -1
        want = (n, *self.resolution, 3)
        if images.ndim != 4 or images.shape != want or wi_start + n > len(self.wi_dirs):
            raise ValueError(
                f"view {i_wo}: images have shape {images.shape}, expected (n, {self.resolution[0]}, "
                f"{self.resolution[1]}, 3) with wi_start + n <= {len(self.wi_dirs)}"
            )
        if not np.isfinite(images).all():
            raise ValueError(f"view {i_wo}: images have NaN or infinite values")
        sel = np.s_[i_wo, wi_start : wi_start + n]
        self.stats.add(images)
        self._levels[0][sel] = images.astype(self.dtype)
        for k, lvl in enumerate(filtered_pyramid(images, self.filter, self.sigma_scale), start=1):
            self._levels[k][sel] = lvl.astype(self.dtype)
        self._written[sel] = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            missing = np.argwhere(~self._written)
            if len(missing):
                err = ValueError(
                    f"{self.path}: {len(missing)} images were never written, first (wo, wi) = "
                    f"{tuple(missing[0].tolist())}"
                )
                self._stack.__exit__(type(err), err, None)
                raise err
            self.attrs.update(
                value_min=self.stats.lo,
                value_max=self.stats.hi,
                value_mean=self.stats.total / max(self.stats.count, 1),
            )
            self._f.attrs.update(self.attrs)
        self._stack.__exit__(exc_type, exc, tb)


FINGERPRINT_BYTES = 64 * 2**20


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's size and first 64 MiB: tells a checkpoint's data file from another one
    in well under a second, whatever the file's size."""
    path = Path(path)
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(FINGERPRINT_BYTES))
    return h.hexdigest()


def rewrite_pyramid(path: str | Path, kind: str = "box", sigma_scale: float = 0.5) -> None:
    """Recompute ``pyramid/<k>`` of an existing file with the given filter.

    Works on a copy that replaces the file only when complete, so an interruption leaves the
    original untouched.
    """
    path = Path(path)
    with BTFFile(path, check_pyramid=False) as src:  # the old pyramid may be what is broken
        n_wo = src.shape[0]
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            if "pyramid" in f:
                del f["pyramid"]
            rad = f["radiance"]
            _, n_wi, h, w, _ = rad.shape
            chunks_opts = dict(dtype=rad.dtype, **compression_options(rad.compression))
            levels = [
                f.create_dataset(
                    f"pyramid/{k}", shape=(n_wo, n_wi, h >> k, w >> k, 3),
                    chunks=(1, 1, h >> k, w >> k, 3), **chunks_opts,
                )
                for k in range(1, level_count(h, w))
            ]
            for i in range(n_wo):
                for k, lvl in enumerate(filtered_pyramid(rad[i], kind, sigma_scale)):
                    levels[k][i] = lvl.astype(rad.dtype)
            f.attrs["filter"] = kind
            f.attrs["sigma_scale"] = sigma_scale
