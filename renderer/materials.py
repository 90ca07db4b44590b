"""Materials behind one interface, on batches: ``eval(uv, wi, wo, lod) -> rgb``.

uv (N, 2) tiled coordinates (period 1), wi and wo (N, 3) unit vectors in the tangent frame with
z > 0, lod (N,) continuous level (0 = finest). rgb (N, 3) is the BTF value (BRDF-like, linear):
the renderer multiplies it by cos(theta_i) and the light. The SVBRDF mipmapping baselines plug in
here too (:class:`renderer.baselines.material.SVBRDFPyramidMaterial`).

A material knows itself: its ``name``, its ``resolution`` (level-0 texels per uv unit, what a
footprint in uv is measured in) and its ``n_levels`` (the lods it answers, 0..n_levels - 1), so
the renderer, Mitsuba and the suite take the material alone. ``renderer.material_specs`` opens
any of them from a spec string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from btf_data.btf_file import BTFFile
from btf_data.btf_render import HeightfieldMaterial, RenderConfig, eval_level0
from btf_data.lookup import lookup_trilinear
from btf_data.pyramid import level_count
from btf_data.sampler import load_pyramid
from btf_data.svbrdf import SVBRDFMaps
from neumip.model import NeuMIP


class Material(Protocol):
    """What the renderer, the Mitsuba BSDF and the suite need of a material."""

    name: str
    resolution: int
    """Level-0 texels per uv unit."""
    n_levels: int
    """Levels it answers: lod in [0, n_levels - 1]."""

    def eval(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, lod: torch.Tensor) -> torch.Tensor:
        """uv (N, 2), wi and wo (N, 3) unit in the tangent frame, lod (N,) -> BTF values (N, 3)."""
        ...


class ConstantMaterial:
    """The same BTF value everywhere (a test material with a closed-form image). Its lod does not
    matter: one texel, one level unless told otherwise."""

    def __init__(self, rgb: tuple[float, float, float], name: str = "constant", resolution: int = 1,
                 n_levels: int = 1) -> None:
        self.rgb = torch.tensor(rgb, dtype=torch.float32)
        self.name, self.resolution, self.n_levels = name, resolution, n_levels

    def eval(self, uv, wi, wo, lod):
        return self.rgb.to(uv.device).expand(uv.shape[0], 3)


class NeuMIPMaterial:
    """A trained NeuMIP checkpoint."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu",
                 backend: str = "auto", name: str = "neumip") -> None:
        self.model = NeuMIP.load(checkpoint, device, backend)
        self.checkpoint = Path(checkpoint)
        self.name = name
        self.resolution, self.n_levels = self.model.resolution, self.model.n_levels

    @torch.no_grad()
    def eval(self, uv, wi, wo, lod):
        return self.model(uv, wi, wo, lod, check=False)


class MeasuredBTFMaterial:
    """The BTF file itself: the captured image pair whose directions are nearest to (wi, wo)
    (largest cosine, each separately), read trilinearly in its box pyramid."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu",
                 memory_budget_mib: int = 4096) -> None:
        with BTFFile(path) as btf:
            n_wo, n_wi, h, w = btf.shape
            need = n_wo * n_wi * h * w * 3 * 4 * 4 / 3 / 2**20
            if need > memory_budget_mib:
                raise ValueError(f"{path}: the measured material needs {need:.0f} MiB in memory, over "
                                 f"the budget of {memory_budget_mib} MiB")
            pairs = np.stack(np.meshgrid(np.arange(n_wo), np.arange(n_wi), indexing="ij"), -1)
            self.levels = load_pyramid(btf, pairs.reshape(-1, 2), device)
            self.wo_dirs = torch.as_tensor(btf.wo_dirs, dtype=torch.float32, device=device)
            self.wi_dirs = torch.as_tensor(btf.wi_dirs, dtype=torch.float32, device=device)
            self.resolution, self.n_levels = btf.resolution(0)[0], btf.n_levels
        self.n_wi = n_wi
        self.name = "measured"

    def eval(self, uv, wi, wo, lod):
        i_wo = torch.argmax(wo @ self.wo_dirs.t(), dim=1)
        i_wi = torch.argmax(wi @ self.wi_dirs.t(), dim=1)
        return lookup_trilinear(self.levels, uv, lod, i_wo * self.n_wi + i_wi)


class SVBRDFMaterial:
    """The level-0 SVBRDF a synthetic material was made from, evaluated exactly for any
    directions (heightfield parallax and shadows traced per query): the reference. It ignores
    lod: the reference filters by supersampling pixels, not by looking up coarser levels.
    ``n_levels`` is that of the material's pyramid (the maps' own when not given)."""

    def __init__(self, maps: SVBRDFMaps, device: str | torch.device = "cpu",
                 cfg: RenderConfig | None = None, n_levels: int | None = None) -> None:
        self.mat = HeightfieldMaterial(maps, device)
        self.cfg = cfg or RenderConfig()
        self.name = "svbrdf"
        h, w = maps.resolution
        self.resolution, self.n_levels = h, n_levels or level_count(h, w)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> SVBRDFMaterial:
        with BTFFile(path) as btf:
            maps = btf.svbrdf()
            if maps is None:
                raise ValueError(f"{path}: a measured material has no SVBRDF maps to render a "
                                 "reference from; use the measured material at lod 0")
            return cls(maps, device, n_levels=btf.n_levels)

    def eval(self, uv, wi, wo, lod):
        return eval_level0(self.mat, uv, wi, wo, self.cfg)
