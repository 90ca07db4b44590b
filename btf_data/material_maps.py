"""User materials from texture maps: height, albedo, roughness and optionally normal maps, as
8/16-bit PNG, EXR or .npy, turned into :class:`SVBRDFMaps` at the requested resolution."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from btf_data.errors import MaterialMapError
from btf_data.svbrdf import SVBRDFMaps, make_maps


@dataclass
class MapsConfig:
    """Paths and scales of a user material (``material=maps``)."""

    height: str | None = None
    """Height map; its values in [0, 1] (PNG) or as stored (EXR/npy) times height_scale give the
    height in level-0 texels. None: a flat plane."""
    albedo: str | None = None
    """Albedo map (PNG is read as sRGB and linearised; EXR/npy as linear). None: 0.5 grey."""
    roughness: str | None = None
    """Perceptual roughness map in [0, 1]; GGX alpha = roughness^2. None: roughness_value."""
    roughness_value: float = 0.5
    """Perceptual roughness used when no roughness map is given."""
    normal: str | None = None
    """Tangent-space normal map (RGB = (n + 1) / 2). None: normals from the height map."""
    normal_convention: str = "opengl"
    """``opengl`` (green points to -v, towards the image's top) or ``directx`` (green to +v)."""
    metallic: float = 0.0
    specular: float = 0.04
    height_scale: float = 4.0
    """Height of a unit height-map value, in level-0 texels of the output resolution."""
    displaced: bool = True
    """Render the relief with parallax and shadows; False gives a normal-mapped plane."""


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def load_map(path: str | Path) -> tuple[np.ndarray, bool]:
    """Read a map as float64 (H, W, C). Returns (values, encoded): PNG values are scaled to
    [0, 1] from their bit depth and flagged as display-encoded; EXR and .npy are returned raw."""
    path = Path(path)
    if not path.is_file():
        raise MaterialMapError(path, "no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr, encoded = np.load(path, allow_pickle=False).astype(np.float64), False
        elif suffix == ".exr":
            import OpenEXR

            with OpenEXR.File(str(path)) as f:
                chans = f.channels()
                if "RGB" in chans:
                    arr = chans["RGB"].pixels
                elif "RGBA" in chans:
                    arr = chans["RGBA"].pixels[..., :3]
                else:
                    arr = next(iter(chans.values())).pixels
            arr, encoded = np.asarray(arr, dtype=np.float64), False
        elif suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(path) as im:
                mode = im.mode
                a = np.asarray(im)
            if a.dtype == np.uint8:
                scale = 255.0
            elif mode.startswith("I;16") or a.dtype == np.uint16 or mode == "I":
                scale = 65535.0
            else:
                raise MaterialMapError(path, f"unsupported image mode {mode}")
            arr, encoded = a.astype(np.float64) / scale, True
        else:
            raise MaterialMapError(path, f"unsupported map format {suffix!r} (use PNG, EXR or .npy)")
    except MaterialMapError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise MaterialMapError(path, f"cannot read map ({e})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise MaterialMapError(path, f"map has shape {arr.shape}, expected (H, W) or (H, W, C)")
    if not np.isfinite(arr).all():
        raise MaterialMapError(path, "map has NaN or infinite values")
    return arr, encoded


def _resize(arr: np.ndarray, resolution: int) -> np.ndarray:
    """Resample (H, W, C) to (R, R, C): area-averaging down, bilinear up."""
    if arr.shape[:2] == (resolution, resolution):
        return arr
    t = torch.from_numpy(arr).permute(2, 0, 1)[None]
    shrink = arr.shape[0] >= resolution and arr.shape[1] >= resolution
    mode = "area" if shrink else "bilinear"
    kw = {} if shrink else {"align_corners": False}
    out = F.interpolate(t, size=(resolution, resolution), mode=mode, **kw)
    return out[0].permute(1, 2, 0).numpy()


def _channels(arr: np.ndarray, n: int, path: str) -> np.ndarray:
    if arr.shape[2] == n:
        return arr
    if n == 1:
        return arr[..., :3].mean(axis=2, keepdims=True)
    if arr.shape[2] == 1:
        return np.repeat(arr, n, axis=2)
    if arr.shape[2] >= n:
        return arr[..., :n]
    raise MaterialMapError(path, f"map has {arr.shape[2]} channels, expected {n}")


def maps_material(cfg: MapsConfig, resolution: int) -> SVBRDFMaps:
    """Build the SVBRDF of a user material at ``resolution`` x ``resolution``."""
    r = resolution
    if cfg.normal_convention not in ("opengl", "directx"):
        raise ValueError(f"normal_convention must be 'opengl' or 'directx', got {cfg.normal_convention!r}")
    if cfg.height is None and cfg.albedo is None and cfg.normal is None:
        raise ValueError("material=maps needs at least one of height, albedo or normal maps")
    if cfg.height is not None:
        h, _ = load_map(cfg.height)
        height = _resize(_channels(h, 1, cfg.height), r)[..., 0] * cfg.height_scale
    else:
        height = np.zeros((r, r))
    if cfg.albedo is not None:
        a, encoded = load_map(cfg.albedo)
        a = _channels(a, 3, cfg.albedo)
        albedo = _resize(srgb_to_linear(np.clip(a, 0, 1)) if encoded else a, r)
    else:
        albedo = np.full((r, r, 3), 0.5)
    if cfg.roughness is not None:
        rough = _resize(_channels(load_map(cfg.roughness)[0], 1, cfg.roughness), r)[..., 0]
    else:
        rough = np.full((r, r), cfg.roughness_value)
    alpha = np.clip(rough, 0.02, 1.0) ** 2
    normal = None
    if cfg.normal is not None:
        n, encoded = load_map(cfg.normal)
        n = _resize(_channels(n, 3, cfg.normal), r)
        n = 2.0 * n - 1.0 if encoded else n
        if cfg.normal_convention == "opengl":
            n[..., 1] = -n[..., 1]
        n[..., 2] = np.clip(n[..., 2], 1e-3, None)
        normal = n / np.linalg.norm(n, axis=-1, keepdims=True)
    maps = make_maps(height, albedo, alpha, cfg.metallic, cfg.specular, cfg.displaced, normal)
    maps.validate("material=maps")
    return maps
