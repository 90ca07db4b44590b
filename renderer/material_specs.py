"""One place that opens materials: a spec string names any material of the project, and the
render command, the evaluation suite and Mitsuba all open theirs here.

| spec | material |
|---|---|
| ``neumip:CKPT`` | a trained NeuMIP checkpoint |
| ``measured:FILE.h5`` | the BTF file itself, nearest captured directions, its box pyramid |
| ``measured_interp:FILE.h5`` | the file's training pairs interpolated across directions (a baseline) |
| ``svbrdf:FILE.h5`` | the exact level-0 SVBRDF of a synthetic material (the reference's) |
| ``<method>:FILE.h5`` | an SVBRDF mipmapping baseline (naive, gaussian, toksvig, lean, mipnet, fit) |
| ``constant:R,G,B`` | the same BTF value everywhere |

``reference_material(btf)`` is what every image is measured against: the level-0 SVBRDF where
the file has its maps, else the measured BTF (read at lod 0 by the caller).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from btf_data.btf_file import BTFFile
from renderer.baselines import METHODS as SVBRDF_METHODS
from renderer.baselines import BaselineConfig, SVBRDFPyramidMaterial, build_pyramid
from renderer.materials import (
    ConstantMaterial,
    Material,
    MeasuredBTFMaterial,
    MeasuredInterpMaterial,
    NeuMIPMaterial,
    SVBRDFMaterial,
)

Device = str | torch.device


def _constant(arg: str, device: Device, baselines: BaselineConfig) -> Material:
    try:
        rgb = tuple(float(x) for x in arg.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(math.isfinite(x) and x >= 0 for x in rgb):
        raise ValueError(f"material spec 'constant:{arg}': needs three finite numbers >= 0, "
                         "e.g. constant:0.3,0.3,0.3")
    return ConstantMaterial(rgb)  # type: ignore[arg-type]


def _neumip(arg: str, device: Device, baselines: BaselineConfig) -> Material:
    return NeuMIPMaterial(arg, device)


def _measured(arg: str, device: Device, baselines: BaselineConfig) -> Material:
    return MeasuredBTFMaterial(arg, device)


def _measured_interp(arg: str, device: Device, baselines: BaselineConfig) -> Material:
    return MeasuredInterpMaterial(arg, device)


def _svbrdf(arg: str, device: Device, baselines: BaselineConfig) -> Material:
    return SVBRDFMaterial.from_file(arg, device)


def _baseline(method: str) -> Callable[[str, Device, BaselineConfig], Material]:
    def open_baseline(arg: str, device: Device, baselines: BaselineConfig) -> Material:
        with BTFFile(arg) as btf:
            maps = btf.svbrdf()
        if maps is None:
            raise ValueError(f"{arg}: method {method} needs the SVBRDF maps of a synthetic material; "
                             "this file is a measured BTF")
        return SVBRDFPyramidMaterial(build_pyramid(method, maps, baselines), device)

    return open_baseline


#: Each spec kind and what opens it: ``opener(argument, device, baseline options)``.
OPENERS: dict[str, Callable[[str, Device, BaselineConfig], Material]] = {
    "neumip": _neumip,
    "measured": _measured,
    "measured_interp": _measured_interp,
    "svbrdf": _svbrdf,
    **{m: _baseline(m) for m in SVBRDF_METHODS},
    "constant": _constant,
}


def open_material(spec: str, device: Device = "cpu", baselines: BaselineConfig | None = None) -> Material:
    """The material a spec names (module docstring). ``baselines``: the SVBRDF methods' options."""
    kind, sep, arg = spec.partition(":")
    if kind not in OPENERS or not sep or not arg:
        raise ValueError(f"material spec {spec!r}: expected KIND:ARG with KIND one of "
                         f"{', '.join(OPENERS)} (neumip:CKPT, lean:FILE.h5, constant:R,G,B)")
    return OPENERS[kind](arg, device, baselines or BaselineConfig())


def reference_material(btf: str | Path, device: Device = "cpu") -> Material:
    """The ground truth images are measured against: the level-0 SVBRDF of a synthetic
    material, else the measured BTF."""
    with BTFFile(btf) as f:
        synthetic = bool(f.svbrdf_names)
    return open_material(f"{'svbrdf' if synthetic else 'measured'}:{btf}", device)
