"""Read Bonn UBO2014 BTF files (``FMF1``, SVD-compressed) with numpy through a memory map.

The file holds, after a header and the direction lists, a left matrix U (rows: view x light x
channel, columns: components) and a right matrix SxV (rows: pixels, columns: components) whose
product is the BTF; with dynamic-range reduction (DRR) the product is log(value + 1e-5). The
layout follows the Free BTF Library (btf.hh, MIT) by Zdravko Velinov; this is an independent
numpy implementation of the same format.

Byte layout (little-endian):
  '!' 'FMF1' '2FCE' ['R' if rotations follow]
  header: uint32 size, uint32 version, char[80] x 3, float32 ppmm, float32[3] rgb,
          [version > 1: uint32 cosine_flag] [version > 2: uint32 n, char[n] xml]
          [version > 3: uint32 n_channels, then per channel uint32 n, char[n] name]
          (``size`` counts these header bytes from ``size`` itself)
  uint32 n_views; per view: float32 theta, phi (radians), uint32 n_lights,
          float32[n_lights][2] light theta, phi (the same list for every view)
  uint32 width, height; [rotations: uint32 n, float32[n][9]]
  uint8 ext_version; [>= 1: uint32 drr] [>= 2: uint32 hw, hh, uint16[hh * hw] height map]
  uint32 n_comp0; uint8 scalar_size (2, 4 or 8); uint32 n_comp1; uint32 rows, columns
  scalar[n_comp] singular values (already folded into SxV)
  scalar[rows][n_comp] U, rows = n_views * n_lights * n_channels, row = (view * n_lights + light)
                        * n_channels + channel
  scalar[columns][n_comp] SxV, columns = width * height, stored bottom row first
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from btf_data.directions import spherical_to_cartesian
from btf_data.errors import UBOFormatError

DRR_EPS = 1e-5
_SCALARS = {2: np.float16, 4: np.float32, 8: np.float64}
_COMMON_HEADER = struct.Struct("<II80s80s80sf3f")


@dataclass
class FMF1Header:
    """What the FMF1 header says, plus the byte offsets of the matrices."""

    version: int
    measurement_setup: str
    ppmm: float
    cosine_flag: bool
    channels: list[str]
    views: np.ndarray  # (n_views, 3) unit vectors
    lights: np.ndarray  # (n_lights, 3) unit vectors
    width: int
    height: int
    drr: bool
    scalar_size: int
    n_components: int
    u_offset: int
    sxv_offset: int


class _Cursor:
    """Sequential little-endian reads over a byte buffer, with errors naming the file."""

    def __init__(self, buf: np.ndarray, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise UBOFormatError(
                self.path,
                f"truncated: needs {n} bytes for {what} at offset {self.pos}, "
                f"file has {len(self.buf)}",
            )
        out = self.buf[self.pos : self.pos + n].tobytes()
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def f32(self, n: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * n, what), dtype="<f4").astype(np.float64)


def _angles_to_dirs(angles: np.ndarray) -> np.ndarray:
    return spherical_to_cartesian(angles[:, 0], angles[:, 1])


def parse_header(buf: np.ndarray, path: Path) -> FMF1Header:
    """Parse and check an FMF1 header; the matrices are located, not read."""
    c = _Cursor(buf, path)
    if c.take(1, "signature") != b"!" or c.take(4, "signature") != b"FMF1":
        raise UBOFormatError(path, "not a UBO2014 FMF1 file (bad signature)")
    if c.take(4, "signature") != b"2FCE":
        raise UBOFormatError(path, "not a UBO2014 FMF1 file (bad signature suffix)")
    rotations = False
    if c.pos < len(buf) and buf[c.pos] == ord("R"):
        rotations = True
        c.pos += 1
    start = c.pos
    size, version, setup, _sensor, _light, ppmm, *_rgb = _COMMON_HEADER.unpack(
        c.take(_COMMON_HEADER.size, "common header")
    )
    cosine = bool(c.u32("cosine flag")) if version > 1 else False
    if version > 2:
        c.take(c.u32("xml length"), "xml")
    channels = ["R", "G", "B"]
    if version > 3:
        n_ch = c.u32("channel count")
        if n_ch > 16:
            raise UBOFormatError(path, f"corrupted header: {n_ch} channels")
        channels = [c.take(c.u32("channel name length"), "channel name").decode("latin-1")
                    for _ in range(n_ch)]
    if c.pos - start != size:
        raise UBOFormatError(path, f"header size field says {size} bytes, read {c.pos - start}")
    if len(channels) != 3:
        raise UBOFormatError(path, f"only 3-channel (RGB) BTFs are supported, file has {channels}")
    n_views = c.u32("view count")
    if not 0 < n_views < 100_000:
        raise UBOFormatError(path, f"corrupted header: {n_views} views")
    views = np.zeros((n_views, 2))
    lights = None
    for v in range(n_views):
        views[v] = c.f32(2, f"view {v} angles")
        n_lights = c.u32(f"light count of view {v}")
        if lights is None:
            if not 0 < n_lights < 100_000:
                raise UBOFormatError(path, f"corrupted header: {n_lights} lights")
            lights = c.f32(2 * n_lights, "light angles").reshape(n_lights, 2)
        elif n_lights != len(lights):
            raise UBOFormatError(path, f"view {v} has {n_lights} lights, view 0 has {len(lights)}")
        else:
            c.take(8 * n_lights, f"light angles of view {v}")
    width, height = c.u32("width"), c.u32("height")
    if rotations:
        c.take(36 * c.u32("rotation count"), "rotations")
    ext = c.u8("extended header version")
    if ext >= 3:
        raise UBOFormatError(path, f"unsupported FMF1 extended header version {ext}")
    drr = bool(c.u32("DRR flag")) if ext >= 1 else False
    if ext >= 2:
        hw, hh = c.u32("height map width"), c.u32("height map height")
        c.take(2 * hw * hh, "height map")
    n0 = c.u32("component count")
    scalar = c.u8("scalar size")
    n1 = c.u32("component count")
    if scalar not in _SCALARS:
        raise UBOFormatError(path, f"unsupported scalar size {scalar} (expected 2, 4 or 8)")
    n_comp = max(1, min(n0, n1))
    rows, cols = c.u32("row count"), c.u32("column count")
    if rows != n_views * len(lights) * 3:
        raise UBOFormatError(
            path, f"U has {rows} rows, expected views x lights x 3 = {n_views * len(lights) * 3}"
        )
    if cols != width * height:
        raise UBOFormatError(path, f"SxV has {cols} rows, expected width x height = {width * height}")
    c.take(n_comp * scalar, "singular values")
    u_offset = c.pos
    sxv_offset = u_offset + rows * n_comp * scalar
    end = sxv_offset + cols * n_comp * scalar
    if end != len(buf):
        what = "truncated" if end > len(buf) else "has trailing bytes"
        raise UBOFormatError(path, f"{what}: matrices end at byte {end}, file has {len(buf)} bytes")
    dirs = {}
    for name, ang in (("view", views), ("light", lights)):
        d = _angles_to_dirs(ang)
        if not np.isfinite(d).all() or (d[:, 2] <= 0).any():
            raise UBOFormatError(path, f"a {name} direction is NaN or below the horizon")
        dirs[name] = d
    return FMF1Header(
        version=version,
        measurement_setup=setup.split(b"\0")[0].decode("latin-1"),
        ppmm=float(ppmm),
        cosine_flag=cosine,
        channels=channels,
        views=dirs["view"],
        lights=dirs["light"],
        width=width,
        height=height,
        drr=drr,
        scalar_size=scalar,
        n_components=n_comp,
        u_offset=u_offset,
        sxv_offset=sxv_offset,
    )


class UBO2014Reader:
    """An FMF1 file, memory-mapped: images are reconstructed on demand, a few lights at a time.

    Memory: U is tiny; SxV is converted to float32 once if it fits ``cache_bytes``, else it is
    streamed from the memory map for every request. Nothing else is held.
    """

    def __init__(self, path: str | Path, cache_bytes: int = 2 * 2**30) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UBOFormatError(self.path, "no such file")
        size = self.path.stat().st_size
        if size < 9:
            raise UBOFormatError(self.path, f"truncated: {size} bytes, not even a signature")
        self._buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        self.header = parse_header(self._buf, self.path)
        hd = self.header
        dt = np.dtype(_SCALARS[hd.scalar_size]).newbyteorder("<")
        n_rows = len(hd.views) * len(hd.lights) * 3
        self._u = np.ndarray((n_rows, hd.n_components), dt, self._buf, hd.u_offset)
        self._sxv = np.ndarray((hd.width * hd.height, hd.n_components), dt, self._buf, hd.sxv_offset)
        self._sxv_t: np.ndarray | None = None
        if hd.width * hd.height * hd.n_components * 4 <= cache_bytes:
            self._sxv_t = np.ascontiguousarray(self._sxv.astype(np.float32).T)
            if not np.isfinite(self._sxv_t).all():
                raise UBOFormatError(self.path, "SxV matrix has NaN or infinite values")

    @property
    def n_views(self) -> int:
        return len(self.header.views)

    @property
    def n_lights(self) -> int:
        return len(self.header.lights)

    def images(self, view: int, light_start: int, light_stop: int) -> np.ndarray:
        """Images of one view for lights [light_start, light_stop): (n, H, W, 3) float32,
        BRDF-like (DRR undone; divided by cos(theta_i) when the file's cosine flag is set)."""
        hd = self.header
        n_l = self.n_lights
        r0 = (view * n_l + light_start) * 3
        r1 = (view * n_l + light_stop) * 3
        u = self._u[r0:r1].astype(np.float32)
        if not np.isfinite(u).all():
            raise UBOFormatError(self.path, f"U matrix has NaN or infinite values (view {view})")
        sxv_t = self._sxv_t if self._sxv_t is not None else self._sxv.astype(np.float32).T
        flat = u @ sxv_t  # (n * 3, H * W)
        n = light_stop - light_start
        img = flat.reshape(n, 3, hd.height, hd.width).transpose(0, 2, 3, 1)[:, ::-1]
        if hd.drr:
            img = np.exp(img) - DRR_EPS
        if hd.cosine_flag:
            img = img / hd.lights[light_start:light_stop, 2].astype(np.float32)[:, None, None, None]
        return np.ascontiguousarray(img, dtype=np.float32)
