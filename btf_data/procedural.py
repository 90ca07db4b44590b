"""Procedural, tileable materials in two families.

- displaced heightfields (parallax and self-shadowing): ``weave`` (basket weave, the default demo
  material), ``bumps``, ``tiles``, ``scratched_metal``;
- normal-mapped planes (no displacement, the SVBRDF baselines' home ground): ``leather``,
  ``brushed_metal``, ``bumps_flat``.

Every pattern is a function of uv with period 1, evaluated at texel centres, so a material tiles
seamlessly and looks the same at every resolution. Heights are defined in uv units and converted
to level-0 texels (x resolution) so that the geometry does not change with the resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from btf_data.svbrdf import SVBRDFMaps, make_maps


@dataclass
class ProceduralParams:
    """Parameters shared by the procedural materials (conf/material/<name>.yaml sets them)."""

    seed: int = 0
    """Seed of the pattern's randomness (noise lattices, bump and scratch placement)."""
    height_scale: float = 0.025
    """Relief amplitude in uv units (x resolution = texels). For a normal-mapped material it
    only shapes the normals."""
    roughness: float = 0.3
    """Base GGX alpha."""
    cells: int = 6
    """Cells of the pattern per tile (weave cells, bump grid, tile grid)."""
    displaced: bool = True
    """Render with parallax and shadows (True) or as a normal-mapped plane (False)."""
    extra: dict = field(default_factory=dict)
    """Pattern-specific overrides (see each pattern's docstring)."""


@dataclass(frozen=True)
class Pattern:
    """A named pattern: uv grid -> (height_uv, albedo, roughness, metallic, specular)."""

    fn: Callable[[np.ndarray, np.ndarray, ProceduralParams, np.random.Generator], dict]
    defaults: dict
    description: str


def uv_grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel-centre coordinates (R, R) each: u along columns, v along rows."""
    c = (np.arange(resolution) + 0.5) / resolution
    v, u = np.meshgrid(c, c, indexing="ij")
    return u, v


def periodic_noise(
    u: np.ndarray, v: np.ndarray, cells: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Value noise in [0, 1] with period 1: a random lattice of cells[0] x cells[1] (along u, v)
    values, smoothstep-interpolated, wrapping at the tile border."""
    nu, nv = cells
    lattice = rng.random((nv, nu))
    x = u * nu
    y = v * nv
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    tx = x - x0
    ty = y - y0
    tx = tx * tx * (3 - 2 * tx)
    ty = ty * ty * (3 - 2 * ty)
    x0 %= nu
    y0 %= nv
    x1 = (x0 + 1) % nu
    y1 = (y0 + 1) % nv
    a = lattice[y0, x0] + (lattice[y0, x1] - lattice[y0, x0]) * tx
    b = lattice[y1, x0] + (lattice[y1, x1] - lattice[y1, x0]) * tx
    return a + (b - a) * ty


def fractal_noise(
    u: np.ndarray, v: np.ndarray, base: tuple[int, int], octaves: int, rng: np.random.Generator
) -> np.ndarray:
    """Sum of ``octaves`` periodic noises, each at twice the frequency and half the amplitude of
    the last, normalised to [0, 1]."""
    total = np.zeros_like(u)
    norm = 0.0
    for o in range(octaves):
        amp = 0.5**o
        total += amp * periodic_noise(u, v, (base[0] * 2**o, base[1] * 2**o), rng)
        norm += amp
    return total / norm


def _weave(u, v, p: ProceduralParams, rng) -> dict:
    """Basket weave: ``cells`` x ``cells`` cells, each holding ``strands`` rounded strands that run
    along u or v in a checkerboard and dip where they pass under the crossing cell."""
    strands = int(p.extra.get("strands", 3))
    n = p.cells
    a = np.floor(u * n)
    b = np.floor(v * n)
    fu = u * n - a
    fv = v * n - b
    along_u = ((a + b) % 2) == 0
    across = np.where(along_u, fv, fu) * strands
    along = np.where(along_u, fu, fv)
    c = across - np.floor(across)
    profile = np.sqrt(np.clip(1.0 - (2.0 * c - 1.0) ** 2, 0.0, 1.0))
    dip = 0.55 + 0.45 * np.sin(np.pi * along)
    fibres = fractal_noise(u, v, (64, 64), 2, rng)
    height = (0.85 * profile * dip + 0.15 * fibres) * p.height_scale
    colour_u = np.array([0.78, 0.62, 0.40])
    colour_v = np.array([0.52, 0.40, 0.26])
    base = np.where(along_u[..., None], colour_u, colour_v)
    albedo = base * (0.75 + 0.25 * profile[..., None]) * (0.85 + 0.3 * fibres[..., None])
    rough = p.roughness * (0.8 + 0.4 * fibres)
    return dict(height=height, albedo=albedo, roughness=rough, metallic=0.0, specular=0.04)


def _bumps(u, v, p: ProceduralParams, rng) -> dict:
    """Hemispherical bumps, one per cell of a ``cells`` x ``cells`` jittered grid, each with its
    own radius and hue, on a plastic base."""
    n = p.cells
    centres = 0.3 + 0.4 * rng.random((n, n, 2))
    radii = 0.25 + 0.2 * rng.random((n, n))
    hues = rng.random((n, n))
    height = np.zeros_like(u)
    owner = np.zeros(u.shape + (2,), dtype=int) - 1
    x = u * n
    y = v * n
    cx0 = np.floor(x).astype(int)
    cy0 = np.floor(y).astype(int)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx = cx0 + dx
            cy = cy0 + dy
            wx, wy = cx % n, cy % n
            px = cx + centres[wy, wx, 0]
            py = cy + centres[wy, wx, 1]
            r = radii[wy, wx]
            d2 = (x - px) ** 2 + (y - py) ** 2
            cap = np.sqrt(np.clip(r * r - d2, 0.0, None)) / r
            better = cap > height
            height = np.where(better, cap, height)
            owner[better] = np.stack([wy, wx], axis=-1)[better]
    hue = np.where(owner[..., 0] >= 0, hues[owner[..., 0], owner[..., 1]], 0.5)
    base = np.stack([0.7 - 0.3 * hue, 0.25 + 0.2 * hue, 0.2 + 0.3 * (1 - hue)], axis=-1)
    ground = np.array([0.35, 0.33, 0.30])
    albedo = np.where((height > 0)[..., None], base, ground)
    rough = np.where(height > 0, p.roughness, 2.0 * p.roughness)
    return dict(
        height=height * p.height_scale, albedo=albedo, roughness=rough, metallic=0.0,
        specular=0.04,
    )


def _tiles(u, v, p: ProceduralParams, rng) -> dict:
    """Square tiles with bevelled edges and recessed grout; each tile has its own tint and a
    slight waviness."""
    n = p.cells
    grout = float(p.extra.get("grout", 0.08))
    a = np.floor(u * n).astype(int)
    b = np.floor(v * n).astype(int)
    fu = u * n - a
    fv = v * n - b
    edge = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv))
    bevel = np.clip((edge - grout / 2) / grout, 0.0, 1.0)
    bevel = bevel * bevel * (3 - 2 * bevel)
    wav = fractal_noise(u, v, (8, 8), 3, rng)
    height = (0.85 * bevel + 0.15 * wav * bevel) * p.height_scale
    tints = 0.45 + 0.4 * rng.random((n, n, 3)) * np.array([0.5, 0.7, 1.0])
    tile_col = tints[b % n, a % n]
    grout_col = np.array([0.7, 0.68, 0.64])
    albedo = np.where((bevel > 0)[..., None], tile_col, grout_col)
    rough = np.where(bevel > 0.5, p.roughness, 4.0 * p.roughness)
    return dict(height=height, albedo=albedo, roughness=rough, metallic=0.0, specular=0.04)


def _scratched_metal(u, v, p: ProceduralParams, rng) -> dict:
    """Polished metal with ``extra.scratches`` random straight grooves (wrapping at the border) on
    a faintly wavy base; grooves are rougher than the base."""
    count = int(p.extra.get("scratches", 40))
    width = float(p.extra.get("width", 0.006))
    groove = np.zeros_like(u)
    for _ in range(count):
        c = rng.random(2)
        ang = rng.uniform(0, np.pi)
        half = rng.uniform(0.1, 0.4)
        d = np.array([np.cos(ang), np.sin(ang)])
        # Minimum-image offsets make the segment wrap around the tile.
        ox = (u - c[0] + 0.5) % 1.0 - 0.5
        oy = (v - c[1] + 0.5) % 1.0 - 0.5
        t = np.clip(ox * d[0] + oy * d[1], -half, half)
        dist = np.hypot(ox - t * d[0], oy - t * d[1])
        groove = np.maximum(groove, rng.uniform(0.5, 1.0) * np.exp(-((dist / width) ** 2)))
    base = fractal_noise(u, v, (4, 4), 3, rng)
    height = (0.2 * base - groove) * p.height_scale
    albedo = np.broadcast_to(np.array([0.91, 0.92, 0.92]), u.shape + (3,)) * (
        1.0 - 0.15 * groove[..., None]
    )
    rough = p.roughness * (1.0 + 2.0 * groove)
    return dict(height=height, albedo=albedo, roughness=rough, metallic=1.0, specular=0.04)


def _leather(u, v, p: ProceduralParams, rng) -> dict:
    """Grain of leather: cellular (Worley F2 - F1) relief on ``cells`` x ``cells`` jittered
    points, brown, fairly rough."""
    n = p.cells
    pts = rng.random((n, n, 2))
    x = u * n
    y = v * n
    cx0 = np.floor(x).astype(int)
    cy0 = np.floor(y).astype(int)
    f1 = np.full(u.shape, np.inf)
    f2 = np.full(u.shape, np.inf)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx = cx0 + dx
            cy = cy0 + dy
            q = pts[cy % n, cx % n]
            d = np.hypot(x - (cx + q[..., 0]), y - (cy + q[..., 1]))
            f2 = np.where(d < f1, f1, np.minimum(f2, d))
            f1 = np.minimum(f1, d)
    ridge = np.clip(f2 - f1, 0.0, 1.0)
    relief = np.sqrt(ridge)
    tone = fractal_noise(u, v, (8, 8), 3, rng)
    albedo = np.array([0.42, 0.24, 0.13]) * (0.75 + 0.4 * tone[..., None]) * (
        0.7 + 0.3 * relief[..., None]
    )
    rough = p.roughness * (0.9 + 0.3 * (1 - relief))
    return dict(
        height=relief * p.height_scale, albedo=albedo, roughness=rough, metallic=0.0,
        specular=0.04,
    )


def _brushed_metal(u, v, p: ProceduralParams, rng) -> dict:
    """Brushed aluminium: fine streaks along u (noise stretched 32x along the brushing)."""
    streaks = fractal_noise(u, v, (4, 128), 3, rng)
    albedo = np.broadcast_to(np.array([0.91, 0.92, 0.92]), u.shape + (3,)) * (
        0.9 + 0.1 * streaks[..., None]
    )
    rough = p.roughness * (0.8 + 0.4 * streaks)
    return dict(
        height=streaks * p.height_scale, albedo=albedo, roughness=rough, metallic=1.0,
        specular=0.04,
    )


PATTERNS: dict[str, Pattern] = {
    "weave": Pattern(_weave, dict(height_scale=0.025, roughness=0.35, cells=6), "basket weave"),
    "bumps": Pattern(_bumps, dict(height_scale=0.02, roughness=0.15, cells=8), "plastic bumps"),
    "tiles": Pattern(_tiles, dict(height_scale=0.012, roughness=0.08, cells=4), "ceramic tiles"),
    "scratched_metal": Pattern(
        _scratched_metal, dict(height_scale=0.006, roughness=0.12, cells=1), "scratched metal"
    ),
    "leather": Pattern(_leather, dict(height_scale=0.01, roughness=0.45, cells=12), "leather"),
    "brushed_metal": Pattern(
        _brushed_metal, dict(height_scale=0.004, roughness=0.2, cells=1), "brushed aluminium"
    ),
}

#: Named materials: (pattern, displaced). The names are what ``material=...`` takes.
MATERIALS: dict[str, tuple[str, bool]] = {
    "weave": ("weave", True),
    "bumps": ("bumps", True),
    "tiles": ("tiles", True),
    "scratched_metal": ("scratched_metal", True),
    "leather": ("leather", False),
    "brushed_metal": ("brushed_metal", False),
    "bumps_flat": ("bumps", False),
}


def default_params(name: str) -> ProceduralParams:
    """The parameters a named material uses when the config does not override them."""
    if name not in MATERIALS:
        raise ValueError(f"unknown material {name!r}; known: {', '.join(sorted(MATERIALS))}")
    pattern, displaced = MATERIALS[name]
    return ProceduralParams(displaced=displaced, **PATTERNS[pattern].defaults)


def procedural_maps(name: str, resolution: int, params: ProceduralParams | None = None) -> SVBRDFMaps:
    """The SVBRDF maps of the named procedural material at ``resolution`` x ``resolution``."""
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    params = params or default_params(name)
    pattern, _ = MATERIALS[name]
    rng = np.random.default_rng(params.seed)
    u, v = uv_grid(resolution)
    out = PATTERNS[pattern].fn(u, v, params, rng)
    height_texels = np.asarray(out["height"], dtype=np.float64) * resolution
    maps = make_maps(
        height_texels,
        np.asarray(out["albedo"], dtype=np.float64),
        np.asarray(out["roughness"], dtype=np.float64),
        out["metallic"],
        out["specular"],
        displaced=params.displaced,
    )
    maps.validate(f"material {name!r}")
    return maps
