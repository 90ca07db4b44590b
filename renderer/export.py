"""Export a material for the browser viewer (``neumip-view``): a self-contained folder that a
WebGL2 fragment shader evaluates per pixel.

Folder layout (format version :data:`FORMAT_VERSION`):

- ``manifest.json``: the format version, the material's kind (``neumip``, ``svbrdf``,
  ``constant``), its name, resolution and levels, the precision, the data's name and
  fingerprint (for NeuMIP also ``grazing``: the training grid's lowest light and view cosines
  and the bend cosine of neumip/grazing.py, or null), for each texture and network where its
  numbers are in which file (and its bytes),
  and ``bytes``: the data files' total (the material's size, without the manifest's 2-3 KiB);
- one ``texture_<name>.bin`` per texture: its channels in groups of four (one RGBA texture each), every level
  of a group after the other (level 0, the finest, first), each level (H_k, W_k, 4) row-major,
  little-endian ``float16`` (``precision=fp16``), ``uint8`` with a per-channel scale and bias
  (``int8``: value = bias + scale * byte / 255) or ``float32`` (``fp32``);
- one ``mlp_<name>.bin`` per MLP: the flat parameter vector in the torch backend's layout
  (``neumip.mlp_backends``: layers in order, bias-free, row-major ``[out, in]``, the input padded
  to a multiple of 16 with the constant 1), float16 (fp16 and int8 exports) or float32.

The levels are those the torch model reads: the latent pyramid's levels blurred by the
checkpoint's final blur sigma, and the offset texture blurred by its own sigma, baked in, so the
shader reads them with the GPU's own trilinear filtering and nothing else. Each level is one
mip level of the texture; the pyramid's coarsest (2 x 2) is the texture's last.

:func:`load_export` reads a NeuMIP export back into the torch model (the round trip the tests
check: fp32 bit-identical outputs, fp16 within its round-off); :func:`quantised_model` is the
checkpoint with exactly the export's rounding, for scoring a precision on held-out pairs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from btf_data.btf_file import BTFFile, file_fingerprint
from neumip.config import ModelConfig
from neumip.evaluate import evaluate_levels
from neumip.grazing import BEND_COS
from neumip.model import NeuMIP
from plumbing.atomic import check_output_dir, user_dir_mode
from renderer.baselines.material import SVBRDFPyramidMaterial
from renderer.baselines.pyramid import to_moments
from renderer.materials import ConstantMaterial, Material, NeuMIPMaterial

FORMAT_VERSION = 1
PRECISIONS = ("fp16", "int8", "fp32")
#: Decoders and encodings the viewer's shader implements (others are refused, naming them).
VIEWER_DECODERS = ("yuv_log", "lobe_residual")
VIEWER_ENCODINGS = ("xy", "equi", "equi_tan", "sh3")
#: The SVBRDF texture's channels, in the order the shader reads them (LEAN slope moments, then
#: the linear fields), as :class:`~renderer.baselines.material.SVBRDFPyramidMaterial` filters them.
SVBRDF_CHANNELS = ("Bx", "By", "Mxx", "Myy", "Mxy", "albedo_r", "albedo_g", "albedo_b", "metallic",
                   "specular")


class ExportError(ValueError):
    """A material or folder that cannot be exported: one line naming it."""


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ExportError(f"precision={precision!r}: must be one of {', '.join(PRECISIONS)}")
    return precision


# -- textures ------------------------------------------------------------------------------------
def quantise_levels(levels: list[torch.Tensor], precision: str) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Levels (H_k, W_k, C) float32 -> the levels as the export stores them, dequantised back to
    float32 (what the shader reads), and the quantisation's parameters: fp32 unchanged, fp16
    rounded to half, int8 one byte per channel with a per-channel scale and bias over every level
    (bias = min, scale = (max - min), value = bias + scale * round(255 (x - bias) / scale) / 255)."""
    if precision == "fp32":
        return [lv.float() for lv in levels], {}
    if precision == "fp16":
        return [lv.half().float() for lv in levels], {}
    flat = torch.cat([lv.reshape(-1, lv.shape[-1]) for lv in levels])
    lo, hi = flat.min(0).values, flat.max(0).values
    scale = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    codes = [torch.round((lv - lo) / scale * 255.0).clamp(0, 255) for lv in levels]
    return [lo + scale * (q / 255.0) for q in codes], {"bias": lo.tolist(), "scale": scale.tolist(),
                                                        "codes": codes}


def _texture_bytes(levels: list[torch.Tensor], precision: str, quant: dict[str, Any]) -> tuple[bytes, int]:
    """The texture's file contents, channels in RGBA groups (zero-padded), group after group,
    level after level; and the number of groups."""
    c = levels[0].shape[-1]
    groups = math.ceil(c / 4)
    stored = quant["codes"] if precision == "int8" else levels
    dtype = np.dtype({"fp32": "<f4", "fp16": "<f2", "int8": "u1"}[precision])
    chunks = []
    for g in range(groups):
        for lv in stored:
            block = torch.zeros(*lv.shape[:-1], 4, dtype=torch.float32)
            part = lv[..., 4 * g : min(4 * g + 4, c)].float()
            block[..., : part.shape[-1]] = part
            chunks.append(block.numpy().astype(dtype).tobytes())
    return b"".join(chunks), groups


def _texture_entry(name: str, levels: list[torch.Tensor], precision: str, folder: Path,
                   channels: list[str] | None = None) -> dict[str, Any]:
    """Write a texture's file into ``folder``; its manifest entry."""
    values, quant = quantise_levels(levels, precision)
    data, groups = _texture_bytes(values, precision, quant)
    (folder / f"texture_{name}.bin").write_bytes(data)
    entry: dict[str, Any] = {
        "file": f"texture_{name}.bin",
        "channels": int(levels[0].shape[-1]),
        "groups": groups,
        "levels": [[int(lv.shape[0]), int(lv.shape[1])] for lv in levels],
        "dtype": {"fp32": "float32", "fp16": "float16", "int8": "uint8"}[precision],
        "bytes": len(data),
    }
    if channels:
        entry["channel_names"] = channels
    if precision == "int8":
        entry["scale"], entry["bias"] = quant["scale"], quant["bias"]
    return entry


# -- networks ------------------------------------------------------------------------------------
def _mlp_entry(name: str, mlp: Any, precision: str, folder: Path) -> dict[str, Any]:
    params = mlp.params.detach().float().cpu().numpy()
    dtype = np.dtype("<f4") if precision == "fp32" else np.dtype("<f2")
    data = params.astype(dtype).tobytes()
    (folder / f"mlp_{name}.bin").write_bytes(data)
    return {"file": f"mlp_{name}.bin", "dtype": "float32" if precision == "fp32" else "float16",
            "n_in": mlp.n_in, "n_out": mlp.n_out, "width": mlp.width, "hidden_layers": mlp.hidden_layers,
            "in_pad": mlp.in_pad, "out_pad": mlp.out_pad, "count": int(params.size), "bytes": len(data)}


def check_viewer_model(cfg: ModelConfig, what: str) -> None:
    """Refuse, in one line, a model whose parts the viewer's shader does not implement."""
    if cfg.decoder not in VIEWER_DECODERS:
        raise ExportError(f"{what}: decoder {cfg.decoder!r} is not exported yet: the viewer implements "
                          f"{', '.join(VIEWER_DECODERS)}")
    if cfg.direction_encoding not in VIEWER_ENCODINGS:
        raise ExportError(f"{what}: direction encoding {cfg.direction_encoding!r} is not in the "
                          f"viewer ({', '.join(VIEWER_ENCODINGS)})")


def _neumip_textures(model: NeuMIP) -> tuple[dict[str, list[torch.Tensor]], dict[str, float]]:
    """The textures exactly as the model reads them, {name: levels (H_k, W_k, C)}: ``latent``;
    ``offset`` (one level) with the offset network; ``lobe`` (model=hybrid: raw lobe texels,
    unblurred, read in the latents' lookup); ``horizon`` (model=horizon: K raw horizons and a raw
    softness, blurred as the latents); and the blur sigmas baked into them."""
    sigma = float(model.blur_sigma)
    with torch.no_grad():
        textures = {"latent": [t[0].detach().float().cpu() for t in model.pyramid.blurred_levels(sigma)]}
        baked = {"latent_blur_sigma": sigma}
        if model.offset is not None:
            offset_sigma = max(sigma, model.offset.blur_min)
            textures["offset"] = [model.offset.blurred_texture(offset_sigma)[0].detach().float().cpu()]
            baked["offset_blur_sigma"] = offset_sigma
        if model.lobe is not None:
            textures["lobe"] = [t[0].detach().float().cpu() for t in model.lobe.levels]
        if model.horizon is not None:
            textures["horizon"] = [t[0].detach().float().cpu()
                                   for t in model.horizon.pyramid.blurred_levels(sigma)]
    return textures, baked


def export_neumip(model: NeuMIP, folder: Path, precision: str, name: str) -> dict[str, Any]:
    """Write a NeuMIP model's textures and networks into ``folder``; its manifest."""
    check_viewer_model(model.cfg, name)
    textures, baked = _neumip_textures(model)
    entries = {k: _texture_entry(k, levels, precision, folder) for k, levels in textures.items()}
    networks = {"decoder": _mlp_entry("decoder", model.decoder.mlp, precision, folder)}
    if model.offset is not None:
        networks["offset"] = _mlp_entry("offset", model.offset.mlp, precision, folder)
    data = model.metadata or {}
    return {
        "kind": "neumip",
        "resolution": model.resolution,
        "n_levels": model.n_levels,
        "model": {k: v for k, v in dataclasses.asdict(model.cfg).items() if k != "backend"},
        "baked": baked,
        "textures": entries,
        "networks": networks,
        "data": {"name": data.get("name"), "fingerprint": data.get("fingerprint"), "path": data.get("path")},
        "grazing": None if model.grazing is None else {**model.grazing.metadata(), "bend_cos": BEND_COS},
    }


def export_svbrdf(material: SVBRDFPyramidMaterial, folder: Path, precision: str) -> dict[str, Any]:
    """An SVBRDF pyramid's levels as the shader filters them: LEAN slope moments (5), albedo (3),
    metallic, specular (as :class:`SVBRDFPyramidMaterial` interpolates them)."""
    p = material.pyramid
    levels = []
    for k in range(p.n_levels):
        lv = p.level(k)
        levels.append(torch.cat([to_moments(lv["normal"], lv["tensor"]), lv["albedo"], lv["metallic"],
                                 lv["specular"]], dim=-1))
    return {
        "kind": "svbrdf",
        "method": p.method,
        "resolution": p.resolution,
        "n_levels": p.n_levels,
        "textures": {"svbrdf": _texture_entry("svbrdf", levels, precision, folder, list(SVBRDF_CHANNELS))},
        "networks": {},
    }


def export_material(material: Material, out: str | Path, precision: str = "fp16",
                    source: str | None = None, data_path: str | Path | None = None) -> Path:
    """Export ``material`` (a NeuMIP checkpoint, an SVBRDF baseline's pyramid or a constant) to
    the folder ``out``, written under a temporary name and renamed into place (an older export
    there is replaced only once the new one is complete). ``source``: what it was made from, for
    the manifest; ``data_path``: the BTF file, whose fingerprint the manifest records."""
    check_precision(precision)
    out = Path(out)
    check_output_dir(out)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ExportError(f"{out}: exists and is not an export folder (no manifest.json); give a new "
                          "or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        if isinstance(material, NeuMIPMaterial):
            manifest = export_neumip(material.model, tmp, precision, str(source or material.checkpoint))
        elif isinstance(material, SVBRDFPyramidMaterial):
            manifest = export_svbrdf(material, tmp, precision)
        elif isinstance(material, ConstantMaterial):
            manifest = {"kind": "constant", "rgb": material.rgb.tolist(), "resolution": material.resolution,
                        "n_levels": material.n_levels, "textures": {}, "networks": {}}
        else:
            raise ExportError(f"{source or material.name}: a {type(material).__name__} cannot be exported "
                              "(neumip checkpoints, SVBRDF baselines and constants can)")
        data = manifest.setdefault("data", {})
        if data_path is not None:
            data.update(name=data.get("name") or Path(data_path).stem, path=str(data_path),
                        fingerprint=file_fingerprint(data_path))
        manifest = {"format": "neumip-export", "format_version": FORMAT_VERSION, "name": material.name,
                    "precision": precision, "source": source, **manifest}
        manifest["bytes"] = sum(f.stat().st_size for f in tmp.iterdir())  # the data files, not this manifest
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        os.chmod(tmp, user_dir_mode())
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an older export there is moved aside first
    and deleted after (a crash in between leaves it under a hidden name, never half of each)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old.{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- reading back --------------------------------------------------------------------------------
def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, checked: its format and version, and that every file
    it names is there with the size it says."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise ExportError(f"{folder}: no manifest.json (not an export folder)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if manifest.get("format") != "neumip-export" or manifest.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path}: format {manifest.get('format')!r} version "
                          f"{manifest.get('format_version')!r}; this version reads neumip-export "
                          f"version {FORMAT_VERSION}")
    for entry in [*manifest.get("textures", {}).values(), *manifest.get("networks", {}).values()]:
        f = folder / entry["file"]
        if not f.is_file():
            raise ExportError(f"{f}: missing (the manifest names it)")
        if f.stat().st_size != entry["bytes"]:
            raise ExportError(f"{f}: {f.stat().st_size} bytes, the manifest says {entry['bytes']} "
                              "(cut short or replaced)")
    return manifest


def _read_texture(folder: Path, entry: dict[str, Any]) -> list[torch.Tensor]:
    dtype = {"float32": "<f4", "float16": "<f2", "uint8": "u1"}[entry["dtype"]]
    raw = np.frombuffer((folder / entry["file"]).read_bytes(), dtype=dtype)
    c, groups = entry["channels"], entry["groups"]
    levels = [np.zeros((h, w, 4 * groups), np.float32) for h, w in entry["levels"]]
    pos = 0
    for g in range(groups):
        for lv, (h, w) in zip(levels, entry["levels"], strict=True):
            lv[..., 4 * g : 4 * g + 4] = raw[pos : pos + h * w * 4].reshape(h, w, 4)
            pos += h * w * 4
    out = [torch.from_numpy(lv[..., :c].copy()) for lv in levels]
    if entry["dtype"] == "uint8":
        bias, scale = torch.tensor(entry["bias"]), torch.tensor(entry["scale"])
        out = [bias + scale * (lv / 255.0) for lv in out]
    return out


def _read_mlp(folder: Path, entry: dict[str, Any]) -> torch.Tensor:
    dtype = "<f4" if entry["dtype"] == "float32" else "<f2"
    raw = np.frombuffer((folder / entry["file"]).read_bytes(), dtype=dtype)
    return torch.from_numpy(raw.astype(np.float32))


def _set_textures(model: NeuMIP, textures: dict[str, list[torch.Tensor]]) -> None:
    """Put texture levels {name: [(H_k, W_k, C)]} (as :func:`_neumip_textures` names them) into
    the model's parameters, the blur already baked in."""
    with torch.no_grad():
        for t, lv in zip(model.pyramid.levels, textures["latent"], strict=True):
            t.copy_(lv[None])
        if model.offset is not None:
            model.offset.texture.copy_(textures["offset"][0][None])
            model.offset.blur_min = 0.0
        if model.lobe is not None:
            for t, lv in zip(model.lobe.levels, textures["lobe"], strict=True):
                t.copy_(lv[None])
        if model.horizon is not None:
            for t, lv in zip(model.horizon.pyramid.levels, textures["horizon"], strict=True):
                t.copy_(lv[None])
        model.blur_sigma.zero_()


def load_export(folder: str | Path) -> NeuMIP:
    """A NeuMIP export read back into the torch model (eval mode, torch backend): the manifest's
    model config, its networks' weights and its textures (blur already baked in, so the model
    reads them unblurred). fp32 exports give the checkpoint's outputs bit for bit."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("kind") != "neumip":
        raise ExportError(f"{folder}: a {manifest.get('kind')} export, not a NeuMIP model")
    cfg = ModelConfig(**{**manifest["model"], "backend": "torch", "offset_blur_min": 0.0})
    meta = {**(manifest.get("data") or {}), **(manifest.get("grazing") or {})}  # grazing: neumip/grazing.py
    model = NeuMIP(cfg, manifest["resolution"], meta)
    _set_textures(model, {k: _read_texture(folder, e) for k, e in manifest["textures"].items()})
    with torch.no_grad():
        model.decoder.mlp.params.copy_(_read_mlp(folder, manifest["networks"]["decoder"]))
        if model.offset is not None:
            model.offset.mlp.params.copy_(_read_mlp(folder, manifest["networks"]["offset"]))
    return model.eval()


def held_out_by_precision(model: NeuMIP, btf: BTFFile, levels: int) -> dict[str, list[float]]:
    """Held-out PSNR per level of each export precision, through the torch model holding exactly
    that precision's rounding (:func:`quantised_model`; fp32 is the model itself)."""
    return {p: [s.psnr for s in evaluate_levels(model if p == "fp32" else quantised_model(model, p), btf,
                                                levels, "held_out")]
            for p in PRECISIONS}


def quantised_model(model: NeuMIP, precision: str) -> NeuMIP:
    """A copy of ``model`` holding exactly what an export of ``precision`` holds (textures with the
    blur baked in and rounded as the export rounds them, networks in float16 for fp16 and int8):
    its held-out scores are the export's, evaluated through the torch model."""
    check_precision(precision)
    check_viewer_model(model.cfg, "quantised_model")
    textures, _ = _neumip_textures(model)
    q = copy.deepcopy(model)
    q.cfg = dataclasses.replace(model.cfg, offset_blur_min=0.0)
    _set_textures(q, {k: quantise_levels(levels, precision)[0] for k, levels in textures.items()})
    if precision != "fp32":
        with torch.no_grad():
            for mlp in [q.decoder.mlp] + ([q.offset.mlp] if q.offset is not None else []):
                mlp.params.copy_(mlp.params.half().float())
    return q.eval()
