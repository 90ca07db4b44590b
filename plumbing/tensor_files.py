"""Tensor files are data, not code: one safetensors file (tensors) whose header carries JSON
metadata (configuration, training state), plus a human-readable JSON copy next to it. Opening a
stranger's file never unpickles anything. NeuMIP checkpoints and the shipped MIPNet weights are
such files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from plumbing.atomic import atomic_path

CHECKPOINT_FORMAT = 1
_META_KEY = "neumip"


class CheckpointError(ValueError):
    """A checkpoint that is missing, not a safetensors file, or not a NeuMIP checkpoint."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + JSON metadata atomically to ``path`` (and ``path`` with .json)."""
    path = Path(path)
    meta = {"checkpoint_format": CHECKPOINT_FORMAT, **meta}
    text = json.dumps(meta, indent=2, default=str)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp), metadata={_META_KEY: text})
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(text)
    return path


def read_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors on ``device``, metadata) of a checkpoint; refuses anything else clearly."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file "
                              "(e.g. out_dir/checkpoints/last.safetensors)")
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # noqa: BLE001 - any parse failure means "not a checkpoint we read"
        raise CheckpointError(
            path, f"not a safetensors checkpoint ({type(e).__name__}); pickled files are refused"
        ) from None
    if _META_KEY not in header:
        raise CheckpointError(path, "safetensors file without NeuMIP metadata")
    try:
        meta = json.loads(header[_META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"corrupt metadata ({e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(path, f"metadata is a JSON {type(meta).__name__}, expected an object")
    if not isinstance(meta.get("checkpoint_format", 0), int):
        raise CheckpointError(path, "metadata field 'checkpoint_format' is not an integer")
    if meta.get("checkpoint_format", 0) > CHECKPOINT_FORMAT:
        raise CheckpointError(path, f"checkpoint format {meta['checkpoint_format']} is newer than supported")
    return tensors, meta
