"""NeuMIP checkpoints: tensor files (``plumbing.tensor_files``: safetensors with a JSON header,
never pickles) holding the model, the optimizer state and the training data's identity; here the
optimizer state as tensors and JSON, and the training data found again from a checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from btf_data.btf_file import file_fingerprint
from plumbing.tensor_files import CheckpointError


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
