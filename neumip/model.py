"""NeuMIP: latent mip pyramid + neural offset + decoder MLP, queried as
``model(uv, wi, wo, lod) -> rgb`` on batches (Kuznetsov et al. 2021).

Inputs: uv (N, 2) (period 1); wi, wo (N, 3) unit vectors in the tangent frame with z > 0; lod
(N,) continuous level (0 = finest). Output: (N, 3) BRDF-like linear RGB, as the BTF files hold.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neumip.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from neumip.config import ModelConfig
from neumip.direction_encoding import encode_direction, encoding_width
from neumip.latent_pyramid import LatentPyramid
from neumip.mlp_backends import make_mlp, resolve_backend
from neumip.neural_offset import NeuralOffset

#: YUV -> RGB (the paper's decoder predicts log-radiance in YUV).
_YUV_TO_RGB = torch.tensor(
    [[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]]
)
_UNIT_TOL = 1e-3


#: JSON values each annotation of ModelConfig accepts.
_JSON_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def model_config_from_meta(path: str | Path, meta: dict[str, Any], backend: str) -> ModelConfig:
    """The checkpoint's model config, every field checked: a stranger's or damaged metadata is
    refused naming the file and the field, never as a TypeError deep inside the model."""
    for key, kind in (("model", dict), ("resolution", int)):
        if key not in meta:
            raise CheckpointError(path, f"metadata lacks {key!r} (not a NeuMIP checkpoint?)")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise CheckpointError(path, f"metadata field {key!r} is a {type(meta[key]).__name__}, "
                                  f"expected {kind.__name__}")
    if meta["resolution"] < 2:
        raise CheckpointError(path, f"metadata field 'resolution' is {meta['resolution']}, expected >= 2")
    if not isinstance(meta.get("data", {}), dict):
        raise CheckpointError(path, "metadata field 'data' is not an object")
    fields = {f.name: f for f in dataclass_fields(ModelConfig)}
    values = {}
    for key, value in meta["model"].items():
        if key not in fields:
            raise CheckpointError(path, f"metadata field 'model.{key}' is unknown to this version")
        parts = [t.strip() for t in str(fields[key].type).split("|")]
        allowed = tuple(t for name in parts for t in _JSON_TYPES.get(name, ()))
        ok = (value is None and "None" in parts) or (
            isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool)))
        if not ok:
            raise CheckpointError(path, f"metadata field 'model.{key}' = {value!r} has the wrong type")
        values[key] = value
    for key, legacy in ModelConfig.LEGACY.items():
        values.setdefault(key, legacy)  # a checkpoint older than the field was trained without it
    try:
        return ModelConfig(**{**values, "backend": backend})
    except ValueError as e:
        raise CheckpointError(path, f"metadata field {e}") from None


class NeuMIP(nn.Module):
    """The neural material. Output parameterisation as the paper: the decoder predicts a YUV
    triplet t, and rgb = exp(YUV->RGB(t)) - 1 (log-space, so highlights and shadows train
    equally), times the official code's shadow mask 0.1 + sigmoid(m) of three more outputs m
    when ``cfg.shadow_mask``; evaluation mode clamps rgb to >= 0."""

    def __init__(self, cfg: ModelConfig, resolution: int, metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.resolution = resolution
        self.metadata = dict(metadata or {})
        backend = resolve_backend(cfg.backend)
        self.pyramid = LatentPyramid(resolution, cfg.latent_channels, cfg.levels, cfg.init_std)
        self.offset = (
            NeuralOffset(resolution, cfg.offset_channels, cfg.offset_width, cfg.offset_layers,
                         backend, cfg.depth_scale, cfg.min_cos, cfg.offset_blur_min)
            if cfg.use_offset else None
        )
        self.decoder = make_mlp(cfg.latent_channels + 2 * encoding_width(cfg.direction_encoding),
                                6 if cfg.shadow_mask else 3,
                                cfg.decoder_width, cfg.decoder_layers, backend)
        self.register_buffer("blur_sigma", torch.zeros(()))
        self.register_buffer("yuv_to_rgb", _YUV_TO_RGB.clone())

    @property
    def backend(self) -> str:
        return self.decoder.backend

    @property
    def n_levels(self) -> int:
        return self.pyramid.n_levels

    def _as_query(self, name: str, x: Any) -> torch.Tensor:
        """A query input as a float32 tensor on the model's device, or a message saying what to pass."""
        device = self.yuv_to_rgb.device
        try:
            t = torch.as_tensor(x, device=device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"NeuMIP query: {name} must be a tensor, numpy array or list of numbers "
                             f"({type(x).__name__} given: {e})") from None
        if t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"NeuMIP query: {name} must hold real numbers, got {t.dtype}")
        return t.to(torch.float32)

    def check_inputs(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, lod: torch.Tensor) -> None:
        """Refuse wrong shapes, NaNs, non-unit directions and directions below the horizon."""
        n = uv.shape[0] if uv.ndim == 2 else -1
        for name, t, shape in (("uv", uv, (n, 2)), ("wi", wi, (n, 3)), ("wo", wo, (n, 3)),
                               ("lod", lod, (n,))):
            if tuple(t.shape) != shape or n < 0:
                raise ValueError(f"NeuMIP query: {name} has shape {tuple(t.shape)}, expected "
                                 f"{shape} (uv (N, 2), wi (N, 3), wo (N, 3), lod (N,))")
            if not torch.isfinite(t).all():
                raise ValueError(f"NeuMIP query: {name} has NaN or infinite values")
        for name, d in (("wi", wi), ("wo", wo)):
            if (d[:, 2] <= 0).any():
                i = int(torch.nonzero(d[:, 2] <= 0)[0])
                raise ValueError(f"NeuMIP query: {name}[{i}] = {d[i].tolist()} is below the horizon")
            bad = (d.norm(dim=1) - 1).abs() > _UNIT_TOL
            if bad.any():
                i = int(torch.nonzero(bad)[0])
                raise ValueError(f"NeuMIP query: {name}[{i}] is not a unit vector "
                                 f"(length {float(d[i].norm()):.4f})")

    def forward(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, lod: torch.Tensor,
                check: bool = True) -> torch.Tensor:
        """rgb (N, 3) float32 tensor, BRDF-like linear RGB (>= 0 in eval mode), for queries uv (N, 2),
        wi (N, 3), wo (N, 3) and lod (N,) or a scalar lod for all: tensors, numpy arrays or nested
        lists of any real dtype, converted to float32 on the model's device and validated.

        Gradients: in training mode the output carries the graph to the parameters. In eval mode
        (what :meth:`load` returns) it carries none, so ``.numpy()`` works directly, unless an
        input requires grad (then gradients flow to the inputs, e.g. through a frozen material).
        ``check=False`` is the internal fast path: float32 tensors on the device, no validation."""
        if check:
            uv, wi, wo, lod = (self._as_query(n, x) for n, x in (("uv", uv), ("wi", wi), ("wo", wo),
                                                                ("lod", lod)))
            if lod.ndim == 0 and uv.ndim == 2:
                lod = lod.expand(uv.shape[0])
            self.check_inputs(uv, wi, wo, lod)
            if not self.training and not any(t.requires_grad for t in (uv, wi, wo, lod)):
                with torch.no_grad():  # a loaded model answers queries without building a graph
                    return self._forward(uv, wi, wo, lod)
        return self._forward(uv, wi, wo, lod)

    #: Without autograd, queries run through the whole model in chunks of this many, so that the
    #: intermediate arrays stay in cache (measured 2026-11-25 on 2 cores: 2^16 beat 2^14 and 2^18).
    query_chunk = 2**16

    def _forward(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                 lod: torch.Tensor) -> torch.Tensor:
        n, c = uv.shape[0], self.query_chunk
        if torch.is_grad_enabled() or n <= c:
            return self._forward_batch(uv, wi, wo, lod)
        return torch.cat([self._forward_batch(uv[s : s + c], wi[s : s + c], wo[s : s + c], lod[s : s + c])
                          for s in range(0, n, c)])

    def _forward_batch(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                       lod: torch.Tensor) -> torch.Tensor:
        sigma = float(self.blur_sigma)
        if self.offset is not None:
            uv = self.offset(uv, wo, sigma)
        latent = self.pyramid(uv, lod, sigma)
        enc = self.cfg.direction_encoding
        t = self.decoder(torch.cat([latent, encode_direction(wi, enc), encode_direction(wo, enc)], dim=1))
        rgb = torch.expm1(t[:, :3] @ self.yuv_to_rgb.t())
        if self.cfg.shadow_mask:
            rgb = rgb * (0.1 + torch.sigmoid(t[:, 3:6]))
        return rgb if self.training else rgb.clamp_min(0.0)

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict[str, Any]:
        return {"model": asdict(self.cfg), "resolution": self.resolution, "data": self.metadata,
                "backend": self.backend}

    def save(self, path: str | Path, extra_tensors: dict[str, torch.Tensor] | None = None,
             extra_meta: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint: weights as ``model.*`` tensors, config and data metadata as JSON."""
        tensors = {f"model.{k}": v for k, v in self.state_dict().items()}
        tensors.update(extra_tensors or {})
        return save_checkpoint(path, tensors, {**self.checkpoint_meta(), **(extra_meta or {})})

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", backend: str = "auto") -> NeuMIP:
        """Load a checkpoint without hydra, on any device (a GPU-trained checkpoint loads on the
        CPU with the torch backend: both share the parameter layout)."""
        tensors, meta = read_checkpoint(path, "cpu")
        cfg = model_config_from_meta(path, meta, backend)
        model = cls(cfg, meta["resolution"], meta.get("data"))
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(path, f"weights do not fit the configured model ({e})") from None
        return model.to(device).eval()
