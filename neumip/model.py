"""NeuMIP: latent mip pyramid + neural offset + decoder MLP, queried as
``model(uv, wi, wo, lod) -> rgb`` on batches (Kuznetsov et al. 2021).

Inputs: uv (N, 2) (period 1); wi, wo (N, 3) unit vectors in the tangent frame with z > 0; lod
(N,) continuous level (0 = finest). Output: (N, 3) BRDF-like linear RGB, as the BTF files hold.
"""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException
from torch import nn

from neumip import query_native
from neumip.config import ModelConfig
from neumip.decoder import YUV_TO_RGB, make_decoder
from neumip.grazing import GrazingLimits, limit_elevation
from neumip.horizon import HorizonFeatures
from neumip.latent_pyramid import LatentPyramid
from neumip.lobe_pyramid import LobePyramid
from neumip.mlp_backends import resolve_backend
from neumip.neural_offset import NeuralOffset
from plumbing.tensor_files import CheckpointError, read_checkpoint, save_checkpoint

_UNIT_TOL = 1e-3


def _json_kind(x: Any) -> str:
    """What JSON kind of value x is. The structured schema converts strings to numbers and bools
    and numbers to strings, silently; metadata written by this code never needs that (an enum
    field is written as a string), so a changed kind is a wrong type."""
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)):
        return "number"
    if isinstance(x, (str, Enum)):
        return "string"
    if isinstance(x, (list, tuple)):
        return "list"
    if isinstance(x, dict):
        return "object"
    return "null" if x is None else type(x).__name__


def _same_kinds(given: Any, typed: Any) -> bool:
    """Whether the schema kept every value's JSON kind (recursively through lists and objects)."""
    if _json_kind(given) != _json_kind(typed):
        return False
    if isinstance(given, (list, tuple)):
        return len(given) == len(typed) and all(_same_kinds(a, b) for a, b in zip(given, typed, strict=True))
    if isinstance(given, dict):
        return all(_same_kinds(v, typed.get(k)) for k, v in given.items())
    return True


def model_config_from_meta(path: str | Path, meta: dict[str, Any], backend: str) -> ModelConfig:
    """The checkpoint's model config, every field checked against ModelConfig's structured schema
    (OmegaConf: any field type it supports, lists and enums too): a stranger's or damaged
    metadata is refused naming the file and the field, never as a TypeError deep inside the
    model. Fields the checkpoint lacks take ModelConfig.LEGACY's values (older checkpoints were
    trained without them), else the defaults; ``backend`` is the caller's."""
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
    given = meta["model"]
    schema = OmegaConf.structured(ModelConfig)
    for key, value in given.items():
        try:
            schema = OmegaConf.merge(schema, {key: value})
        except ConfigKeyError:
            raise CheckpointError(path, f"metadata field 'model.{key}' is unknown to this version") from None
        except OmegaConfBaseException as e:
            raise CheckpointError(path, f"metadata field 'model.{key}' = {value!r} has the wrong type "
                                  f"({str(e).splitlines()[0]})") from None
    typed = OmegaConf.to_container(schema)
    for key, value in given.items():
        if not _same_kinds(value, typed[key]):
            raise CheckpointError(path, f"metadata field 'model.{key}' = {value!r} has the wrong type "
                                  f"(a {_json_kind(value)} where the field holds a {_json_kind(typed[key])})")
    # A checkpoint older than a field was trained without it; backend is the caller's choice.
    legacy = {k: v for k, v in ModelConfig.LEGACY.items() if k not in given}
    schema = OmegaConf.merge(schema, {**legacy, "backend": backend})
    try:
        return OmegaConf.to_object(schema)  # type: ignore[return-value]
    except ValueError as e:  # ModelConfig's range checks: "model.key=value: must be ..."
        raise CheckpointError(path, f"metadata field {e}") from None


class NeuMIP(nn.Module):
    """The neural material: the neural offset shifts uv, the latent pyramid gives a latent vector
    there, and the decoder (``cfg.decoder``, see neumip/decoder.py; the paper's by default) turns
    it and the two directions into rgb, clamped to >= 0 in evaluation mode. With a decoder that
    refines an analytic lobe (model=hybrid) a lobe pyramid is read at the same uv and lod too."""

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
        self.decoder = make_decoder(cfg, backend)
        #: model=hybrid: the analytic lobe the decoder refines (read at the offset uv, unblurred).
        self.lobe = LobePyramid(resolution, cfg.levels) if self.decoder.uses_lobe else None
        #: model=horizon: learned horizons, the soft visibility of light and view (neumip/horizon.py).
        self.horizon = (HorizonFeatures(resolution, cfg.horizon_azimuths, cfg.levels)
                        if cfg.horizon_azimuths else None)
        self.register_buffer("blur_sigma", torch.zeros(()))
        #: Directions beyond the training grid (neumip/grazing.py), from the data metadata.
        self.grazing = GrazingLimits.from_metadata(self.metadata)

    #: Checkpoints written before the decoder was a component (neumip/decoder.py) hold its MLP at
    #: ``decoder.params`` and the YUV matrix as a buffer ``yuv_to_rgb``; the matrix is now the
    #: decoder's constant, and such a file must hold exactly it.
    _LEGACY_KEYS = {"decoder.params": "decoder.mlp.params"}
    _LEGACY_CONSTANTS = {"yuv_to_rgb": YUV_TO_RGB}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """Reads the legacy key layout too (for every ``load_state_dict``: NeuMIP.load, resuming)."""
        for old, new in self._LEGACY_KEYS.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        for old, value in self._LEGACY_CONSTANTS.items():
            held = state_dict.pop(prefix + old, None)
            if held is not None and not (held.shape == value.shape
                                         and torch.equal(held.cpu().float(), value)):
                error_msgs.append(f"{prefix + old} holds {held.tolist()}, not the constant {value.tolist()}")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    @property
    def backend(self) -> str:
        return self.decoder.backend

    @property
    def n_levels(self) -> int:
        return self.pyramid.n_levels

    def _as_query(self, name: str, x: Any) -> torch.Tensor:
        """A query input as a float32 tensor on the model's device, or a message saying what to pass."""
        device = self.blur_sigma.device
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

    #: Without autograd, queries run through the whole model in chunks of this many: large enough
    #: that the per-chunk work of torch's glue is small, the MLPs tiling each chunk themselves
    #: (measured 2026-12-01 on 2 cores, `plus`, with the native MLP, head and lookups, median of 5,
    #: M queries/s bf16 / fp32: 2^14 7.26 / 2.92, 2^16 8.50 / 4.18, 2^17 8.91 / 4.38, 2^18 8.90 /
    #: 4.46; 2^16 had beaten 2^14 and 2^18 on 2026-11-25, with oneDNN's layers). 2^18: a render
    #: chunk of up to 2^18 pixels is one model chunk, its colours not concatenated again.
    query_chunk = 2**18

    def _forward(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                 lod: torch.Tensor) -> torch.Tensor:
        # bf16 inference of the models it serves: every stage in one native kernel, the same
        # numbers as the stages below; it keeps no intermediate arrays, so it takes any batch whole
        fused = query_native.fused_query(self, uv, wi, wo, lod, float(self.blur_sigma))
        if fused is not None:
            return fused
        n, c = uv.shape[0], self.query_chunk
        if torch.is_grad_enabled() or n <= c:
            return self._forward_batch(uv, wi, wo, lod)
        return torch.cat([self._forward_batch(uv[s : s + c], wi[s : s + c], wo[s : s + c], lod[s : s + c])
                          for s in range(0, n, c)])

    def _forward_batch(self, uv: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                       lod: torch.Tensor) -> torch.Tensor:
        sigma = float(self.blur_sigma)
        g = self.grazing  # beyond the training grid: the learned parts read the nearest grid elevation
        wi_net = wi if g is None else limit_elevation(wi, g.min_cos_wi)
        wo_net = wo if g is None else limit_elevation(wo, g.min_cos_wo)
        if self.offset is not None:
            uv = self.offset(uv, wo_net, sigma)
        base, latent = None, None
        c = self.pyramid.channels
        if self.lobe is not None:  # the lobe's texels in the latents' lookup (unblurred): one for both
            both = self.pyramid(uv, lod, sigma, beside=list(self.lobe.levels))
            beyond = None if g is None else (wi[:, 2] < g.min_cos_wi, wo[:, 2] < g.min_cos_wo)
            latent = both[:, :c]
            base = self.lobe.shade_raw(both[:, c:], wi, wo, beyond)
        horizon = None if self.horizon is None else self.horizon(uv, lod, wi_net, wo_net, sigma)
        if torch.is_grad_enabled():  # the decoder concatenates its input (see Decoder.forward)
            latent = self.pyramid(uv, lod, sigma) if latent is None else latent
            latent = latent if horizon is None else torch.cat([latent, horizon], dim=1)
            return self.decoder(latent, wi_net, wo_net, base)
        # The latents go straight into the decoder's input (no concatenation copies them again).
        x, slot = self.decoder.input_buffer(uv.shape[0], uv.device)
        if latent is None:
            self.pyramid(uv, lod, sigma, out=slot[:, :c])
        else:
            slot[:, :c] = latent
        if horizon is not None:
            slot[:, c:] = horizon
        return self.decoder.decode(x, wi_net, wo_net, base)

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
        try:
            model = cls(cfg, meta["resolution"], meta.get("data"))
        except ValueError as e:  # e.g. a decoder this version does not know
            raise CheckpointError(path, str(e)) from None
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(path, f"weights do not fit the configured model ({e})") from None
        return model.to(device).eval()
