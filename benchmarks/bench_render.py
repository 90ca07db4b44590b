"""Rendering speed with the NeuMIP material: milliseconds per 512x512 and 1920x1080 frame of the
plane scene, split into scene intersection (with footprints), material and shading; and the
material's own split into latent lookups (offset + pyramid) and decoder MLP.

Run: .venv/bin/python benchmarks/bench_render.py CHECKPOINT [--device cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from renderer.materials import NeuMIPMaterial
from renderer.render import RenderSettings, render, synchronize
from renderer.scene_config import SceneConfig, build_scene


@torch.no_grad()
def material_split(mat: NeuMIPMaterial, n: int, dev: torch.device) -> dict[str, float]:
    """Seconds per n queries in the latent lookups and in the decoder."""
    m = mat.model
    uv = torch.rand(n, 2, device=dev)
    up = torch.tensor([0, 0, 1.0], device=dev)
    w = torch.nn.functional.normalize(torch.rand(n, 3, device=dev) + up, dim=1)
    lod = torch.rand(n, device=dev) * (m.n_levels - 1)
    synchronize(dev)
    t0 = time.perf_counter()
    uv2 = m.offset(uv, w) if m.offset is not None else uv
    latent = m.pyramid(uv2, lod)
    synchronize(dev)
    t1 = time.perf_counter()
    m.decoder.mlp(m.decoder.mlp_input(latent, w, w))
    synchronize(dev)
    t2 = time.perf_counter()
    return {"lookup": t1 - t0, "decoder": t2 - t1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    dev = torch.device(args.device)
    mat = NeuMIPMaterial(args.checkpoint, dev)
    settings = RenderSettings(device=args.device, progress=False, chunk=2**18)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, "
          f"MLP backend {mat.model.backend}")
    print("| frame | ms / frame | intersection | material | shading | pixels |")
    print("|---|---|---|---|---|---|")
    for w, h in ((512, 512), (1920, 1080)):
        scene = build_scene(SceneConfig(), w, h)
        render(scene, mat, settings)  # warm-up
        best = None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            _, times = render(scene, mat, settings)
            total = time.perf_counter() - t0
            if best is None or total < best[0]:
                best = (total, times)
        total, times = best
        o, d, _, _ = scene.camera.rays(torch.rand(10), torch.rand(10))  # noqa: F841 (warm)
        print(f"| {w}x{h} | {1000 * total:.0f} | {1000 * times.intersect:.0f} | "
              f"{1000 * times.material:.0f} | {1000 * times.shade:.0f} | {w * h} |")
    split = material_split(mat, 2**20, dev)
    share = split["lookup"] / (split["lookup"] + split["decoder"])
    print(f"\nNeuMIP material, 2^20 queries: latent lookups {1000 * split['lookup']:.0f} ms "
          f"({100 * share:.0f}%), decoder {1000 * split['decoder']:.0f} ms ({100 * (1 - share):.0f}%)")


if __name__ == "__main__":
    main()
