"""Mitsuba 3 with project materials: render time of the demo scene, and the variance reduction of
the ``lobe`` sampler against cosine sampling at equal samples per pixel on a glossy material
(pixel variance across independent seeds, over the pixels of the glossy object).

    .venv/bin/python benchmarks/bench_mitsuba.py [--ckpt CKPT] [--glossy outputs/data/scratched_metal.h5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from renderer.mitsuba.render import DEMO_MAX_DEPTH


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", help="a NeuMIP checkpoint for the ground (default: a constant material)")
    p.add_argument("--glossy", default="outputs/data/scratched_metal.h5")
    p.add_argument("--method", default="lean", help="the SVBRDF method rendering the glossy object")
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--max-depth", type=int, default=DEMO_MAX_DEPTH, help="as Mitsuba counts it (the demo's)")
    p.add_argument("--size", type=int, nargs=2, default=[160, 120])
    p.add_argument("--variant", default="llvm_ad_rgb")
    args = p.parse_args()

    from renderer.mitsuba import setup

    mi = setup(args.variant)
    from renderer.material_specs import open_material
    from renderer.mitsuba.bsdf import material_bsdf
    from renderer.mitsuba.render import demo_scene

    w, h = args.size
    ground = open_material(f"neumip:{args.ckpt}" if args.ckpt else "constant:0.2,0.2,0.2")
    glossy = open_material(f"{args.method}:{args.glossy}")
    mask = None
    rows = []
    stacks = {}
    for sampling in ("cosine", "lobe"):
        t_fit = time.perf_counter()
        scene_dict = demo_scene(mi, w, h, args.spp, args.max_depth)
        scene_dict["ground"]["bsdf"] = material_bsdf(ground)
        scene_dict["object"]["bsdf"] = material_bsdf(glossy, sampling=sampling)
        t_fit = time.perf_counter() - t_fit
        scene = mi.load_dict(scene_dict)
        images, times = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            images.append(np.array(mi.render(scene, seed=seed))[..., :3])
            times.append(time.perf_counter() - t0)
        stack = np.stack(images)
        stacks[sampling] = stack
        if mask is None:  # the object's pixels: those it covers in the mean image
            probe = mi.load_dict(
                {**demo_scene(mi, w, h, 1), "integrator": {"type": "aov", "aovs": "id:shape_index"}}
            )
            ids = np.array(mi.render(probe))[..., 0]
            mask = ids == np.max(ids)
        var = stack.var(axis=0, ddof=1).mean(axis=-1)[mask].mean()
        rows.append((sampling, var, float(np.median(times)), t_fit))
    print(
        f"{w}x{h}, {args.spp} spp, max_depth {args.max_depth}, {args.seeds} seeds, object: {args.method} of "
        f"{args.glossy}, {int(mask.sum())} object pixels, variant {args.variant}"
    )
    print("| sampling | mean pixel variance on the object | render s (median) | build s (lobe fit) |")
    print("|---|---|---|---|")
    for sampling, var, t, t_fit in rows:
        print(f"| {sampling} | {var:.4e} | {t:.2f} | {t_fit:.2f} |")
    print(
        f"variance reduction (cosine / lobe): {rows[0][1] / rows[1][1]:.2f}x; means agree within "
        f"{abs(stacks['cosine'].mean() - stacks['lobe'].mean()) / stacks['lobe'].mean() * 100:.2f}%"
    )


if __name__ == "__main__":
    main()
