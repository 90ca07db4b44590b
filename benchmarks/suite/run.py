"""``neumip-bench`` as a library function: run every cell of the suite (reusing finished ones),
then write RESULTS.md, results.json and the plots into a fresh run folder (and docs/ on request)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm import tqdm

from benchmarks.suite.cells import git_revision, run_cell
from benchmarks.suite.config import BTF_METHODS, NEUMIP_METHODS, PARTS, BenchConfig
from benchmarks.suite.exports import export_cell
from benchmarks.suite.images import image_cell
from benchmarks.suite.quality import (
    MaterialFile,
    btf_method_cell,
    empty_reason,
    material_files,
    neumip_cell,
    svbrdf_cell,
)
from benchmarks.suite.report import update_readme, write_plots, write_results_md
from benchmarks.suite.results import (
    DeviceSpeed,
    Empty,
    ExportRun,
    Failed,
    ImageRun,
    MaterialResult,
    NeuMIPRun,
    SeedRuns,
    SuiteResults,
    results_from_json,
    to_json,
)
from benchmarks.suite.speed import (
    copy_gbps,
    frame_rows,
    fresh_checkpoint,
    gemm_gflops,
    query_rows,
    train_rows,
)
from plumbing.atomic import atomic_path, check_output_dir
from plumbing.thread_share import share_threads

T = TypeVar("T")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):  # /proc/cpuinfo names the model on Linux only
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def quality_cells(cfg: BenchConfig, mats: list[MaterialFile], cells: Path,
                  results: SuiteResults) -> dict[str, dict[str, str]]:
    """Run (or reuse) every quality cell into ``results.materials``; returns the trained
    checkpoint of each NeuMIP method per material (its first seed), for the images and speed."""
    suite = cfg.suite
    checkpoints: dict[str, dict[str, str]] = {m.name: {} for m in mats}
    todo = [(m, meth, s) for m in mats for meth in suite.methods
            for s in (suite.seeds_of(meth, m.family) if meth in NEUMIP_METHODS else [None])]
    bar = tqdm(todo, desc="quality cells", unit="cell", disable=not cfg.progress)
    for mat, method, seed in bar:
        entry = results.materials.setdefault(
            mat.name, MaterialResult(mat.family, str(mat.path), mat.btf_bytes, mat.file_bytes))
        bar.set_postfix_str(f"{mat.name} / {method}" + (f" / seed {seed}" if seed is not None else ""))
        reason = empty_reason(mat, method, suite)
        if reason:
            entry.methods[method] = Empty(reason)
            continue
        if method in NEUMIP_METHODS:
            cell = neumip_cell(mat, method, seed, suite, cells, cfg.progress, cfg.threads)
            result = run_cell(cell, cfg.rerun)
            runs = entry.methods.setdefault(method, SeedRuns({}))
            assert isinstance(runs, SeedRuns)
            runs.runs[str(seed)] = result
            if isinstance(result, NeuMIPRun) and method not in checkpoints[mat.name]:
                checkpoints[mat.name][method] = result.checkpoint
        else:
            make = btf_method_cell if method in BTF_METHODS else svbrdf_cell
            result = entry.methods[method] = run_cell(make(mat, method, suite, cells), cfg.rerun)
        tqdm.write(f"{mat.name:16s} {method:20s} " + (
            f"failed: {result.error}" if isinstance(result, Failed)
            else " ".join(f"{r.psnr:6.2f}" for r in result.levels) + (" (reused)" if result.reused else "")))
    return checkpoints


def kept_checkpoints(cfg: BenchConfig, mats: list[MaterialFile], cells: Path) -> dict[str, dict[str, str]]:
    """The NeuMIP checkpoints of quality cells finished before (when this run skips quality)."""
    suite = cfg.suite
    checkpoints: dict[str, dict[str, str]] = {m.name: {} for m in mats}
    for mat in mats:
        for method in (m for m in suite.methods if m in NEUMIP_METHODS):
            seed = suite.seeds_of(method, mat.family)[0]
            kept = neumip_cell(mat, method, seed, suite, cells, cfg.progress).kept()
            if kept is not None:
                checkpoints[mat.name][method] = kept.checkpoint
    return checkpoints


def image_cells(cfg: BenchConfig, mats: list[MaterialFile], checkpoints: dict[str, dict[str, str]],
                cells: Path, run_dir: Path, results: SuiteResults) -> None:
    """Run (or reuse) every material's rendered comparison into ``results.images``; the sheets
    are copied into the run folder."""
    suite = cfg.suite
    render_methods = suite.render_methods or suite.methods
    for mat in tqdm(mats, desc="image cells", unit="material", disable=not cfg.progress):
        cell = image_cell(mat, render_methods, checkpoints[mat.name], suite, cells, cfg.progress)
        result = results.images[mat.name] = run_cell(cell, cfg.rerun)
        if isinstance(result, ImageRun):
            shutil.copyfile(result.sheet, run_dir / f"compare_{mat.name}.png")


def export_cells(cfg: BenchConfig, mats: list[MaterialFile], checkpoints: dict[str, dict[str, str]],
                 cells: Path, results: SuiteResults) -> None:
    """Run (or reuse) every NeuMIP method's export cell (its first seed's checkpoint) into
    ``results.exports``; a model the viewer cannot export is a failed cell with the refusal."""
    for mat in mats:
        out = results.exports.setdefault(mat.name, {})
        for method, ckpt in checkpoints[mat.name].items():
            result = out[method] = run_cell(export_cell(mat, method, ckpt, cfg.suite, cells), cfg.rerun)
            if isinstance(result, ExportRun):
                kib = result.export_bytes["fp16"] / 1024
                tqdm.write(f"{mat.name:16s} {method:20s} export fp16 {kib:.0f} KiB, "
                           f"int8 loses at most {result.largest_loss('int8'):.3f} dB")


def write_report(cfg: BenchConfig, results: SuiteResults, run_dir: Path) -> dict[str, Path]:
    """results.json, the plots and RESULTS.md into the run folder, and into docs/ and the
    README's headline block with ``publish``."""
    written = {"json": run_dir / "results.json", "md": run_dir / "RESULTS.md"}
    with atomic_path(written["json"]) as tmp:
        tmp.write_text(json.dumps(to_json(results), indent=1, default=float))
    written.update(write_plots(results, run_dir))
    with atomic_path(written["md"]) as tmp:
        tmp.write_text(write_results_md(results, [p.name for p in run_dir.glob("compare_*.png")]))
    if cfg.publish:
        docs = check_output_dir(cfg.docs_dir)
        for path in list(written.values()) + sorted(run_dir.glob("compare_*.png")):
            with atomic_path(docs / path.name) as tmp:
                shutil.copyfile(path, tmp)
        readme = Path(cfg.readme)
        link = Path(os.path.relpath(docs / "RESULTS.md", readme.resolve().parent)).as_posix()
        if not update_readme(readme, results, link):
            tqdm.write(f"{readme}: no neumip-bench headline markers (or no file); README not updated")
    return written


def fresh_run_dir(base: Path) -> Path:
    """A new run folder named ``base`` (``base_2``, ``base_3``... when taken): two runs started in
    the same second (two materials in parallel, as conf/bench.yaml suggests) never share one."""
    check_output_dir(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        folder = base if i == 1 else base.with_name(f"{base.name}_{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{base}: a thousand runs of this second already have folders")


def run_bench(cfg: BenchConfig, command: str = "") -> dict[str, Path]:
    """Run the suite: quality cells, image cells, speed, then the report; returns the written
    files by name."""
    share_threads(cfg.threads)  # its share of the cores beside other jobs, or cfg.threads
    suite = cfg.suite
    root = Path(cfg.out_root)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H%M%S")
    if cfg.report_from:
        try:
            results = results_from_json(json.loads(Path(cfg.report_from).read_text()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{cfg.report_from}: not a neumip-bench results.json "
                             f"({type(e).__name__}: {e})") from None
        results.rerendered = f"revision {git_revision()}, {stamp} UTC, from {cfg.report_from}"
        run_dir = fresh_run_dir(root / "runs" / f"{stamp}_{results.suite['name']}_report")
        for sheet in Path(cfg.report_from).parent.glob("compare_*.png"):  # the run's own sheets
            shutil.copyfile(sheet, run_dir / sheet.name)
        return write_report(cfg, results, run_dir)
    run_dir = fresh_run_dir(root / "runs" / f"{stamp}_{suite.name}")
    cells = root / "cells"
    parts = cfg.only or list(PARTS)
    t_start = time.perf_counter()
    results = SuiteResults(asdict(suite), machine(), git_revision(), command, stamp)
    mats = material_files(suite, root / "data", cfg.progress)
    if "quality" in parts:
        checkpoints = quality_cells(cfg, mats, cells, results)
    else:  # images and speed still use the NeuMIP cells finished before
        checkpoints = kept_checkpoints(cfg, mats, cells)
    if "images" in parts:
        image_cells(cfg, mats, checkpoints, cells, run_dir, results)
    if "exports" in parts:
        export_cells(cfg, mats, checkpoints, cells, results)
    if "speed" in parts and suite.speed:
        results.speed = run_speed(cfg, mats, checkpoints, run_dir)
    results.seconds = time.perf_counter() - t_start
    return write_report(cfg, results, run_dir)


def run_speed(cfg: BenchConfig, mats: list[MaterialFile], checkpoints: dict[str, dict[str, str]],
              run_dir: Path) -> dict[str, DeviceSpeed]:
    """Speed on the CPU, and on CUDA when present; a failing part is recorded and skipped."""
    suite = cfg.suite
    out: dict[str, DeviceSpeed] = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    data = next((m.path for m in mats if m.synthetic), mats[0].path if mats else None)
    ckpt = next((c.get("neumip") for c in checkpoints.values() if c.get("neumip")), None)
    ckpt = ckpt or fresh_checkpoint(run_dir / "speed_model.safetensors", suite.resolution)
    for device in devices:
        d = DeviceSpeed()
        d.gemm = _guard(lambda device=device: {"fp32": gemm_gflops(torch.float32, device),
                                               "bf16": gemm_gflops(torch.bfloat16, device)})
        gflops = d.gemm if isinstance(d.gemm, dict) else {"fp32": float("nan"), "bf16": float("nan")}
        d.bandwidth = _guard(lambda device=device: copy_gbps(device))
        gbps = d.bandwidth if isinstance(d.bandwidth, float) else float("nan")
        d.queries = _guard(lambda device=device, g=gflops, bw=gbps: query_rows(
            device, suite.speed_batch, g, suite.resolution, bw))
        if data is not None:
            d.training = _guard(lambda device=device: train_rows(data, device, suite.speed_train_steps))
        d.frames = _guard(lambda device=device: frame_rows(ckpt, suite.speed_frames, device))
        out[device] = d
        tqdm.write(f"speed on {device}: done")
    return out


def _guard(fn: Callable[[], T]) -> T | Failed:
    """fn()'s result, or :class:`Failed` when it raises (the rest of the suite goes on)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - recorded in the results
        return Failed(f"{type(e).__name__}: {e}")
