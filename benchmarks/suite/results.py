"""The suite's results as types: what each cell returns, what ``results.json`` holds and what the
report renders. Every result converts to plain JSON (``to_json``) and back (``from_json``); the
JSON shape is the file format of the cells (``cells/.../result.json``) and of ``results.json``:

    materials.<name>.methods.<method>:  {"empty": why} | {"error": what, "seconds": s}
                                        | {"seeds": {"<seed>": NeuMIP run or error}} | SVBRDF run
    images.<name>:                      image comparison or error
    speed.<device>:                     gemm, bandwidth, queries, training, frames (each may be an error)
    exports.<name>.<method>:            a viewer export's bytes and held-out PSNR per precision, or error

A field that a file written by an older version lacks takes its default here, so old cells and old
results files still read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neumip.evaluate import LevelScore, psnr


@dataclass
class Empty:
    """A cell left empty by design (a method that does not apply), with the reason."""

    reason: str


@dataclass
class Failed:
    """A cell whose computation raised: the one-line error; its traceback is in the cell folder."""

    error: str
    seconds: float = 0.0


@dataclass(kw_only=True)
class CellRun:
    """What every finished cell records besides its numbers."""

    seconds: float = 0.0
    """The cell's own compute time (whichever run made it)."""
    reused: bool = False
    """Read back from an earlier run's cell instead of computed now."""
    revision: str | None = None
    """The git revision of the code that computed it (None: recorded by an older version)."""
    data_fingerprint: str | None = None
    """The fingerprint of the data file it was computed from."""
    code_fingerprint: str | None = None
    """A hash of the code it depends on (its modules' syntax trees without docstrings): a cell is
    recomputed when this code changes, not when a comment does."""


@dataclass(kw_only=True)
class QualityRun(CellRun):
    """Per-level held-out scores of one method on one material, and the representation's size."""

    levels: list[LevelScore]
    params: int = 0
    bytes_fp32: int = 0
    bytes_fp16: int = 0


@dataclass(kw_only=True)
class NeuMIPRun(QualityRun):
    """One trained NeuMIP cell (one seed)."""

    train_seconds: float
    train_qps: float
    checkpoint: str
    minutes_to_30db_l0: float | None = None
    model: dict[str, Any] | None = None
    """The architecture trained (the model config without its backend); None in old cells."""
    train_levels: list[LevelScore] | None = None
    """The same scores on training pairs (as many as the held-out ones, spread evenly over them):
    beside ``levels``, the generalisation gap. None in cells of older versions."""


@dataclass(kw_only=True)
class SVBRDFRun(QualityRun):
    """One SVBRDF baseline's pyramid, built from the file's maps."""

    build_seconds: float


@dataclass
class SeedRuns:
    """A NeuMIP method's cells on one material, by seed."""

    runs: dict[str, NeuMIPRun | Failed]

    @property
    def finished(self) -> list[NeuMIPRun]:
        return [r for r in self.runs.values() if isinstance(r, NeuMIPRun)]


MethodResult = Empty | Failed | SVBRDFRun | SeedRuns


def finished_runs(m: MethodResult) -> list[QualityRun]:
    """The finished runs behind one method's entry: its seeds, or its one SVBRDF run."""
    if isinstance(m, SeedRuns):
        return list(m.finished)
    return [m] if isinstance(m, SVBRDFRun) else []


def mean_levels(m: MethodResult) -> tuple[list[float] | None, str]:
    """(PSNR per level, note) of a method's entry: the PSNR of the seeds' mean MSE for NeuMIP
    methods; None with the reason when the cell is empty or failed."""
    if isinstance(m, Empty):
        return None, m.reason
    if isinstance(m, Failed):
        return None, f"failed: {m.error}"
    if isinstance(m, SVBRDFRun):
        return [s.psnr for s in m.levels], ""
    ok = m.finished
    if not ok:
        errors = "; ".join(r.error for r in m.runs.values() if isinstance(r, Failed)) or "?"
        return None, f"failed: {errors}"
    n = len(ok[0].levels)
    mse = [float(np.mean([r.levels[k].mse_tonemapped for r in ok])) for k in range(n)]
    return [psnr(v) for v in mse], f"mean of {len(ok)} seed{'s' if len(ok) > 1 else ''}"


@dataclass
class MaterialResult:
    """One material of the suite and every method's entry on it."""

    family: str
    path: str
    btf_bytes: int
    file_bytes: int
    methods: dict[str, MethodResult] = field(default_factory=dict)


@dataclass
class FrameScore:
    """One rendered frame against the reference."""

    psnr: float
    flip: float
    ms: float


@dataclass(kw_only=True)
class ImageRun(CellRun):
    """One material's plane scene rendered by every method beside the reference."""

    reference_spp: int
    reference_seconds: float
    reference_noise_psnr: float
    reference_noise_flip: float
    methods: dict[str, dict[str, FrameScore] | Empty]
    """Per method, a frame score per lod mode (``max``, ``aniso``)."""
    sheet: str
    mean_abs_reference: float


@dataclass(kw_only=True)
class ExportRun(CellRun):
    """One NeuMIP checkpoint exported for the viewer (``neumip-export``) at every precision."""

    method: str
    checkpoint_bytes: int
    export_bytes: dict[str, int]
    """Bytes of the export folder per precision (fp16, int8, fp32)."""
    held_out: dict[str, list[float]]
    """Held-out PSNR per level per precision, through the torch model with the export's rounding."""

    def largest_loss(self, precision: str) -> float:
        """The largest drop of a level's PSNR against fp32 (dB)."""
        return max(a - b for a, b in zip(self.held_out["fp32"], self.held_out[precision], strict=True))


@dataclass
class QueryRow:
    """Decoder and whole-query throughput of one architecture and backend, beside its bounds."""

    method: str
    backend: str
    device: str
    decoder_qps: float
    query_qps: float
    decoder_flops: int
    query_flops: int
    decoder_bound_fp32: float
    decoder_bound_bf16: float
    query_bound_fp32: float
    query_bound_bf16: float
    query_bytes: int | None = None
    query_bound_bandwidth: float = float("nan")


@dataclass
class TrainRow:
    batch: int
    device: str
    train_qps: float


@dataclass
class FrameRow:
    """One plane frame with a NeuMIP material, and its parts."""

    width: int
    height: int
    lod_mode: str
    device: str
    ms: float
    intersect_ms: float
    material_ms: float
    shade_ms: float


@dataclass
class DeviceSpeed:
    """Speed on one device; a part that raised is a :class:`Failed`, one not run is None."""

    gemm: dict[str, float] | Failed | None = None
    """GFLOP/s of a 2048^3 product: ``fp32``, ``bf16``."""
    bandwidth: float | Failed | None = None
    """GB/s of a large copy."""
    queries: list[QueryRow] | Failed | None = None
    training: list[TrainRow] | Failed | None = None
    frames: list[FrameRow] | Failed | None = None


@dataclass
class SuiteResults:
    """Everything one ``neumip-bench`` run reports."""

    suite: dict[str, Any]
    """The suite's config as run (``SuiteConfig`` as a dict)."""
    machine: dict[str, Any]
    revision: str
    command: str
    date: str
    materials: dict[str, MaterialResult] = field(default_factory=dict)
    images: dict[str, ImageRun | Failed] = field(default_factory=dict)
    speed: dict[str, DeviceSpeed] = field(default_factory=dict)
    exports: dict[str, dict[str, ExportRun | Failed]] = field(default_factory=dict)
    """Per material, per NeuMIP method: its first seed's checkpoint exported for the viewer."""
    seconds: float = 0.0
    rerendered: str | None = None
    """Set when the report was rendered again from a kept results.json (``report_from``): the
    revision that rendered it and the file; None for a report written by the run itself."""


# -- JSON ----------------------------------------------------------------------------------------

def to_json(x: Any) -> Any:
    """Plain JSON values of any result (the tagged forms of the module docstring)."""
    if isinstance(x, Empty):
        return {"empty": x.reason}
    if isinstance(x, Failed):
        return {"error": x.error, "seconds": x.seconds}
    if isinstance(x, SeedRuns):
        return {"seeds": {k: to_json(v) for k, v in x.runs.items()}}
    if isinstance(x, DeviceSpeed):
        out = {}
        for f in dataclasses.fields(x):
            v = getattr(x, f.name)
            if v is not None:
                out[f.name] = {"gbps": v} if f.name == "bandwidth" and isinstance(v, float) else to_json(v)
        return out
    if dataclasses.is_dataclass(x):
        return {f.name: to_json(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {k: to_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_json(v) for v in x]
    return x


def _build(cls: type, d: dict[str, Any], **nested: Any) -> Any:
    """cls from the fields of d it knows (others are ignored; missing ones take their default)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names and k not in nested}, **nested)


def _failed(d: dict[str, Any]) -> Failed:
    return Failed(d["error"], d.get("seconds", 0.0))


def _levels(d: dict[str, Any]) -> list[LevelScore]:
    return [_build(LevelScore, r) for r in d["levels"]]


def neumip_run_from_json(d: dict[str, Any]) -> NeuMIPRun | Failed:
    if "error" in d:
        return _failed(d)
    train = [_build(LevelScore, r) for r in d["train_levels"]] if d.get("train_levels") else None
    return _build(NeuMIPRun, d, levels=_levels(d), train_levels=train)


def svbrdf_run_from_json(d: dict[str, Any]) -> SVBRDFRun | Failed:
    return _failed(d) if "error" in d else _build(SVBRDFRun, d, levels=_levels(d))


def method_from_json(d: dict[str, Any]) -> MethodResult:
    if "empty" in d:
        return Empty(d["empty"])
    if "seeds" in d:
        return SeedRuns({k: neumip_run_from_json(v) for k, v in d["seeds"].items()})
    return svbrdf_run_from_json(d)


def image_run_from_json(d: dict[str, Any]) -> ImageRun | Failed:
    if "error" in d:
        return _failed(d)
    methods: dict[str, dict[str, FrameScore] | Empty] = {
        k: Empty(v["empty"]) if "empty" in v else {mode: _build(FrameScore, s) for mode, s in v.items()}
        for k, v in d["methods"].items()
    }
    return _build(ImageRun, d, methods=methods)


def export_run_from_json(d: dict[str, Any]) -> ExportRun | Failed:
    return _failed(d) if "error" in d else _build(ExportRun, d)


def _rows(cls: type, v: Any) -> Any:
    return _failed(v) if isinstance(v, dict) else [_build(cls, r) for r in v]


def device_speed_from_json(d: dict[str, Any]) -> DeviceSpeed:
    s = DeviceSpeed()
    if "gemm" in d:
        s.gemm = _failed(d["gemm"]) if "error" in d["gemm"] else dict(d["gemm"])
    if "bandwidth" in d:
        s.bandwidth = _failed(d["bandwidth"]) if "error" in d["bandwidth"] else d["bandwidth"]["gbps"]
    for name, cls in (("queries", QueryRow), ("training", TrainRow), ("frames", FrameRow)):
        if name in d:
            setattr(s, name, _rows(cls, d[name]))
    return s


def results_from_json(d: dict[str, Any]) -> SuiteResults:
    """A ``results.json`` read back into types."""
    mats = {
        name: _build(MaterialResult, m, methods={k: method_from_json(v) for k, v in m["methods"].items()})
        for name, m in d["materials"].items()
    }
    images = {k: image_run_from_json(v) for k, v in d.get("images", {}).items()}
    speed = {k: device_speed_from_json(v) for k, v in d.get("speed", {}).items()}
    exports = {m: {k: export_run_from_json(v) for k, v in runs.items()}
               for m, runs in d.get("exports", {}).items()}
    return _build(SuiteResults, d, materials=mats, images=images, speed=speed, exports=exports)
