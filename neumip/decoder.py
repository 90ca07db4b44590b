"""NeuMIP's decoders: the MLP that turns a latent vector and the two directions into radiance,
together with its output head. ``ModelConfig.decoder`` names one; :func:`make_decoder` builds it.

Contract of every decoder (a :class:`Decoder`):
- ``decoder(latent, wi, wo, base=None) -> rgb``: latent (N, C) float32 (C =
  ``cfg.decoder_latent_width``: the latent, and the soft visibilities of model=horizon), wi and
  wo (N, 3) unit vectors in the tangent frame (z > 0), encoded here as ``cfg.direction_encoding``
  says; rgb (N, 3) float32 linear RGB, BRDF-like as the BTF files hold, clamped to >= 0 in eval
  mode and left unclamped in training mode (so the loss sees, and corrects, negative outputs);
  a decoder with ``uses_lobe`` refines an analytic lobe: the model gives it that lobe's rgb as
  ``base`` (N, 3) (neumip/lobe_pyramid.py), the others get None;
- ``.mlp``: its :class:`~neumip.mlp_backends.FlatMLP` (the bare network, timed alone by the
  benchmarks: ``decoder.mlp(x)`` with x (N, ``decoder.mlp.n_in``)); ``.backend``: its backend;
- the learned parameters are the MLP's only (state_dict key ``mlp.params``); constants of the
  head are non-persistent buffers, so a checkpoint holds weights, not code.

A new variant is a :class:`Decoder` subclass and one row of :data:`DECODERS` (and a
conf/model/<name>.yaml that selects it with ``decoder: <name>``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from neumip import decoder_native
from neumip.direction_encoding import encode_direction, encoding_width
from neumip.mlp_backends import FlatMLP, make_mlp

if TYPE_CHECKING:
    from neumip.config import ModelConfig

#: YUV -> RGB (BT.601 inverse; the paper's decoder predicts log-radiance in YUV).
YUV_TO_RGB = torch.tensor(
    [[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]]
)


class Decoder(nn.Module):
    """Base of NeuMIP's decoders: latent (N, C), wi (N, 3), wo (N, 3) -> rgb (N, 3)."""

    mlp: FlatMLP
    #: Whether the model must give this decoder an analytic lobe's rgb (``base``): the model then
    #: holds a lobe pyramid (model=hybrid).
    uses_lobe = False

    def __init__(self, cfg: ModelConfig, backend: str) -> None:
        super().__init__()
        self.encoding = cfg.direction_encoding
        self.latent_width = cfg.decoder_latent_width

    @property
    def backend(self) -> str:
        """The MLP backend actually in use (``torch`` or ``tcnn``)."""
        return self.mlp.backend

    def input_buffer(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, slot): the MLP's input x (n, mlp.n_in) float32, uninitialised, and its first C
        columns ``slot`` (n, C), where the caller writes the latent (the lookups write there
        directly: no concatenation copies them again); :meth:`decode` fills the rest."""
        x = torch.empty(n, self.mlp.n_in, device=device)
        return x, x[:, : self.latent_width]

    def mlp_input(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        """latent (N, C), wi (N, 3), wo (N, 3) -> the MLP's input, latent and directions (N, C + 2 *
        encoding width)."""
        x, slot = self.input_buffer(latent.shape[0], latent.device)
        slot.copy_(latent)
        return self._directions_into(x, wi, wo)[:, : self.latent_width + 2 * encoding_width(self.encoding)]

    def _directions_into(self, x: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        c, e = self.latent_width, encoding_width(self.encoding)
        x[:, c : c + e] = encode_direction(wi, self.encoding)
        x[:, c + e : c + 2 * e] = encode_direction(wo, self.encoding)
        return x

    def extra_input(self, base: torch.Tensor | None) -> torch.Tensor | None:
        """The MLP's input columns after the directions (N, k), or None (the default)."""
        return None

    def forward(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                base: torch.Tensor | None = None) -> torch.Tensor:
        """latent (N, C), wi (N, 3), wo (N, 3), base (N, 3) or None -> rgb (N, 3).

        With autograd the MLP's input is one concatenation, whose backward only slices the
        gradient; without, the columns are written into an :meth:`input_buffer` (each in-place
        write would, under autograd, clone the whole input gradient backwards)."""
        if torch.is_grad_enabled():
            extra = self.extra_input(base)
            x = torch.cat([latent, encode_direction(wi, self.encoding), encode_direction(wo, self.encoding)]
                          + ([] if extra is None else [extra]), dim=1)
            return self.run(x, base)
        x, slot = self.input_buffer(latent.shape[0], latent.device)
        slot.copy_(latent)
        return self.decode(x, wi, wo, base)

    def decode(self, x: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
               base: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` on an :meth:`input_buffer` x whose slot holds the latent: the rest of its
        columns written here."""
        x = self._directions_into(x, wi, wo)
        extra = self.extra_input(base)
        if extra is not None:
            x[:, x.shape[1] - extra.shape[1] :] = extra
        return self.run(x, base)

    def run(self, x: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """The MLP and the head on the MLP's whole input x (N, mlp.n_in) -> rgb (N, 3)."""
        raise NotImplementedError


class YUVLogDecoder(Decoder):
    """The paper's decoder (Kuznetsov et al. 2021) with the official code's shadow mask.

    The MLP predicts a YUV triplet t (N, 3) of log-radiance, and rgb = exp(YUV->RGB(t)) - 1
    (log-space, so highlights and shadows train equally); with ``cfg.shadow_mask`` it predicts
    three more outputs m and rgb *= 0.1 + sigmoid(m). The MLP is ``cfg.decoder_width`` wide with
    ``cfg.decoder_layers`` hidden layers."""

    def __init__(self, cfg: ModelConfig, backend: str) -> None:
        super().__init__(cfg, backend)
        self.shadow_mask = cfg.shadow_mask
        self.mlp = make_mlp(cfg.decoder_latent_width + 2 * encoding_width(cfg.direction_encoding),
                            6 if cfg.shadow_mask else 3, cfg.decoder_width, cfg.decoder_layers, backend)
        self.register_buffer("yuv_to_rgb", YUV_TO_RGB.clone(), persistent=False)

    def head(self, t: torch.Tensor) -> torch.Tensor:
        """The MLP's output t (N, 6) (N, 3 without the shadow mask) -> rgb (N, 3). On the CPU the
        native kernel runs it where it is built, in eval mode without autograd and in training
        (one pass per query each way instead of six strided ones; decoder_native.py)."""
        if not self.training and not torch.is_grad_enabled():
            rgb = decoder_native.yuv_log_head(t, self.yuv_to_rgb, self.shadow_mask)
            if rgb is not None:
                return rgb
        if self.training and decoder_native.head_served(t, self.shadow_mask):
            return decoder_native.TrainHead.apply(t, self.yuv_to_rgb, self.shadow_mask)
        rgb = torch.expm1(t[:, :3] @ self.yuv_to_rgb.t())
        if self.shadow_mask:
            rgb = rgb * (0.1 + torch.sigmoid(t[:, 3:6]))
        return rgb if self.training else rgb.clamp_min(0.0)

    def run(self, x: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """rgb (N, 3); ``base`` is not used."""
        return self.head(self.mlp(x))


class LobeResidualDecoder(Decoder):
    """``model=hybrid`` (issue 20, beyond the paper): an analytic lobe times a learned visibility,
    plus a learned residual. The lobe (its rgb ``base``, shaded from the lobe pyramid with Smith
    masking at any direction) carries what an SVBRDF can say; the MLP, reading the latent, both
    directions and log1p(base), predicts a visibility v (3) and a YUV log-radiance residual t (3):
    rgb = base * 2 sigmoid(v) + expm1(YUV->RGB(t)). Its output layer starts at zero (v = t = 0), so
    at initialisation the model is exactly its lobe (after the lobe's fit, neumip/lobe_fit.py)."""

    uses_lobe = True

    def __init__(self, cfg: ModelConfig, backend: str) -> None:
        super().__init__(cfg, backend)
        self.mlp = make_mlp(cfg.decoder_latent_width + 2 * encoding_width(cfg.direction_encoding) + 3, 6,
                            cfg.decoder_width, cfg.decoder_layers, backend)
        self.mlp.zero_output_layer()
        self.register_buffer("yuv_to_rgb", YUV_TO_RGB.clone(), persistent=False)

    def extra_input(self, base: torch.Tensor | None) -> torch.Tensor | None:
        """log1p of the lobe's rgb (N, 3)."""
        if base is None:
            raise ValueError("the lobe_residual decoder needs the lobe's rgb (base)")
        return torch.log1p(base.clamp_min(0.0))

    def run(self, x: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """rgb (N, 3) from the lobe's rgb ``base`` (N, 3) and the rest."""
        assert base is not None  # extra_input said so
        t = self.mlp(x)
        rgb = base * (2.0 * torch.sigmoid(t[:, 3:6])) + torch.expm1(t[:, :3] @ self.yuv_to_rgb.t())
        return rgb if self.training else rgb.clamp_min(0.0)


#: ``ModelConfig.decoder`` -> the decoder class.
DECODERS: dict[str, type[Decoder]] = {
    "yuv_log": YUVLogDecoder,
    "lobe_residual": LobeResidualDecoder,
}


def make_decoder(cfg: ModelConfig, backend: str) -> Decoder:
    """The decoder ``cfg.decoder`` names, its MLP on ``backend`` (already resolved, or ``auto``)."""
    if cfg.decoder not in DECODERS:
        raise ValueError(f"model.decoder={cfg.decoder!r}: must be one of {', '.join(DECODERS)}")
    return DECODERS[cfg.decoder](cfg, backend)

