"""The analytic lobe of ``model=hybrid`` (issue 20, beyond the paper): a pyramid of SVBRDF
parameters in the project's format (albedo, shading normal, GGX slope tensor, metallic,
specular), read trilinearly at the query's (uv, lod) like the latents and shaded by the project's
one BRDF with Smith masking (``btf_data.btf_render.shade_params``), so that it answers any light
and view direction analytically. The decoder then supplies visibility and a residual
(``neumip.decoder.LobeResidualDecoder``).

Each texel stores 10 unconstrained numbers; the lookup blends them and :func:`lobe_params` maps
them to valid parameters: albedo = sigmoid(a) (3), normal = normalize(s_x, s_y, 1) from slopes s
(2), tensor = S^2 + floor with S the symmetric 2 x 2 square root (3, ``btf_data.brdf``),
metallic = sigmoid(m) (1), specular = SPECULAR_MAX sigmoid(f) (1).
"""

from __future__ import annotations

import torch
from torch import nn

from btf_data.brdf import tensor_from_sqrt, tensor_sqrt
from btf_data.btf_render import shade_params
from btf_data.lookup import lookup_trilinear
from neumip.grazing import bend_above
from neumip.latent_pyramid import latent_level_count

#: Stored numbers per texel: albedo logits 3, normal slopes 2, tensor square root 3, metallic
#: logit 1, specular logit 1.
LOBE_CHANNELS = 10
#: The largest dielectric F0 the lobe can take (IOR about 2.3; real dielectrics are 0.02-0.08).
SPECULAR_MAX = 0.16
#: Eigenvalue floor of the tensor (GGX alpha >= 1e-3), as the SVBRDF baselines'.
MIN_VARIANCE = 1e-6
#: Where the unconstrained numbers start: albedo 0.5, a flat normal, GGX alpha 0.3, metallic
#: 0.05, specular 0.04. The BTF fit (neumip/lobe_fit.py) moves them from there.
_START = {"albedo": 0.5, "alpha": 0.3, "metallic": 0.05, "specular": 0.04}


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1.0 - 1e-4)
    return torch.log(p) - torch.log1p(-p)


def lobe_params(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Unconstrained texels raw (..., 10) -> SVBRDF parameters: normal (..., 3) unit with z > 0,
    albedo (..., 3) in (0, 1), tensor (..., 3) = (a, b, c) positive definite, metallic (..., 1),
    specular (..., 1) in (0, SPECULAR_MAX)."""
    slopes = raw[..., 3:5]
    normal = torch.cat([slopes, torch.ones_like(slopes[..., :1])], dim=-1)
    floor = raw.new_tensor([MIN_VARIANCE, MIN_VARIANCE, 0.0])
    return {
        "albedo": torch.sigmoid(raw[..., 0:3]),
        "normal": normal / normal.norm(dim=-1, keepdim=True),
        "tensor": tensor_from_sqrt(raw[..., 5:8]) + floor,
        "metallic": torch.sigmoid(raw[..., 8:9]),
        "specular": SPECULAR_MAX * torch.sigmoid(raw[..., 9:10]),
    }


def raw_from_params(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """The inverse of :func:`lobe_params` (up to the clamps of albedo, metallic and specular to
    their open ranges): parameters {field: (..., C)} -> raw (..., 10)."""
    n = p["normal"]
    floor = n.new_tensor([MIN_VARIANCE, MIN_VARIANCE, 0.0])
    return torch.cat([
        _logit(p["albedo"]),
        n[..., :2] / n[..., 2:3],
        tensor_sqrt(p["tensor"] - floor),
        _logit(p["metallic"]),
        _logit(p["specular"] / SPECULAR_MAX),
    ], dim=-1)


class LobePyramid(nn.Module):
    """Per-level parameter textures (1, R / 2^k, R / 2^k, 10), channels last, as many levels as the
    latent pyramid (levels None: down to 2 x 2), all starting at the same plain lobe."""

    def __init__(self, resolution: int, n_levels: int | None = None) -> None:
        super().__init__()
        full = latent_level_count(resolution)
        n = full if n_levels is None else n_levels
        if not 1 <= n <= full:
            raise ValueError(f"n_levels must be in 1..{full} for resolution {resolution}, got {n}")
        s = _START
        start = raw_from_params({
            "albedo": torch.full((3,), s["albedo"]),
            "normal": torch.tensor([0.0, 0.0, 1.0]),
            "tensor": torch.tensor([s["alpha"] ** 2, s["alpha"] ** 2, 0.0]),
            "metallic": torch.tensor([s["metallic"]]),
            "specular": torch.tensor([s["specular"]]),
        })
        self.levels = nn.ParameterList(
            nn.Parameter(start.expand(1, resolution >> k, resolution >> k, LOBE_CHANNELS).clone())
            for k in range(n)
        )

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def forward(self, uv: torch.Tensor, lod: torch.Tensor, wi: torch.Tensor,
                wo: torch.Tensor) -> torch.Tensor:
        """The lobe's BTF value rgb (N, 3) (f cos(n, wi) / cos(theta_i), as the files hold) at
        uv (N, 2), lod (N,) for directions wi, wo (N, 3), unit, tangent frame."""
        return self.shade_raw(lookup_trilinear(list(self.levels), uv, lod), wi, wo)

    @staticmethod
    def shade_raw(raw: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                  beyond: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """:meth:`forward` from texels already looked up: raw (N, 10), wi, wo (N, 3) -> rgb (N, 3).
        ``beyond``: (N,) masks of the light and view directions beyond the training grid, which are
        bent above the lobe's shading horizon (neumip/grazing.py)."""
        p = lobe_params(raw)
        if beyond is not None:
            wi, wo = bend_above(wi, p["normal"], beyond[0]), bend_above(wo, p["normal"], beyond[1])
        return shade_params(p, wi, wo)

    def level_params(self, k: int) -> dict[str, torch.Tensor]:
        """Level k's parameters as maps {field: (R_k, R_k, C)}."""
        return lobe_params(self.levels[k][0])

    @torch.no_grad()
    def set_level(self, k: int, params: dict[str, torch.Tensor]) -> None:
        """Level k from parameter maps {field: (R_k, R_k, C)} (e.g. an SVBRDF pyramid's level)."""
        self.levels[k].copy_(raw_from_params(params)[None])

