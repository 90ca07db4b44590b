"""An SVBRDF pyramid as a renderer material: ``eval(uv, wi, wo, lod) -> rgb``.

The parameters are looked up trilinearly (``btf_data.lookup.lookup_trilinear``, the one lookup of
the project) in a space where interpolating is valid, then shaded exactly as a normal-mapped
plane (``renderer.baselines.shading``). Normal and tensor are interpolated as LEAN slope moments
(B, M): bilinear and trilinear weights are a filter, and filtering the moments is what LEAN shows
to be right (mixing two normals widens the lobe; the result stays positive definite). The
tensor's symmetric square root, MIPNet's representation, would also stay valid but would not add
the spread between the mixed normals. Albedo, metallic and specular are interpolated linearly.
At texel centres and integer lod every field comes back as stored (to float32 round-off).
"""

from __future__ import annotations

import torch

from btf_data.lookup import lookup_trilinear, pack_atlas
from renderer.baselines.pyramid import SVBRDFPyramid, from_moments, to_moments
from renderer.baselines.shading import shade_params


class SVBRDFPyramidMaterial:
    """Any method's :class:`SVBRDFPyramid`, ready for the renderer."""

    def __init__(self, pyramid: SVBRDFPyramid, device: str | torch.device = "cpu",
                 name: str | None = None) -> None:
        pyramid.validate()
        levels = []
        for k in range(pyramid.n_levels):
            lv = pyramid.level(k, device)
            levels.append(torch.cat([to_moments(lv["normal"], lv["tensor"]), lv["albedo"],
                                     lv["metallic"], lv["specular"]], dim=-1)[None])
        self.atlas = pack_atlas(levels)
        self.pyramid = pyramid
        self.resolution = pyramid.resolution
        self.n_levels = pyramid.n_levels
        self.name = name or pyramid.method
        self.build_seconds = pyramid.build_seconds

    @torch.no_grad()
    def eval(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, lod: torch.Tensor) -> torch.Tensor:
        """uv (N, 2), wi and wo (N, 3) unit in the tangent frame, lod (N,) -> BTF values (N, 3)."""
        v = lookup_trilinear(self.atlas, uv, lod)
        normal, tensor = from_moments(v[:, 0:5])
        params = {"normal": normal, "tensor": tensor, "albedo": v[:, 5:8],
                  "metallic": v[:, 8:9], "specular": v[:, 9:10]}
        return shade_params(params, wi, wo)
