"""Lights: what direction the light comes from at a point, and the irradiance it delivers there
on a surface facing it (the renderer multiplies by cos(theta_i))."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DirectionalLight:
    """A light at infinity: ``direction`` points towards the light; ``irradiance`` (RGB or
    scalar) is measured on a surface facing it."""

    direction: tuple[float, float, float] = (0.4, 1.0, 0.3)
    irradiance: float = 3.0

    def unit_direction(self, dtype: torch.dtype = torch.float32,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        """The direction towards the light (3,), unit; a zero direction is refused."""
        d = torch.tensor(self.direction, dtype=dtype, device=device)
        if d.norm() == 0:
            raise ValueError("directional light direction must be non-zero")
        return d / d.norm()

    def incident(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(wi (N, 3) unit towards the light, irradiance (N, 1)) at points p (N, 3)."""
        wi = self.unit_direction(p.dtype, p.device).expand_as(p)
        return wi, torch.full((p.shape[0], 1), float(self.irradiance), dtype=p.dtype, device=p.device)


@dataclass
class PointLight:
    """An isotropic point light at ``position`` with radiant ``intensity`` (W/sr): irradiance
    intensity / distance^2."""

    position: tuple[float, float, float] = (1.0, 3.0, 1.0)
    intensity: float = 30.0

    def incident(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        to_light = torch.tensor(self.position, dtype=p.dtype, device=p.device) - p
        dist2 = (to_light * to_light).sum(1, keepdim=True).clamp_min(1e-12)
        return to_light / dist2.sqrt(), self.intensity / dist2
