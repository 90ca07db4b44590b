"""Test-side writer of UBO2014 FMF1 files, mirroring the layout documented in
btf_data/ubo2014.py, so the reader can be checked on files made here."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_fmf1(
    path: Path,
    btf: np.ndarray,
    view_angles: np.ndarray,
    light_angles: np.ndarray,
    scalar: type = np.float32,
    drr: bool = False,
    components: int | None = None,
    header_version: int = 4,
    ppmm: float = 10.0,
) -> None:
    """Write btf (n_views, n_lights, H, W, 3) (rows top first) as an SVD-compressed FMF1 file.

    view_angles, light_angles: (n, 2) (theta, phi) in radians. With drr the SVD compresses
    log(value + 1e-5). ``components`` truncates the SVD (None: full rank).
    """
    n_v, n_l, h, w, c = btf.shape
    data = np.log(btf.astype(np.float64) + 1e-5) if drr else btf.astype(np.float64)
    data = data[:, :, ::-1]  # the file stores the bottom row first
    # rows: (view, light, channel); columns: pixels
    m = data.transpose(0, 1, 4, 2, 3).reshape(n_v * n_l * c, h * w)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    k = components or len(s)
    u, s, vt = u[:, :k], s[:k], vt[:k]
    sxv = (s[:, None] * vt).T  # (pixels, k)
    out = bytearray(b"!FMF12FCE")
    body = bytearray()
    body += struct.pack("<80s80s80sf3f", b"test setup", b"sensor", b"light", ppmm, 1, 1, 1)
    if header_version > 1:
        body += struct.pack("<I", 0)  # cosine flag
    if header_version > 2:
        xml = b"<btf/>"
        body += struct.pack("<I", len(xml)) + xml
    if header_version > 3:
        body += struct.pack("<I", 3)
        for name in (b"R", b"G", b"B"):
            body += struct.pack("<I", len(name)) + name
    out += struct.pack("<II", 8 + len(body), header_version) + body
    out += struct.pack("<I", n_v)
    for v in range(n_v):
        out += struct.pack("<ff", *view_angles[v]) + struct.pack("<I", n_l)
        out += light_angles.astype("<f4").tobytes()
    out += struct.pack("<II", w, h)
    out += struct.pack("<B", 1) + struct.pack("<I", int(drr))
    out += struct.pack("<I", k) + struct.pack("<B", np.dtype(scalar).itemsize) + struct.pack("<I", k)
    out += struct.pack("<II", m.shape[0], m.shape[1])
    dt = np.dtype(scalar).newbyteorder("<")
    out += s.astype(dt).tobytes()
    out += u.astype(dt).tobytes()
    out += sxv.astype(dt).tobytes()
    Path(path).write_bytes(bytes(out))
