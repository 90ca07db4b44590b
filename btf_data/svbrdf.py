"""SVBRDF maps: what a synthetic material is made of, before it is rendered to a BTF."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SVBRDFMaps:
    """The maps of one tileable material at the BTF's level-0 resolution (H, W).

    albedo: (H, W, 3) linear RGB in [0, 1]; height: (H, W) in level-0 texels, shifted so that
    its maximum is 0 (the BTF's reference plane is the top of the heightfield; all zeros for a
    normal-mapped plane); normal: (H, W, 3) unit shading normals, z > 0; roughness: (H, W) GGX
    alpha; metallic: (H, W) in [0, 1]; specular: (H, W) dielectric F0.
    """

    albedo: np.ndarray
    height: np.ndarray
    normal: np.ndarray
    roughness: np.ndarray
    metallic: np.ndarray
    specular: np.ndarray

    @property
    def resolution(self) -> tuple[int, int]:
        return self.height.shape[0], self.height.shape[1]

    @property
    def displaced(self) -> bool:
        """True when the heightfield has relief (parallax and shadows), False for a plane."""
        return bool(np.ptp(self.height) > 0)

    def validate(self, where: str) -> None:
        """Refuse maps of the wrong shape or with values outside their range."""
        h, w = self.height.shape
        expect = {
            "albedo": (h, w, 3),
            "normal": (h, w, 3),
            "roughness": (h, w),
            "metallic": (h, w),
            "specular": (h, w),
        }
        for name, shape in expect.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"{where}: map {name!r} has shape {arr.shape}, expected {shape}")
        for name in ("albedo", "height", "normal", "roughness", "metallic", "specular"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{where}: map {name!r} has NaN or infinite values")
        if np.any(self.normal[..., 2] <= 0):
            raise ValueError(f"{where}: normal map has normals at or below the horizon (z <= 0)")
        if np.any(self.roughness <= 0):
            raise ValueError(f"{where}: roughness (GGX alpha) must be > 0")


def normal_from_height(height: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) of a tileable heightfield given in texel units (H, W).

    Central differences with wrap-around: n = normalize(-dh/dx, -dh/dy, 1), x along columns (u),
    y along rows (v).
    """
    dx = 0.5 * (np.roll(height, -1, axis=1) - np.roll(height, 1, axis=1))
    dy = 0.5 * (np.roll(height, -1, axis=0) - np.roll(height, 1, axis=0))
    n = np.stack([-dx, -dy, np.ones_like(height)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def make_maps(
    height_texels: np.ndarray,
    albedo: np.ndarray,
    roughness: np.ndarray,
    metallic: np.ndarray | float,
    specular: np.ndarray | float,
    displaced: bool,
    normal: np.ndarray | None = None,
) -> SVBRDFMaps:
    """Assemble maps: normals come from the height unless given; a normal-mapped plane keeps the
    normals but flattens the height to zero."""
    shape = height_texels.shape
    if normal is None:
        normal = normal_from_height(height_texels)
    height = height_texels - height_texels.max() if displaced else np.zeros(shape)
    maps = SVBRDFMaps(
        albedo=np.clip(albedo, 0.0, 1.0).astype(np.float32),
        height=height.astype(np.float32),
        normal=normal.astype(np.float32),
        roughness=np.broadcast_to(roughness, shape).astype(np.float32),
        metallic=np.broadcast_to(np.asarray(metallic, np.float32), shape).copy(),
        specular=np.broadcast_to(np.asarray(specular, np.float32), shape).copy(),
    )
    return maps
