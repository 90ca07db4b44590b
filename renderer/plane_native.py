"""The ground plane's pixel queries through the native kernel (``plane_kernel.c``): the same
numbers as :func:`renderer.render.plane_queries`, in one pass per pixel on the CPU (issue 22:
about 55 ms of a 1080p frame in torch's elementwise passes). :func:`native_plane_queries` returns
None where the kernel cannot serve (no C compiler, ``NEUMIP_NATIVE=0``, not the CPU, a light it
does not know): the caller then keeps the torch closed form."""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from plumbing.native_build import data_pointer as ptr
from plumbing.native_build import load_or_none
from renderer.lights import DirectionalLight, PointLight

if TYPE_CHECKING:
    from renderer.render import PixelQueries, Scene

_p = ctypes.c_void_p


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    return load_or_none(Path(__file__).with_name("plane_kernel.c"), {
        "plane_queries": ([_p, _p, ctypes.c_int64, _p, _p, ctypes.c_int, _p, ctypes.c_float,
                           _p, _p, _p, _p, _p, _p, _p, ctypes.c_int], None),
    }, "torch's closed form")


def _light(scene: Scene) -> tuple[int, torch.Tensor, float] | None:
    """(kind, vector, value) of the scene's light as the kernel takes it; None for another light."""
    light = scene.light
    if isinstance(light, DirectionalLight):
        return 0, light.unit_direction(), float(light.irradiance)
    if isinstance(light, PointLight):
        return 1, torch.tensor(light.position, dtype=torch.float32), float(light.intensity)
    return None


def native_plane_queries(scene: Scene, px: torch.Tensor, py: torch.Tensor,
                         footprint: bool = True) -> PixelQueries | None:
    """:func:`renderer.render.plane_queries` for px, py (N,) float32 on the CPU, or None where
    the kernel does not serve."""
    from renderer.render import PixelQueries

    light = _light(scene)
    if px.device.type != "cpu" or light is None or _library() is None:
        return None
    cam, plane = scene.camera, scene.shape
    fwd, right, down = cam.basis(px.device)
    cam_v = torch.cat([torch.tensor(cam.eye, dtype=torch.float32), fwd, right, down,
                       torch.tensor([cam.pixel_scale, cam.width, cam.height], dtype=torch.float32)])
    plane_v = torch.tensor([plane.height, plane.texture_size], dtype=torch.float32)
    kind, vec, value = light
    px, py = px.float().contiguous(), py.float().contiguous()
    n = px.shape[0]
    valid = torch.empty(n, dtype=torch.bool)
    uv, wo, wi = torch.empty(n, 2), torch.empty(n, 3), torch.empty(n, 3)
    irradiance = torch.empty(n, 1)
    duvdx, duvdy = (torch.empty(n, 2), torch.empty(n, 2)) if footprint else (None, None)
    _library().plane_queries(ptr(px), ptr(py), n, ptr(cam_v), ptr(plane_v), kind, ptr(vec.contiguous()),
                             value, ptr(valid), ptr(uv), ptr(wo), ptr(wi), ptr(irradiance), ptr(duvdx),
                             ptr(duvdy), torch.get_num_threads())
    return PixelQueries(valid, uv, wo, wi, irradiance, duvdx, duvdy)
