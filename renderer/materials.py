"""Materials behind one interface, ``eval(uv, wi, wo, lod) -> rgb``, on batches.

uv (N, 2) tiled coordinates (period 1), wi and wo (N, 3) unit vectors in the tangent frame with
z > 0, lod (N,) continuous level (0 = finest). rgb (N, 3) is the BTF value (BRDF-like, linear):
the renderer multiplies it by cos(theta_i) and the light. The SVBRDF mipmapping baselines plug in
here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from btf_data.btf_file import BTFFile
from btf_data.btf_render import HeightfieldMaterial, RenderConfig, eval_level0
from btf_data.lookup import lookup_trilinear
from btf_data.sampler import load_pyramid
from btf_data.svbrdf import SVBRDFMaps
from neumip.model import NeuMIP


class Material(Protocol):
    name: str

    def eval(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, lod: torch.Tensor) -> torch.Tensor:
        ...


class ConstantMaterial:
    """The same BTF value everywhere (a test material with a closed-form image)."""

    def __init__(self, rgb: tuple[float, float, float], name: str = "constant") -> None:
        self.rgb = torch.tensor(rgb, dtype=torch.float32)
        self.name = name

    def eval(self, uv, wi, wo, lod):
        return self.rgb.to(uv.device).expand(uv.shape[0], 3)


class NeuMIPMaterial:
    """A trained NeuMIP checkpoint."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu",
                 backend: str = "auto") -> None:
        self.model = NeuMIP.load(checkpoint, device, backend)
        self.name = "neumip"

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
        self.n_wi = n_wi
        self.name = "measured"

    def eval(self, uv, wi, wo, lod):
        i_wo = torch.argmax(wo @ self.wo_dirs.t(), dim=1)
        i_wi = torch.argmax(wi @ self.wi_dirs.t(), dim=1)
        return lookup_trilinear(self.levels, uv, lod, i_wo * self.n_wi + i_wi)


class SVBRDFMaterial:
    """The level-0 SVBRDF a synthetic material was made from, evaluated exactly for any
    directions (heightfield parallax and shadows traced per query): the reference. It ignores
    lod: the reference filters by supersampling pixels, not by looking up coarser levels."""

    def __init__(self, maps: SVBRDFMaps, device: str | torch.device = "cpu",
                 cfg: RenderConfig | None = None) -> None:
        self.mat = HeightfieldMaterial(maps, device)
        self.cfg = cfg or RenderConfig()
        self.name = "svbrdf"

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> SVBRDFMaterial:
        with BTFFile(path) as btf:
            maps = btf.svbrdf()
            if maps is None:
                raise ValueError(f"{path}: a measured material has no SVBRDF maps to render a "
                                 "reference from; use the measured material at lod 0")
        return cls(maps, device)

    def eval(self, uv, wi, wo, lod):
        return eval_level0(self.mat, uv, wi, wo, self.cfg)
