"""MIPNet's training data: several hundred varied procedural SVBRDFs made on the spot.

MIPNet's own training set is proprietary, so the networks learn from the project's procedural
patterns with randomised parameters (seed, relief, roughness, cell count), half of them with an
extra layer of noise relief, plus pure fractal-noise normal maps of random frequency, amplitude,
colour and roughness, some metallic. One pattern family (leather's, by default) is never drawn,
so the suite's leather is a material MIPNet has not seen. Every material keeps its height, so
that the height channel sees real values; each training crop drops it with probability
``height_dropout``, since the project's normal-mapped planes carry none. Held-out materials use other seeds.

A set is a float16 tensor (N, R, R, 10): normal (3), alpha (1), albedo (3), metallic (1),
specular (1), height in uv units, centred (1); cached as .npy so that a resumed run does not
make it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from btf_data.procedural import PATTERNS, ProceduralParams, fractal_noise, procedural_maps, uv_grid
from btf_data.svbrdf import SVBRDFMaps, make_maps
from plumbing.atomic import atomic_path
from plumbing.config_checks import require

#: Channel slices of a stored material.
CHANNELS = {"normal": slice(0, 3), "alpha": slice(3, 4), "albedo": slice(4, 7),
            "metallic": slice(7, 8), "specular": slice(8, 9), "height": slice(9, 10)}


@dataclass
class MaterialSetConfig:
    """How many materials, at which size (conf/mipnet_train.yaml: data)."""

    n_train: int = 320
    n_held_out: int = 32
    resolution: int = 256
    seed: int = 0
    """Held-out materials use seeds from seed + 1,000,000 on."""
    roughness_min: float = 0.03
    roughness_max: float = 0.6
    """GGX alpha is drawn log-uniformly in [roughness_min, roughness_max] (patterns then vary it
    across the material)."""
    noise_share: float = 0.3
    """Share of pure fractal-noise normal maps; the rest are the project's patterns."""
    excluded_patterns: list[str] = field(default_factory=lambda: ["leather"])
    """Patterns never drawn, for training nor held-out, so that the suite's materials made from
    them are truly unseen by MIPNet (default: leather, a normal-mapped material of the suite)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.excluded_patterns) - set(PATTERNS))
        require(not unknown, "data.excluded_patterns", unknown, f"names of {', '.join(sorted(PATTERNS))}")
        require(bool(self.drawn_patterns()), "data.excluded_patterns", self.excluded_patterns,
                "to leave at least one pattern")

    def drawn_patterns(self) -> list[str]:
        """The patterns the set draws from, sorted."""
        return sorted(set(PATTERNS) - set(self.excluded_patterns))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _pattern_material(rng: np.random.Generator, resolution: int, cfg: MaterialSetConfig) -> SVBRDFMaps:
    name = str(rng.choice(cfg.drawn_patterns()))
    d = PATTERNS[name].defaults
    params = ProceduralParams(
        seed=int(rng.integers(2**31)),
        height_scale=float(d["height_scale"] * np.exp(rng.uniform(np.log(0.4), np.log(2.5)))),
        roughness=float(log_uniform(rng, cfg.roughness_min, cfg.roughness_max)),
        cells=max(1, int(round(d["cells"] * rng.choice([0.5, 1.0, 1.5, 2.0])))),
        displaced=True,
    )
    maps = procedural_maps(name, resolution, params)
    if rng.random() < 0.5:  # an extra layer of fine relief
        u, v = uv_grid(resolution)
        f = int(rng.choice([8, 16, 32]))
        noise = fractal_noise(u, v, (f, f), 3, rng) * rng.uniform(0.002, 0.01) * resolution
        maps = make_maps(maps.height + noise, maps.albedo, maps.roughness, maps.metallic,
                         maps.specular, displaced=True)
    return maps


def _noise_material(rng: np.random.Generator, resolution: int, cfg: MaterialSetConfig) -> SVBRDFMaps:
    u, v = uv_grid(resolution)
    f = int(rng.choice([2, 4, 8, 16, 32]))
    aspect = int(rng.choice([1, 1, 1, 4]))  # some streaky (anisotropic) noise
    height = fractal_noise(u, v, (f, f * aspect), int(rng.integers(1, 5)), rng)
    height = height * rng.uniform(0.002, 0.04) * resolution
    tone = fractal_noise(u, v, (4, 4), 3, rng)[..., None]
    albedo = rng.uniform(0.05, 0.9, 3) * (0.7 + 0.6 * tone)
    alpha = log_uniform(rng, cfg.roughness_min, cfg.roughness_max)
    rough = alpha * (0.7 + 0.6 * fractal_noise(u, v, (8, 8), 2, rng))
    metallic = float(rng.random() < 0.25)
    return make_maps(height, albedo, rough, metallic, 0.04, displaced=True)


def random_material(seed: int, resolution: int, cfg: MaterialSetConfig) -> SVBRDFMaps:
    """One random training material, a function of its seed."""
    rng = np.random.default_rng(seed)
    if rng.random() < cfg.noise_share:
        return _noise_material(rng, resolution, cfg)
    return _pattern_material(rng, resolution, cfg)


def pack_material(maps: SVBRDFMaps) -> np.ndarray:
    """SVBRDF maps -> (R, R, 10) float16 in the channel order of :data:`CHANNELS`."""
    h = maps.height / maps.resolution[0]
    return np.concatenate([
        maps.normal, maps.roughness[..., None], maps.albedo, maps.metallic[..., None],
        maps.specular[..., None], (h - h.mean())[..., None],
    ], axis=-1).astype(np.float16)


def material_set(cfg: MaterialSetConfig, held_out: bool, cache_dir: str | Path | None = None,
                 progress: bool = True) -> torch.Tensor:
    """The training (or held-out) materials as (N, R, R, 10) float16, from the cache if there."""
    n = cfg.n_held_out if held_out else cfg.n_train
    first = cfg.seed + (1_000_000 if held_out else 0)
    cache = None
    if cache_dir is not None:
        tag = "held_out" if held_out else "train"
        digest = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]
        cache = Path(cache_dir) / f"{tag}_{n}x{cfg.resolution}_{digest}.npy"
        if cache.is_file():
            arr = np.load(cache, allow_pickle=False)
            if arr.shape == (n, cfg.resolution, cfg.resolution, 10):
                return torch.from_numpy(arr)
    out = np.empty((n, cfg.resolution, cfg.resolution, 10), np.float16)
    for i in tqdm(range(n), desc=f"materials ({'held-out' if held_out else 'train'})",
                  disable=not progress):
        out[i] = pack_material(random_material(first + i, cfg.resolution, cfg))
    if cache is not None:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, out)
    return torch.from_numpy(out)
