"""User materials from texture maps: height, albedo, roughness and optionally normal maps, as
8/16-bit PNG, EXR or .npy, turned into :class:`SVBRDFMaps` at the requested resolution.

What is read, and what is refused (one line naming the file):
- alpha is dropped: a grey + alpha map (2 channels) is its grey, an RGBA map its RGB;
- a one-channel map (height, roughness) given in RGB must have equal channels (a grey image
  saved as RGB); one whose channels differ is refused rather than averaged;
- maps are square and of one size (they are resampled to the output resolution together), so a
  non-square map, or maps of different sizes, are refused rather than stretched;
- roughness values must lie in [0, 1] (refused with the range found, never clamped); roughness
  below 0.02 is shaded as 0.02, since GGX needs a non-zero width.
"""

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
    """Perceptual roughness map in [0, 1] (values outside are refused); GGX alpha = roughness^2,
    roughness below 0.02 shaded as 0.02. None: roughness_value."""
    roughness_value: float = 0.5
    """Perceptual roughness in [0, 1] used when no roughness map is given."""
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
                if im.mode in ("P", "PA", "1"):  # palette indices and bits are not values
                    im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info
                                    else "L" if im.mode == "1" else "RGB")
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
    if arr.shape[2] in (2, 4):  # grey + alpha, RGBA: the alpha is no part of the value
        arr = arr[..., : arr.shape[2] - 1]
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


def _channels(arr: np.ndarray, n: int, path: str, what: str) -> np.ndarray:
    """``arr`` (alpha already dropped) as n channels: grey repeated to RGB, an RGB map read as one
    channel only when its channels are equal."""
    c = arr.shape[2]
    if c == n:
        return arr
    if n == 3 and c == 1:
        return np.repeat(arr, 3, axis=2)
    if n == 1 and c == 3:
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            return arr[..., :1]
        raise MaterialMapError(path, f"{what} map has 3 different colour channels; give a grey map "
                               "(or RGB with equal channels)")
    raise MaterialMapError(path, f"{what} map has {c} channels, expected {n} (or {3 if n == 1 else 1})")


def _load(path: str, n: int, what: str, sizes: dict[str, tuple[int, int]]) -> tuple[np.ndarray, bool]:
    """A map as n channels, refused unless square and of the size of the maps read before it."""
    arr, encoded = load_map(path)
    h, w = arr.shape[:2]
    if h != w:
        raise MaterialMapError(path, f"{what} map is {w} x {h} texels; maps must be square")
    for other, size in sizes.items():
        if size != (h, w):
            raise MaterialMapError(path, f"{what} map is {w} x {h} texels but {other} is "
                                   f"{size[1]} x {size[0]}; maps must be of one size")
    sizes[path] = (h, w)
    return _channels(arr, n, path, what), encoded


def maps_material(cfg: MapsConfig, resolution: int) -> SVBRDFMaps:
    """Build the SVBRDF of a user material at ``resolution`` x ``resolution``."""
    r = resolution
    if cfg.normal_convention not in ("opengl", "directx"):
        raise ValueError(f"normal_convention must be 'opengl' or 'directx', got {cfg.normal_convention!r}")
    if cfg.height is None and cfg.albedo is None and cfg.normal is None:
        raise ValueError("material=maps needs at least one of height, albedo or normal maps")
    if not 0.0 <= cfg.roughness_value <= 1.0:
        raise ValueError(f"material.maps.roughness_value={cfg.roughness_value}: must be in [0, 1]")
    sizes: dict[str, tuple[int, int]] = {}
    if cfg.height is not None:
        h, _ = _load(cfg.height, 1, "height", sizes)
        height = _resize(h, r)[..., 0] * cfg.height_scale
    else:
        height = np.zeros((r, r))
    if cfg.albedo is not None:
        a, encoded = _load(cfg.albedo, 3, "albedo", sizes)
        albedo = _resize(srgb_to_linear(np.clip(a, 0, 1)) if encoded else a, r)
    else:
        albedo = np.full((r, r, 3), 0.5)
    if cfg.roughness is not None:
        rough, _ = _load(cfg.roughness, 1, "roughness", sizes)
        lo, hi = float(rough.min()), float(rough.max())
        if lo < 0.0 or hi > 1.0:
            raise MaterialMapError(cfg.roughness, f"roughness values span [{lo:.4g}, {hi:.4g}]; "
                                   "they must lie in [0, 1]")
        rough = _resize(rough, r)[..., 0]
    else:
        rough = np.full((r, r), cfg.roughness_value)
    alpha = np.clip(rough, 0.02, 1.0) ** 2
    normal = None
    if cfg.normal is not None:
        n, encoded = _load(cfg.normal, 3, "normal", sizes)
        n = _resize(n, r)
        n = 2.0 * n - 1.0 if encoded else n
        if cfg.normal_convention == "opengl":
            n[..., 1] = -n[..., 1]
        n[..., 2] = np.clip(n[..., 2], 1e-3, None)
        normal = n / np.linalg.norm(n, axis=-1, keepdims=True)
    maps = make_maps(height, albedo, alpha, cfg.metallic, cfg.specular, cfg.displaced, normal)
    maps.validate("material=maps")
    return maps
