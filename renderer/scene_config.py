"""Typed scene configuration (conf/scene/*.yaml) and the scenes it builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from plumbing.config_checks import require
from renderer.camera import PinholeCamera
from renderer.geometry import Cylinder, GroundPlane, Sphere
from renderer.lights import DirectionalLight, PointLight
from renderer.render import Scene


@dataclass
class SceneConfig:
    """One demo scene: a shape with the material tiled on it, a camera and a light."""

    name: str = "plane"
    shape: str = "plane"
    """plane (the classic mipmap test: a ground plane to the horizon), sphere or cylinder."""
    texture_size: float = 0.25
    """plane: world size of one copy of the material (the tiling scale)."""
    tiles: float = 8.0
    """sphere, cylinder: copies of the material around the circumference."""
    center: list[float] = field(default_factory=lambda: [0.0, 1.0, 0.0])
    """sphere centre; cylinder bottom centre."""
    radius: float = 1.0
    height: float = 2.0
    """cylinder height."""
    eye: list[float] = field(default_factory=lambda: [0.0, 0.6, 0.0])
    target: list[float] = field(default_factory=lambda: [0.0, -0.9, -4.0])
    """Default: looking down about 21 degrees, so that the plane fills the frame up to a horizon
    near the top (at 50 degrees fov, about 8% of the image is sky)."""
    up: list[float] = field(default_factory=lambda: [0.0, 1.0, 0.0])
    fov_y: float = 50.0
    light: str = "directional"
    """directional or point."""
    light_direction: list[float] = field(default_factory=lambda: [0.3, 0.8, -0.5])
    irradiance: float = 3.0
    light_position: list[float] = field(default_factory=lambda: [1.0, 3.0, 1.0])
    intensity: float = 30.0

    def __post_init__(self) -> None:
        for key in ("texture_size", "tiles", "radius", "height", "irradiance", "intensity"):
            require(getattr(self, key) > 0, f"scene.{key}", getattr(self, key), "> 0")
        require(0 < self.fov_y < 180, "scene.fov_y", self.fov_y, "in (0, 180) degrees")


#: Each scene shape and how its config builds it (a new shape: its class in renderer/geometry.py
#: and one row here; a new scene of a known shape: one conf/scene/<name>.yaml).
SHAPES: dict[str, Callable[[SceneConfig], GroundPlane | Sphere | Cylinder]] = {
    "plane": lambda cfg: GroundPlane(height=0.0, texture_size=cfg.texture_size),
    "sphere": lambda cfg: Sphere(center=tuple(cfg.center), radius=cfg.radius, tiles=cfg.tiles),
    "cylinder": lambda cfg: Cylinder(base=tuple(cfg.center), radius=cfg.radius, height=cfg.height,
                                     tiles=cfg.tiles),
}


def build_scene(cfg: SceneConfig, width: int, height: int) -> Scene:
    """The scene a config describes, rendered at width x height."""
    if cfg.shape not in SHAPES:
        raise ValueError(f"unknown scene shape {cfg.shape!r}; known: {', '.join(SHAPES)}")
    shape = SHAPES[cfg.shape](cfg)
    if cfg.light == "directional":
        light = DirectionalLight(tuple(cfg.light_direction), cfg.irradiance)
    elif cfg.light == "point":
        light = PointLight(tuple(cfg.light_position), cfg.intensity)
    else:
        raise ValueError(f"unknown light {cfg.light!r}; use 'directional' or 'point'")
    camera = PinholeCamera(tuple(cfg.eye), tuple(cfg.target), tuple(cfg.up), cfg.fov_y, width, height)
    return Scene(cfg.name, shape, camera, light)
