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

from benchmarks.suite.speed import best_of, bound_qps, gemm_gflops, mlp_flops, query_flops, train_qps
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
        t = t_latents = best_of(lambda: lookup.lookup_trilinear(levels, uv, lod))
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
        # Every lookup a query makes, timed alone: with the MLPs' GEMM time, the whole query's bound
        lookup_s = t_latents
        if model.offset is not None:
            texture = model.offset.blurred_texture(max(float(model.blur_sigma), model.offset.blur_min))
            t = best_of(lambda: lookup.lookup_bilinear(texture, uv))
            lookup_s += t
            rows.append((f"lookup_bilinear (neural offset, {texture.shape[-1]} channels), 2^20",
                         f"{n / t / 1e6:.2f} M queries/s", ""))
        x = torch.randn(n, model.decoder.mlp.n_in)
        t = best_of(lambda: model.decoder.mlp(x))
        flops = mlp_flops(model.decoder.mlp.compute_shapes())
        rows.append(("decoder MLP, 2^20", f"{n / t / 1e6:.2f} M queries/s",
                     f"{flops} FLOP/query over fp32 GEMM: {fp32 * 1e9 / flops / 1e6:.1f} M/s"))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t = best_of(lambda: model.decoder.mlp(x))
        rows.append(("decoder MLP, 2^20, bf16 autocast", f"{n / t / 1e6:.2f} M queries/s",
                     f"over bf16 GEMM: {bf16 * 1e9 / flops / 1e6:.1f} M/s"))
        query_qps, gemm = {}, {"fp32": fp32, "bf16": bf16}
        all_flops = query_flops(model)

        def query_bound(precision: str) -> str:
            mlps = bound_qps(all_flops, gemm[precision])
            with_lookups = 1.0 / (1.0 / mlps + lookup_s / n)
            return (f"MLPs' {all_flops} FLOP/query over {precision} GEMM: {mlps / 1e6:.1f} M/s; "
                    f"with the lookups above: {with_lookups / 1e6:.1f} M/s")

        t = best_of(lambda: model(uv, w, w, lod, check=False))
        ref = model(uv, w, w, lod, check=False)
        query_qps["fp32"] = n / t
        rows.append(("whole NeuMIP query, 2^20", f"{n / t / 1e6:.2f} M queries/s", query_bound("fp32")))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t = best_of(lambda: model(uv, w, w, lod, check=False))
            rel = ((model(uv, w, w, lod, check=False).float() - ref).abs().max() / ref.abs().max()).item()
        query_qps["bf16"] = n / t
        rows.append(("whole NeuMIP query, 2^20, bf16 autocast", f"{n / t / 1e6:.2f} M queries/s",
                     f"{query_bound('bf16')}; max error {rel:.1e} of the largest output"))
    rows += train_rows(args.data, model.cfg, query_qps, gemm, all_flops)
    rows += frame_rows(args.checkpoint, gemm, all_flops)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| operation | measured | bound |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


TRAIN_SETTINGS = ((8192, "fp32", 0), (8192, "bf16", 0), (65536, "fp32", 0), (65536, "fp32", 64),
                  (65536, "bf16", 0), (65536, "bf16", 64))
"""(batch, precision, pairs_per_batch) of the training rows: the cpu preset's batch, a large one,
and coherent batches of 64 direction pairs where the sampler's share is large enough to matter."""


def train_rows(data: str, model_cfg: ModelConfig, query_qps: dict[str, float], gemm: dict[str, float],
               flops: int) -> list[tuple[str, str, str]]:
    """Training q/s of the checkpoint's model on ``data``, each beside the whole query's inference
    rate at the same precision and the GEMM bound of a step. The 1/3: a GEMM-bound network's step
    costs at least a forward and two backward GEMMs per layer (input and weight gradients), three
    forwards (a frozen offset network's weight gradients are skipped: the bound is near, not
    exact)."""
    out = []
    for batch, precision, pairs in TRAIN_SETTINGS:
        qps = train_qps(data, "cpu", max(8, 2**19 // batch), batch, model_cfg, precision, pairs)
        what = "independent pairs" if pairs == 0 else f"{pairs} pairs per batch"
        out.append((f"training, batch {batch}, {precision}, {what}", f"{qps / 1e6:.2f} M queries/s",
                    f"{qps / query_qps[precision]:.2f} of the {precision} whole query "
                    f"({query_qps[precision] / 1e6:.2f} M/s; a GEMM-bound step: <= 1/3); "
                    f"3 x {flops} FLOP/query over {precision} GEMM: "
                    f"{bound_qps(3 * flops, gemm[precision]) / 1e6:.1f} M/s"))
    return out


def frame_rows(checkpoint: str, gemm: dict[str, float], flops: int) -> list[tuple[str, str, str]]:
    """The 1920x1080 plane frame in fp32 and with ``settings.precision=bf16``, its parts, the time
    its MLPs alone take at the GEMM rate (one query per pixel), and how far the bf16 frame is
    from the fp32 one (PSNR of tone-mapped frames, as frames are scored)."""
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
                 f"shading {1000 * ft.shade:.0f} ms; the MLPs of its {ft.samples_shaded} queries "
                 f"(one per shaded pixel) at the {precision} GEMM rate: "
                 f"{1000 * ft.samples_shaded / bound_qps(flops, gemm[precision]):.0f} ms")
        if precision != "fp32":
            db = score(frames["fp32"], frames[precision], precision)[0].psnr
            split += f"; {db:.1f} dB from the fp32 frame"
        rows.append((f"1920x1080 plane frame, {precision}, chunks of 2^18 pixels", f"{1000 * t:.0f} ms",
                     split))
    return rows


if __name__ == "__main__":
    main()
