"""The suite's unit of work: a cell computes one result (a dict of numbers), keeps it on disk
under a key made of everything that determines it, and records a failure without stopping the
suite."""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from btf_data.atomic import atomic_path


def cell_key(*parts: Any) -> str:
    """A short stable hash of a cell's defining values (configs as JSON, sorted keys). A cell is
    keyed by what its caller passes (data file, method, seed, overrides as given, render sizes,
    checkpoint contents); a config file edited in place behind an override such as
    ``preset=cpu`` is not seen (NeuMIP model files are checked): use ``rerun=true`` then."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def run_cell(
    cell_dir: Path,
    compute: Callable[[Path], dict[str, Any]],
    rerun: bool = False,
    still_valid: Callable[[dict[str, Any]], bool] = lambda result: True,
) -> dict[str, Any]:
    """The cell's result: read back from ``cell_dir/result.json`` when it was finished before
    and ``still_valid`` accepts it (``reused`` set), else computed by ``compute(cell_dir)`` and
    saved. An exception becomes ``{"error": "..."}`` (not saved, so the next run tries again)
    and the suite goes on."""
    path = cell_dir / "result.json"
    if path.exists() and not rerun:
        kept = json.loads(path.read_text())
        if still_valid(kept):
            return {**kept, "reused": True}
    cell_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        result = compute(cell_dir)
    except Exception as e:  # noqa: BLE001 - a failing cell is recorded, the suite goes on
        (cell_dir / "error.txt").write_text(traceback.format_exc())
        return {
            "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip(),
            "seconds": time.perf_counter() - t0,
        }
    result["seconds"] = time.perf_counter() - t0
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float))
    return {**result, "reused": False}
