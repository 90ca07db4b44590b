"""NeuMIP's neural offset: a latent texture and a small MLP that predict, per texel and view
direction, how far the visible point lies below the reference plane, and shift uv along the view
direction accordingly (learned parallax)."""

from __future__ import annotations

import torch
from torch import nn

from btf_data.lookup import lookup_bilinear
from neumip.blur import blur_wrapped
from neumip.mlp_backends import make_mlp


class NeuralOffset(nn.Module):
    """Offset texture (1, R, R, C) initialised to zero, and an MLP (C + 2 -> width x layers -> 1).

    depth r = depth_scale * MLP(latent(uv), wo.xy); the pyramid is read at
    uv + r * wo.xy / max(wo.z, min_cos). The MLP's output layer starts at zero, so the offset is
    exactly zero at initialisation (the model starts without parallax). The texture is read
    blurred by max(the schedule's sigma, blur_min) texels.
    """

    def __init__(self, resolution: int, channels: int, width: int, hidden_layers: int,
                 backend: str, depth_scale: float = 0.05, min_cos: float = 0.6,
                 blur_min: float = 0.0) -> None:
        super().__init__()
        self.texture = nn.Parameter(torch.zeros(1, resolution, resolution, channels))
        self.mlp = make_mlp(channels + 2, 1, width, hidden_layers, backend)
        self.mlp.zero_output_layer()
        self.depth_scale, self.min_cos, self.blur_min = depth_scale, min_cos, blur_min

    def blurred_texture(self, sigma: float) -> torch.Tensor:
        """The texture blurred by ``sigma`` texels; without autograd (evaluation, rendering) or
        while the texture is frozen (training after ``offset_freeze``) the result is kept until the
        texture or sigma changes, so chunked queries and training steps blur it once."""
        if torch.is_grad_enabled() and self.texture.requires_grad:
            return blur_wrapped(self.texture, sigma)
        key = (sigma, self.texture._version, self.texture.data_ptr())
        if getattr(self, "_blur_key", None) != key:
            self._blurred = blur_wrapped(self.texture.detach(), sigma)
            self._blur_key = key
        return self._blurred

    def depth(self, uv: torch.Tensor, wo: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
        """Depth r (N,) in uv units for uv (N, 2) and wo (N, 3)."""
        texture = self.blurred_texture(max(blur_sigma, self.blur_min))
        c = texture.shape[-1]
        if torch.is_grad_enabled() and (texture.requires_grad or uv.requires_grad):
            # the MLP's input: latent, wo.xy; concatenated, whose backward only slices (an in-place
            # write into a buffer would clone the whole input gradient backwards)
            x = torch.cat([lookup_bilinear(texture, uv), wo[:, :2]], dim=1)
        else:  # written in place: the lookup straight into its columns
            x = torch.empty(uv.shape[0], c + 2, device=uv.device)
            lookup_bilinear(texture, uv, out=x[:, :c])
            x[:, c:] = wo[:, :2]
        return self.depth_scale * self.mlp(x)[:, 0]

    def forward(self, uv: torch.Tensor, wo: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
        """Shifted uv (N, 2)."""
        r = self.depth(uv, wo, blur_sigma)
        # the direction's shift per unit depth first: it needs no gradient, so autograd keeps
        # one product (r times it) instead of a product and a division of r's graph
        return uv + r[:, None] * (wo[:, :2] / wo[:, 2:3].clamp_min(self.min_cos))
