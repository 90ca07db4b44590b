"""Materials nobody tuned on (issue 20): height and albedo maps made here from seeds, rendered to
BTFs by ``btf-generate material=maps``, for the suite's ``extra_files``. They are not among the
procedural patterns NeuMIP's variants, MIPNet or the presets were chosen on.

- ``pebbles``: rounded stones of random size packed in a Voronoi tiling (domes of height 1 at
  their centres, gaps at 0), a colour per stone;
- ``ridges``: diagonal ridges of varying width with fine bumps between them, two-tone albedo.

    .venv/bin/python benchmarks/unseen_materials.py OUT_DIR [--resolution 128] [--directions medium]

writes OUT_DIR/<name>_height.npy, <name>_albedo.npy and OUT_DIR/<name>_<res>_<dirs>.h5.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np


def pebbles(n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(height (n, n) in [0, 1], albedo (n, n, 3) linear) of a tileable Voronoi pebble field."""
    rng = np.random.default_rng(seed)
    centres = rng.random((40, 2))
    yy, xx = (np.mgrid[0:n, 0:n] + 0.5) / n
    d = np.full((n, n, 2), np.inf)
    owner = np.zeros((n, n), dtype=int)
    for i, (cx, cy) in enumerate(centres):
        dx = np.abs(xx - cx)
        dy = np.abs(yy - cy)
        dist = np.hypot(np.minimum(dx, 1 - dx), np.minimum(dy, 1 - dy))
        closer = dist < d[..., 0]
        d[..., 1] = np.where(closer, d[..., 0], np.minimum(d[..., 1], dist))
        d[..., 0] = np.where(closer, dist, d[..., 0])
        owner = np.where(closer, i, owner)
    edge = (d[..., 1] - d[..., 0]) * n  # texels to the nearest other stone's border (x2)
    height = np.sqrt(np.clip(edge / edge.max() * 1.5, 0.0, 1.0))
    grey = rng.uniform(0.15, 0.55, (len(centres), 1))
    colours = grey * rng.uniform(0.85, 1.15, (len(centres), 3))  # stone greys with a slight tint
    return height, np.clip(colours[owner], 0, 1)


def ridges(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(height, albedo) of diagonal ridges with fine bumps, tileable."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:n, 0:n] + 0.5) / n
    t = (xx + yy) * 5.0
    phase = 0.3 * np.sin(2 * np.pi * (xx - yy) * 2.0)
    ridge = np.abs(np.sin(np.pi * (t + phase))) ** 0.6
    k = rng.integers(1, 6, (4, 2))
    bumps = sum(np.sin(2 * np.pi * (a * 4 * xx + b * 4 * yy) + rng.random() * 6.3) for a, b in k) / 8
    height = np.clip(0.8 * ridge + 0.2 * (bumps + 0.5), 0, 1)
    tone = np.where(ridge > 0.7, 1.0, 0.0)[..., None]
    albedo = tone * np.array([0.55, 0.45, 0.3]) + (1 - tone) * np.array([0.12, 0.1, 0.09])
    return height, albedo


MAKERS = {"pebbles": (pebbles, 6.0), "ridges": (ridges, 4.0)}
"""name -> (maker, height_scale in texels at 128^2)"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--directions", default="medium")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (make, scale) in MAKERS.items():
        height, albedo = make(args.resolution)
        np.save(out / f"{name}_height.npy", height.astype(np.float32))
        np.save(out / f"{name}_albedo.npy", albedo.astype(np.float32))
        h5 = out / f"{name}_{args.resolution}_{args.directions}.h5"
        if h5.exists():
            continue
        subprocess.run([sys.executable, "-m", "btf_data.cli.generate", "material=maps",
                        f"material.name={name}",
                        f"material.maps.height={out / f'{name}_height.npy'}",
                        f"material.maps.albedo={out / f'{name}_albedo.npy'}",
                        f"material.maps.height_scale={scale * args.resolution / 128}",
                        f"resolution={args.resolution}", f"directions={args.directions}", f"out={h5}",
                        "progress=false"], check=True)
        print(h5)


if __name__ == "__main__":
    main()
