"""Direction sets on the upper hemisphere and the split of (wo, wi) pairs into training and
held-out sets.

Named sets are rings of constant elevation: a ring is (theta in degrees, number of azimuths),
azimuths evenly spaced from phi = 0. ``random`` sets draw every direction on its own, uniform on
the projected disk up to a maximum elevation, as the official NeuMIP data do, so a model learns
continuous directions rather than a grid. Directions are unit vectors, z up.
"""

from __future__ import annotations

import numpy as np

#: Named direction sets as rings (theta_deg, count).
#: ``ubo2014`` has the size (151) and elevation range (0..75 deg) of the UBO2014 captures, with
#: ring counts roughly proportional to sin(theta) so that directions are close to uniform on the
#: hemisphere. It is *not* claimed to be the capture's exact angle list: an imported UBO2014
#: file carries its own angles, read from the FMF1 header.
DIRECTION_SETS: dict[str, tuple[tuple[float, int], ...]] = {
    "tiny": ((0.0, 1), (45.0, 4)),
    "small": ((0.0, 1), (30.0, 6), (60.0, 12)),
    "medium": ((0.0, 1), (25.0, 6), (50.0, 8), (70.0, 10)),
    "dense": ((0.0, 1), (18.0, 6), (36.0, 11), (54.0, 15), (72.0, 16)),
    "ubo2014": (
        (0.0, 1),
        (12.5, 8),
        (25.0, 16),
        (37.5, 24),
        (50.0, 30),
        (62.5, 36),
        (75.0, 36),
    ),
}


def spherical_to_cartesian(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors for elevation ``theta`` and azimuth ``phi`` (radians, same shape S).

    Returns (*S, 3); theta = 0 is the normal (z), phi = 0 is +x.
    """
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def direction_set(name: str) -> np.ndarray:
    """The named direction set as (n, 3) float64 unit vectors with z > 0."""
    if name not in DIRECTION_SETS:
        known = ", ".join(sorted(DIRECTION_SETS))
        raise ValueError(f"unknown direction set {name!r}; known sets: {known}")
    thetas, phis = [], []
    for theta_deg, count in DIRECTION_SETS[name]:
        thetas += [np.deg2rad(theta_deg)] * count
        phis += list(2.0 * np.pi * np.arange(count) / count)
    return spherical_to_cartesian(np.asarray(thetas), np.asarray(phis))


def split_pairs(n_wo: int, n_wi: int, held_out_fraction: float, seed: int) -> np.ndarray:
    """Assign each (wo, wi) pair to training (0) or held-out (1): (n_wo, n_wi) uint8.

    Pairs are held out at random (a fixed seed makes it reproducible), at least one pair on each
    side when there are two or more pairs, so evaluation always has data.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    n = n_wo * n_wi
    n_held = int(round(held_out_fraction * n))
    if held_out_fraction > 0 and n >= 2:
        n_held = min(max(n_held, 1), n - 1)
    rng = np.random.default_rng(seed)
    split = np.zeros(n, dtype=np.uint8)
    split[rng.permutation(n)[:n_held]] = 1
    return split.reshape(n_wo, n_wi)


def random_directions(n: int, max_theta_deg: float, seed: int) -> np.ndarray:
    """n directions (n, 3) uniform on the projected unit disk (density proportional to
    cos theta) up to elevation ``max_theta_deg``; a fixed seed makes the set reproducible."""
    if n < 1:
        raise ValueError(f"a random direction set needs at least 1 direction, got {n}")
    if not 0.0 < max_theta_deg < 90.0:
        raise ValueError(f"max_theta must be in (0, 90) degrees, got {max_theta_deg}")
    rng = np.random.default_rng(seed)
    r = np.sqrt(rng.random(n)) * np.sin(np.deg2rad(max_theta_deg))
    phi = 2.0 * np.pi * rng.random(n)
    return spherical_to_cartesian(np.arcsin(r), phi)


def split_by_direction(n_wo: int, n_wi: int, held_out_fraction: float, seed: int) -> np.ndarray:
    """Hold out whole directions: a ``held_out_fraction`` of the views and of the lights; every
    pair with a held-out view or light is held out (n_wo, n_wi) uint8, so the held-out pairs use
    directions training never sees (at least one view and one light on each side)."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    rng = np.random.default_rng(seed)

    def pick(n: int) -> np.ndarray:
        k = int(round(held_out_fraction * n))
        if held_out_fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        out = np.zeros(n, dtype=bool)
        out[rng.permutation(n)[:k]] = True
        return out

    views, lights = pick(n_wo), pick(n_wi)
    return (views[:, None] | lights[None, :]).astype(np.uint8)
