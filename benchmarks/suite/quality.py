"""Quality cells: per-level held-out PSNR (tone-mapped, as ``neumip-eval``) of one method on one
material, split by light elevation, with the size of the method's representation."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.suite.cells import Cell, cell_key
from benchmarks.suite.config import NEUMIP_METHODS, SuiteConfig, model_fields
from benchmarks.suite.results import NeuMIPRun, SVBRDFRun, neumip_run_from_json, svbrdf_run_from_json
from btf_data.btf_file import BTFFile
from btf_data.generate import GenerateConfig, MaterialConfig, generate
from neumip.evaluate import evaluate_levels, evaluate_query
from neumip.model import NeuMIP, model_config_from_meta
from plumbing.tensor_files import CheckpointError
from plumbing.thread_share import idle
from renderer.baselines import METHODS as SVBRDF_METHODS
from renderer.baselines import BaselineConfig
from renderer.material_specs import open_material


@dataclass
class MaterialFile:
    """One material of the suite: its name, BTF file, family and file sizes."""

    name: str
    path: Path
    family: str
    """``normal-mapped``, ``displaced`` or ``measured`` (a file without SVBRDF maps)."""
    synthetic: bool
    btf_bytes: int
    """The BTF's level-0 images as stored (float16), without the pyramid."""
    file_bytes: int


def material_files(suite: SuiteConfig, data_dir: Path, progress: bool) -> list[MaterialFile]:
    """The suite's materials, each BTF file generated once (kept under data_dir, named by its
    resolution and direction set), plus the user's extra files."""
    out = []
    for name in suite.materials:
        path = data_dir / f"{name}_{suite.resolution}_{suite.directions}.h5"
        if not path.exists():
            generate(
                GenerateConfig(
                    material=MaterialConfig(name=name),
                    resolution=suite.resolution,
                    directions=suite.directions,
                    out=str(path),
                    progress=progress,
                )
            )
        out.append(describe(name, path))
    for extra in suite.extra_files:
        out.append(describe(Path(extra).stem, Path(extra)))
    return out


def describe(name: str, path: Path) -> MaterialFile:
    with BTFFile(path) as btf:
        maps = btf.svbrdf()
        n_wo, n_wi, h, w = btf.shape
        family = "measured" if maps is None else ("displaced" if maps.displaced else "normal-mapped")
        return MaterialFile(
            name, path, family, maps is not None, n_wo * n_wi * h * w * 3 * 2, btf.nbytes_on_disk
        )


#: The code a NeuMIP cell's numbers depend on (the training command, the model, the data it reads,
#: scoring), each with everything it imports (``benchmarks.suite.cells.code_closure``).
NEUMIP_CODE = ("neumip.cli.train", "neumip.model", "neumip.evaluate", "btf_data.sampler", "btf_data.lookup",
               "btf_data.btf_file", "plumbing.tonemap")
#: The code a BTF method's cell depends on (the material made from the file, its lookup, scoring).
BTF_CODE = ("renderer.materials", "btf_data.sampler", "btf_data.lookup", "btf_data.btf_file",
            "neumip.evaluate", "plumbing.tonemap")
#: The code an SVBRDF cell's numbers depend on (the pyramids, their shading and lookup, scoring).
SVBRDF_CODE = ("renderer.baselines", "btf_data.brdf", "btf_data.btf_render", "btf_data.lookup",
               "btf_data.pyramid", "neumip.evaluate", "plumbing.tonemap")


def neumip_cell(
    mat: MaterialFile,
    method: str,
    seed: int,
    suite: SuiteConfig,
    cells: Path,
    progress: bool,
    threads: int | None = None,
) -> Cell[NeuMIPRun]:
    """A NeuMIP method's cell: train with ``neumip-train`` (resumed when a checkpoint of an
    interrupted run is there), then score the held-out pairs. A kept result or checkpoint of
    another architecture (conf/model/<name>.yaml edited since) is not reused."""
    model = NEUMIP_METHODS[method]
    arch = {k: v for k, v in model_fields(model).items() if k != "backend"}
    overrides = [*suite.train_overrides, *suite.method_overrides.get(method, [])]
    key = cell_key(mat.name, str(mat.path), model, seed, overrides, suite.levels)

    def compute(cell_dir: Path) -> NeuMIPRun:
        train_dir = cell_dir / "train"
        ckpt = train_dir / "checkpoints" / "last.safetensors"
        cmd = [
            sys.executable, "-m", "neumip.cli.train",  # wherever the scripts were installed
            "data=file",
            f"data.path={mat.path}",
            f"data.name={mat.name}",
            f"model={model}",
            f"seed={seed}",
            f"out_dir={train_dir}",
            "logger.mode=disabled",
            f"progress={str(progress).lower()}",
            *overrides,
            *([f"threads={threads}"] if threads else []),  # how it runs, not what it makes: not in the key
        ]
        finished = (train_dir / "checkpoints" / "train_time.json").exists()  # then only scoring is left
        with idle():  # this process only waits: the training takes the cores
            if ckpt.exists() and _trained_arch(ckpt) != arch:
                subprocess.run(cmd + ["overwrite=true"], check=True)  # the model config changed
            elif not finished:
                subprocess.run(cmd + ["resume=true" if ckpt.exists() else "overwrite=true"], check=True)
        net = NeuMIP.load(ckpt)
        with BTFFile(mat.path) as btf:
            scores = evaluate_levels(net, btf, suite.levels, "held_out")
            # as many training pairs as held-out ones, spread evenly: the generalisation gap
            train_scores = evaluate_levels(net, btf, suite.levels, "train",
                                           max_pairs=len(btf.pairs("held_out")))
        timing = json.loads((ckpt.parent / "train_time.json").read_text())
        train_seconds = timing.get("total_seconds", timing["seconds"])
        params = sum(p.numel() for p in net.parameters())
        return NeuMIPRun(
            levels=scores,
            train_seconds=train_seconds,
            train_qps=timing["queries_per_second"],
            params=params,
            bytes_fp32=4 * params,
            bytes_fp16=2 * params,
            checkpoint=str(ckpt),
            minutes_to_30db_l0=minutes_to(train_dir, 30.0, train_seconds, scores[0].psnr),
            model=arch,
            train_levels=train_scores,
        )

    def still_valid(kept: NeuMIPRun) -> bool:
        """The kept result's architecture (recorded, or read from its checkpoint) is today's; one
        this version cannot read (a field or decoder it does not know) is not, and is recomputed."""
        try:
            if kept.model is not None:  # recorded by an older version: its missing fields filled in
                cfg = model_config_from_meta(kept.checkpoint, {"model": kept.model, "resolution": 2}, "torch")
                return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "backend"} == arch
            ckpt = Path(kept.checkpoint)
            return ckpt.is_file() and _trained_arch(ckpt) == arch
        except CheckpointError:
            return False

    return Cell(cells / mat.name / f"{method}_seed{seed}_{key}", compute, neumip_run_from_json, still_valid,
                data=mat.path, code=NEUMIP_CODE)


def _trained_arch(ckpt: Path) -> dict[str, Any]:
    """The architecture a checkpoint was trained with (its model config without the backend)."""
    net = NeuMIP.load(ckpt)
    return {k: v for k, v in dataclasses.asdict(net.cfg).items() if k != "backend"}


def minutes_to(train_dir: Path, target: float, seconds: float, final_l0: float) -> float | None:
    """Training minutes until level 0 first reached ``target`` dB in the run's evaluations (the
    step's share of the run's time); None when it never did, or when the final score on every
    held-out pair (``final_l0``) stays below it: the training-time evaluations score a subset of
    the held-out pairs (spread over all of them), which must not claim what the whole set denies."""
    curves = train_dir / "curves_psnr.csv"
    if not curves.exists() or final_l0 < target:
        return None
    rows = [line.split(",") for line in curves.read_text().splitlines()[1:] if line]
    steps = [int(r[0]) for r in rows if r[1] == "0" and float(r[2]) >= target]
    last = max((int(r[0]) for r in rows), default=0)
    if not steps or not last:
        return None
    return seconds / 60 * min(steps) / last


def baseline_config(suite: SuiteConfig) -> BaselineConfig:
    """The SVBRDF methods' options of the suite's cells (no progress bars inside a cell)."""
    cfg = copy.deepcopy(suite.baselines)
    cfg.fit.progress = False
    return cfg


def svbrdf_cell(mat: MaterialFile, method: str, suite: SuiteConfig, cells: Path) -> Cell[SVBRDFRun]:
    """An SVBRDF baseline's cell: build its pyramid from the file's maps and score the held-out
    pairs with the same code as NeuMIP's. Keyed by every baseline option."""
    key = cell_key(mat.name, str(mat.path), method, suite.levels, suite.baseline_options())

    def compute(cell_dir: Path) -> SVBRDFRun:
        material = open_material(f"{method}:{mat.path}", baselines=baseline_config(suite))
        with BTFFile(mat.path) as btf:
            scores = evaluate_query(material.eval, btf, suite.levels, "held_out")
        pyramid = material.pyramid
        numbers = sum(int(t.numel()) for k in range(pyramid.n_levels) for t in pyramid.level(k).values())
        return SVBRDFRun(
            levels=scores,
            build_seconds=material.build_seconds,
            params=numbers,
            bytes_fp32=4 * numbers,
            bytes_fp16=2 * numbers,
        )

    return Cell(cells / mat.name / f"{method}_{key}", compute, svbrdf_run_from_json, data=mat.path,
                code=SVBRDF_CODE)


def btf_method_cell(mat: MaterialFile, method: str, suite: SuiteConfig, cells: Path) -> Cell[SVBRDFRun]:
    """A BTF method's cell (``measured_interp``): the material made from the file's training
    pairs, scored on the held-out pairs with the same code as every other method. Its size is
    the images it keeps (training pairs, every level, float32)."""
    key = cell_key(mat.name, str(mat.path), method, suite.levels)

    def compute(cell_dir: Path) -> SVBRDFRun:
        t0 = time.perf_counter()
        material = open_material(f"{method}:{mat.path}")
        build = time.perf_counter() - t0
        with BTFFile(mat.path) as btf:
            scores = evaluate_query(material.eval, btf, suite.levels, "held_out")
        numbers = int(material.stored_numbers)
        return SVBRDFRun(levels=scores, build_seconds=build, params=numbers, bytes_fp32=4 * numbers,
                         bytes_fp16=2 * numbers)

    return Cell(cells / mat.name / f"{method}_{key}", compute, svbrdf_run_from_json, data=mat.path,
                code=BTF_CODE)


def empty_reason(mat: MaterialFile, method: str, suite: SuiteConfig) -> str | None:
    """Why a (material, method) cell is empty by design, or None."""
    if method in SVBRDF_METHODS and not mat.synthetic:
        return "no SVBRDF maps (a measured BTF): SVBRDF methods need them"
    families = suite.method_families.get(method)
    if families and mat.family not in families:
        return (
            f"not run on {mat.family} materials by this suite (suite.method_families: {', '.join(families)})"
        )
    return None
