"""Tensor files are data, not code: one safetensors file (tensors) whose header carries JSON
metadata (configuration, training state), plus a human-readable JSON copy next to it. Opening a
stranger's file never unpickles anything. NeuMIP checkpoints and the shipped MIPNet weights are
such files.

The safetensors file alone is the checkpoint: weights and metadata are replaced together by one
rename, so no crash can pair new weights with old metadata. The JSON copy is for people; it names
the sha256 of the file it was copied from (``copy_of``), so a stale copy (a crash between the two
renames, or an edited checkpoint) is told by :func:`metadata_copy_is_current`. Nothing reads the
copy as the truth.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from plumbing.atomic import atomic_path, check_output_file

CHECKPOINT_FORMAT = 1
_META_KEY = "neumip"


class CheckpointError(ValueError):
    """A checkpoint that is missing, not a safetensors file, or not a NeuMIP checkpoint."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def metadata_copy_path(path: str | Path) -> Path:
    """The human-readable JSON copy of a checkpoint's metadata: ``path`` with .json."""
    return Path(path).with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    """sha256 of a whole file, read in 1 MiB pieces (a checkpoint may not fit in memory twice)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + JSON metadata atomically to ``path``, then the metadata's human-readable
    copy (``path`` with .json) naming the new file's sha256; see the module docstring for why the
    copy comes second and cannot be mistaken for the truth."""
    path = Path(path)
    copy_path = metadata_copy_path(path)
    if copy_path == path:
        raise CheckpointError(path, "a checkpoint's name must not end in .json (its metadata copy's does)")
    check_output_file(copy_path)  # both locations before either is written
    meta = {"checkpoint_format": CHECKPOINT_FORMAT, **meta}
    text = json.dumps(meta, indent=2, default=str)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp), metadata={_META_KEY: text})
        digest = file_sha256(tmp)
    copy = {"copy_of": {"file": path.name, "sha256": digest,
                        "note": f"a copy of the metadata in {path.name}'s header, current while that "
                                "file's sha256 is this one; the header is the truth"},
            **meta}
    with atomic_path(copy_path) as tmp:
        tmp.write_text(json.dumps(copy, indent=2, default=str))
    return path


def metadata_copy_is_current(path: str | Path) -> bool:
    """Whether the JSON copy next to checkpoint ``path`` describes that very file (False when
    either is missing, the copy is unreadable or older, or the checkpoint was replaced since)."""
    path = Path(path)
    try:
        copy = json.loads(metadata_copy_path(path).read_text())
        return isinstance(copy, dict) and copy.get("copy_of", {}).get("sha256") == file_sha256(path)
    except (OSError, ValueError, AttributeError):
        return False


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
