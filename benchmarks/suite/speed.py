"""Speed cells: each figure beside its bounds measured in the same run: a query's multiply-add
FLOPs over the GEMM rate this machine reaches (fp32 and bf16, 2048^3), and the bytes any
implementation must move per query (its inputs and outputs, fp32) over the memory bandwidth of a
large copy. Measure alone: two torch jobs on the same cores slow each other far more than 2x."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.suite.config import NEUMIP_METHODS, model_fields
from benchmarks.suite.results import FrameRow, QueryRow, TrainRow
from neumip.config import DataConfig, LoggerConfig, ModelConfig, ScheduleConfig, TrainConfig
from neumip.mlp_backends import tcnn_available
from neumip.model import NeuMIP


def best_of(fn: Callable[[], Any], repeats: int = 3, sync: Callable[[], None] = lambda: None) -> float:
    """Seconds of the fastest of ``repeats`` calls after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_gflops(dtype: torch.dtype, device: str = "cpu", n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n x n matrix product (2 n^3 FLOPs): the fastest of ``repeats`` (the
    machine's capacity, which the bounds read; on a shared machine a burst of other work within
    three products of 40 ms once halved the bf16 figure and put a bound below its measured rate)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return 2 * n**3 / best_of(lambda: a @ b, repeats=repeats, sync=sync) / 1e9


def copy_gbps(device: str = "cpu", n_floats: int = 2**26) -> float:
    """GB/s of a large fp32 copy (bytes read plus bytes written): the memory bandwidth bound."""
    a = torch.empty(n_floats, device=device).fill_(1.0)
    b = torch.empty_like(a)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return 2 * 4 * n_floats / best_of(lambda: b.copy_(a), sync=sync) / 1e9


#: fp32 values a NeuMIP query reads (uv 2, wi 3, wo 3, lod 1) and writes (rgb 3).
QUERY_IO_FLOATS = 9 + 3


def bandwidth_bound_qps(bytes_per_query: int, gbps: float) -> float:
    """Queries per second if moving each query's inputs and outputs once were the only cost."""
    return gbps * 1e9 / bytes_per_query


def mlp_flops(shapes: list[tuple[int, int]]) -> int:
    """Multiply-add FLOPs per query of an MLP's [out, in] matrices (2 per weight)."""
    return 2 * sum(r * c for r, c in shapes)


def query_flops(model: NeuMIP) -> int:
    """FLOPs per NeuMIP query in its MLPs (decoder + offset network), as their backend computes
    them (tiny-cuda-nn's padded layers; the torch backend's unpadded ones)."""
    flops = mlp_flops(model.decoder.mlp.compute_shapes())
    if model.offset is not None:
        flops += mlp_flops(model.offset.mlp.compute_shapes())
    return flops


def bound_qps(flops_per_query: int, gflops: float) -> float:
    """Queries per second if the MLPs ran at the GEMM rate and nothing else cost time."""
    return gflops * 1e9 / flops_per_query


def query_rows(
    device: str, batch: int, gflops: dict[str, float], resolution: int, gbps: float = float("nan")
) -> list[QueryRow]:
    """Decoder and whole-query throughput of each NeuMIP architecture and backend present."""
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(batch, 2, generator=g).to(device)
    w = torch.nn.functional.normalize(
        torch.rand(batch, 3, generator=g) + torch.tensor([0, 0, 1.0]), dim=1
    ).to(device)
    lod = (torch.rand(batch, generator=g) * 6).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    backends = ["torch"] + (["tcnn"] if device == "cuda" and tcnn_available()[0] else [])
    rows = []
    for method in ("neumip", "neumip_plus"):
        for backend in backends:
            cfg = ModelConfig(**{**model_fields(NEUMIP_METHODS[method]), "backend": backend})
            model = NeuMIP(cfg, resolution).to(device).eval()
            with torch.no_grad():
                x = torch.randn(batch, model.decoder.mlp.n_in, device=device)
                t_dec = best_of(lambda m=model, x=x: m.decoder.mlp(x), sync=sync)
                t_all = best_of(lambda m=model: m(uv, w, w, lod, check=False), sync=sync)
            dec_flops, all_flops = mlp_flops(model.decoder.mlp.compute_shapes()), query_flops(model)
            rows.append(
                QueryRow(
                    method=method,
                    backend=backend,
                    device=device,
                    decoder_qps=batch / t_dec,
                    query_qps=batch / t_all,
                    decoder_flops=dec_flops,
                    query_flops=all_flops,
                    decoder_bound_fp32=bound_qps(dec_flops, gflops["fp32"]),
                    decoder_bound_bf16=bound_qps(dec_flops, gflops["bf16"]),
                    query_bound_fp32=bound_qps(all_flops, gflops["fp32"]),
                    query_bound_bf16=bound_qps(all_flops, gflops["bf16"]),
                    query_bytes=4 * QUERY_IO_FLOATS,
                    query_bound_bandwidth=bandwidth_bound_qps(4 * QUERY_IO_FLOATS, gbps),
                )
            )
    return rows


def train_qps(data: Path | str, device: str, steps: int, batch: int, model: ModelConfig | None = None,
              precision: str = "fp32", pairs_per_batch: int = 0) -> float:
    """Training queries per second of ``model`` (default the faithful one, torch backend) on
    ``data``, late phase (step 6000 of the cpu schedule: latent blur nearly gone, offset frozen),
    best of two runs of ``steps`` steps."""
    from neumip.train import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            data=DataConfig(name="bench", path=str(data)),
            model=replace(model or ModelConfig(), backend="torch"),
            schedule=ScheduleConfig(steps=10**6, batch_size=batch, blur_halving=1350, offset_freeze=4050,
                                    fuse_blur_every=0, pairs_per_batch=pairs_per_batch),
            logger=LoggerConfig(mode="disabled"),
            out_dir=tmp,
            ckpt_every=0,
            progress=False,
            device=device,
            precision=precision,
        )
        tr = Trainer(cfg)
        tr.step = 6000
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        t = best_of(lambda: [tr.train_step() for _ in range(steps)], repeats=2, sync=sync)
        return steps * batch / t


def train_rows(
    data: Path, device: str, steps: int, batches: tuple[int, ...] = (8192, 65536)
) -> list[TrainRow]:
    """Training queries per second (late phase: no latent blur) of the faithful model."""
    return [TrainRow(batch, device, train_qps(data, device, steps, batch)) for batch in batches]


def frame_rows(checkpoint: str, sizes: list[list[int]], device: str) -> list[FrameRow]:
    """Milliseconds per plane frame with a NeuMIP material, split into its parts."""
    from renderer.material_specs import open_material
    from renderer.render import RenderSettings, render
    from renderer.scene_config import SceneConfig, build_scene

    mat = open_material(f"neumip:{checkpoint}", device)
    rows = []
    for width, height in sizes:
        scene = build_scene(SceneConfig(), width, height)
        for mode in ("max", "aniso"):
            settings = RenderSettings(progress=False, chunk=2**18, device=device, lod_mode=mode)
            runs = []  # (seconds, parts) of each call: the fastest is reported, with its own parts

            def once(scene=scene, settings=settings, runs=runs):
                t0 = time.perf_counter()
                _, ft = render(scene, mat, settings)
                parts = {"intersect": ft.intersect, "material": ft.material, "shade": ft.shade}
                runs.append((time.perf_counter() - t0, parts))

            best_of(once, repeats=2)
            t, parts = min(runs[1:], key=lambda r: r[0])  # runs[0] is the warm-up
            rows.append(FrameRow(width, height, mode, device, 1000 * t,
                                 **{f"{k}_ms": 1000 * v for k, v in parts.items()}))
    return rows


def fresh_checkpoint(path: Path, resolution: int) -> str:
    """A randomly initialised faithful model saved to ``path`` (speed does not depend on weights)."""
    return str(NeuMIP(ModelConfig(backend="torch"), resolution).save(path))
