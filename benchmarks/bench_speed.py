"""NeuMIP speed on this machine, each figure beside its bound measured in the same run: latent
lookups, the whole query and the decoder at batch 2^20 (eval mode), training queries per second of
the checkpoint's own model (late phase, no latent blur) at two batch sizes, fp32 and bf16, with
independent and coherent batches, each beside the whole query's inference rate at the same
precision in the same run, and a 1920x1080 plane frame. Run alone: two torch jobs on 2 cores slow
each other far more than 2x.

    .venv/bin/python benchmarks/bench_speed.py CHECKPOINT DATA.h5 [--threads N]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.suite.speed import best_of, gemm_gflops, train_qps
from neumip.config import ModelConfig


def main() -> None:
    from neumip.model import NeuMIP

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("data")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = 2**20
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(n, 2, generator=g)
    w = torch.nn.functional.normalize(torch.rand(n, 3, generator=g) + torch.tensor([0, 0, 1.0]), dim=1)
    lod = torch.rand(n, generator=g) * 6
    model = NeuMIP.load(args.checkpoint)
    rows = []
    fp32 = gemm_gflops(torch.float32)
    bf16 = gemm_gflops(torch.bfloat16)
    rows.append(("2048 GEMM, fp32 / bf16", f"{fp32:.0f} / {bf16:.0f} GFLOP/s", "the bound below"))
    with torch.no_grad():
        from btf_data import lookup

        levels = [lv.detach() for lv in model.pyramid.levels]
        c = levels[0].shape[-1]
        t = best_of(lambda: lookup.lookup_trilinear(levels, uv, lod))
        # (the same script times older trees too, before/after a lever: theirs have no kernel)
        native = getattr(lookup, "lookup_native", None)
        which = "native kernel" if native is not None and native.native_available() else "torch"
        rows.append((f"lookup_trilinear ({len(levels)} levels, {c} channels), 2^20, {which}",
                     f"{n / t / 1e6:.2f} M queries/s",
                     f"{n * 8 * c * 4 / t / 1e9:.1f} GB/s of texels read"))
        if hasattr(lookup, "pack_atlas"):
            atlas = lookup.pack_atlas(levels)
            t = best_of(lambda: lookup.lookup_trilinear(atlas, uv, lod))
            rows.append(("  its grid_sample atlas twin (torch)", f"{n / t / 1e6:.2f} M queries/s", ""))
        if hasattr(lookup, "lookup_trilinear_gather"):
            t = best_of(lambda: lookup.lookup_trilinear_gather(levels, uv, lod))
            rows.append(("  its gather twin (torch)", f"{n / t / 1e6:.2f} M queries/s", ""))
        x = torch.randn(n, model.decoder.mlp.n_in)
        t = best_of(lambda: model.decoder.mlp(x))
        flops = 2 * sum(r * c for r, c in model.decoder.mlp.shapes)
        rows.append(("decoder MLP, 2^20", f"{n / t / 1e6:.2f} M queries/s",
                     f"{flops} FLOP/query over fp32 GEMM: {fp32 * 1e9 / flops / 1e6:.1f} M/s"))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t = best_of(lambda: model.decoder.mlp(x))
        rows.append(("decoder MLP, 2^20, bf16 autocast", f"{n / t / 1e6:.2f} M queries/s",
                     f"over bf16 GEMM: {bf16 * 1e9 / flops / 1e6:.1f} M/s"))
        query_qps = {}
        t = best_of(lambda: model(uv, w, w, lod, check=False))
        ref = model(uv, w, w, lod, check=False)
        query_qps["fp32"] = n / t
        rows.append(("whole NeuMIP query, 2^20", f"{n / t / 1e6:.2f} M queries/s", ""))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t = best_of(lambda: model(uv, w, w, lod, check=False))
            rel = ((model(uv, w, w, lod, check=False).float() - ref).abs().max() / ref.abs().max()).item()
        query_qps["bf16"] = n / t
        rows.append(("whole NeuMIP query, 2^20, bf16 autocast", f"{n / t / 1e6:.2f} M queries/s",
                     f"max error {rel:.1e} of the largest output"))
    rows += train_rows(args.data, model.cfg, query_qps)
    rows += frame_rows(args.checkpoint)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| operation | measured | bound |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


TRAIN_SETTINGS = ((8192, "fp32", 0), (8192, "bf16", 0), (65536, "fp32", 0), (65536, "fp32", 64),
                  (65536, "bf16", 0), (65536, "bf16", 64))
"""(batch, precision, pairs_per_batch) of the training rows: the cpu preset's batch, a large one,
and coherent batches of 64 direction pairs where the sampler's share is large enough to matter."""


def train_rows(data: str, model_cfg: ModelConfig, query_qps: dict[str, float]) -> list[tuple[str, str, str]]:
    """Training q/s of the checkpoint's model on ``data``, each beside the whole query's inference
    rate at the same precision. The bound column's 1/3: a GEMM-bound network's step costs at least
    a forward and two backward GEMMs per layer (input and weight gradients), three forwards."""
    out = []
    for batch, precision, pairs in TRAIN_SETTINGS:
        qps = train_qps(data, "cpu", max(8, 2**19 // batch), batch, model_cfg, precision, pairs)
        what = "independent pairs" if pairs == 0 else f"{pairs} pairs per batch"
        out.append((f"training, batch {batch}, {precision}, {what}", f"{qps / 1e6:.2f} M queries/s",
                    f"{qps / query_qps[precision]:.2f} of the {precision} whole query "
                    f"({query_qps[precision] / 1e6:.2f} M/s; a GEMM-bound step: <= 1/3)"))
    return out


def frame_rows(checkpoint: str) -> list[tuple[str, str, str]]:
    """The 1920x1080 plane frame in fp32 and with ``settings.precision=bf16``, and how far the
    bf16 frame is from the fp32 one (PSNR of tone-mapped frames, as frames are scored)."""
    from renderer.materials import NeuMIPMaterial
    from renderer.output import score
    from renderer.render import RenderSettings, render
    from renderer.scene_config import SceneConfig, build_scene

    mat = NeuMIPMaterial(checkpoint)
    scene = build_scene(SceneConfig(), 1920, 1080)
    rows, frames = [], {}
    for precision in ("fp32", "bf16"):
        settings = RenderSettings(progress=False, chunk=2**18, precision=precision)
        times = {}

        def once(settings=settings, times=times):
            times["image"], times["ft"] = render(scene, mat, settings)

        t = best_of(once, repeats=2)
        ft, frames[precision] = times["ft"], times["image"]
        split = (f"intersection {1000 * ft.intersect:.0f}, material {1000 * ft.material:.0f}, "
                 f"shading {1000 * ft.shade:.0f} ms")
        if precision != "fp32":
            db = score(frames["fp32"], frames[precision], precision)[0].psnr
            split += f"; {db:.1f} dB from the fp32 frame"
        rows.append((f"1920x1080 plane frame, {precision}", f"{1000 * t:.0f} ms", split))
    return rows


if __name__ == "__main__":
    main()
