"""Checkpoints are data, not code: one safetensors file (tensors) whose header carries the
configuration and training state as JSON, plus a human-readable JSON copy next to it. Opening a
stranger's checkpoint never unpickles anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from btf_data.atomic import atomic_path
from btf_data.btf_file import file_fingerprint

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


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as (tensors named ``optim.<param>.<key>``, JSON-able metadata), so
    that a resumed run continues exactly where it stopped."""
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in opt["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"optim_param_groups": opt["param_groups"], "optim_scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    for k, v in meta["optim_scalars"].items():
        idx, key = k.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["optim_param_groups"]})


def training_data_path(checkpoint: str | Path, data_meta: dict[str, Any], option: str) -> Path:
    """The BTF file a checkpoint was trained on: its absolute path, else the same file relative to
    the checkpoint (a moved or copied run folder). Missing: an error that names ``option``, the
    command's way to pass the file. A file that differs from the one trained on (fingerprint) is
    reported on stderr and used."""
    checkpoint = Path(checkpoint)
    # The recorded path (absolute since this version; older checkpoints hold one relative to the
    # folder training ran in), then the same file relative to the checkpoint.
    candidates = [Path(c) for c in [data_meta.get("path")] if c]
    if data_meta.get("path_from_checkpoint"):
        candidates.append(checkpoint.parent / data_meta["path_from_checkpoint"])
    tried = []
    for p in candidates:
        tried.append(str(p))
        if p.is_file():
            want = data_meta.get("fingerprint")
            if want:
                if file_fingerprint(p) != want:
                    print(f"warning: {p} differs from the file {checkpoint} was trained on", file=sys.stderr)
            return p
    where = " or ".join(tried) if tried else "no path recorded"
    raise CheckpointError(checkpoint, f"its training data is not found ({where}); pass {option}")
