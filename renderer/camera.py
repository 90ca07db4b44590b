"""A pinhole camera that also gives each ray's differentials (how its direction changes from one
pixel to the next), from which the renderer gets every pixel's texture footprint.

World space is right-handed with y up. Pixel (x, y) has its centre at (x + 0.5, y + 0.5); y
grows downwards in the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class PinholeCamera:
    """eye, target, up: world-space 3-vectors; fov_y in degrees; width, height in pixels."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fov_y: float = 40.0
    width: int = 512
    height: int = 512

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be at least 1 x 1, got {self.width} x {self.height}")
        if not 0.0 < self.fov_y < 180.0:
            raise ValueError(f"fov_y must be in (0, 180) degrees, got {self.fov_y}")

    def basis(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(forward, right, down) unit vectors of the image plane."""
        eye = torch.tensor(self.eye, dtype=torch.float32, device=device)
        fwd = torch.tensor(self.target, dtype=torch.float32, device=device) - eye
        if fwd.norm() == 0:
            raise ValueError("camera eye and target coincide")
        fwd = fwd / fwd.norm()
        right = torch.linalg.cross(fwd, torch.tensor(self.up, dtype=torch.float32, device=device))
        if right.norm() < 1e-6:
            raise ValueError("camera up is parallel to the viewing direction")
        right = right / right.norm()
        down = torch.linalg.cross(fwd, right)
        return fwd, right, down

    @property
    def pixel_scale(self) -> float:
        """Image-plane units per pixel at distance 1."""
        return 2.0 * math.tan(math.radians(self.fov_y) / 2.0) / self.height

    def rays(self, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Rays through continuous pixel positions px, py (N,).

        Returns origins (N, 3), unit directions d (N, 3), and dd/dx, dd/dy (N, 3): the change of
        d for a step of one pixel.
        """
        dev = px.device
        fwd, right, down = self.basis(dev)
        scale = self.pixel_scale
        sx = (px - self.width / 2.0) * scale
        sy = (py - self.height / 2.0) * scale
        raw = fwd + sx[:, None] * right + sy[:, None] * down  # (N, 3), not unit
        length = (raw[:, 0] ** 2 + raw[:, 1] ** 2 + raw[:, 2] ** 2).sqrt()[:, None]
        d = raw / length

        def diff(axis: torch.Tensor) -> torch.Tensor:
            # d(raw / |raw|) for raw += scale * axis
            da = scale * axis
            return (da - d * (d @ da)[:, None]) / length

        origins = torch.tensor(self.eye, dtype=torch.float32, device=dev).expand_as(d)
        return origins, d, diff(right), diff(down)
