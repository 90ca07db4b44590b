"""The suite's unit of work: a cell computes one typed result (``benchmarks.suite.results``), keeps
it on disk under a key made of everything that determines it, and records a failure without
stopping the suite."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from benchmarks.suite.results import CellRun, Failed, to_json
from plumbing.atomic import atomic_path

R = TypeVar("R", bound=CellRun)


def cell_key(*parts: Any) -> str:
    """A short stable hash of a cell's defining values (configs as JSON, sorted keys). A cell is
    keyed by what its caller passes (data file, method and its options, seed, overrides as given,
    render sizes, checkpoint contents); a config file edited in place behind an override such as
    ``preset=cpu`` is not seen (NeuMIP model files are checked): use ``rerun=true`` then."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass
class Cell(Generic[R]):
    """One unit of the suite: where it lives, how it is computed, how its kept JSON reads back,
    and whether a kept result still holds (e.g. the architecture it trained is today's)."""

    folder: Path
    compute: Callable[[Path], R]
    parse: Callable[[dict[str, Any]], R | Failed]
    still_valid: Callable[[R], bool] = lambda result: True

    def kept(self) -> R | None:
        """The finished result kept in the folder when it still holds, else None."""
        path = self.folder / "result.json"
        if not path.exists():
            return None
        result = self.parse(json.loads(path.read_text()))
        if isinstance(result, Failed) or not self.still_valid(result):
            return None
        return dataclasses.replace(result, reused=True)


def run_cell(cell: Cell[R], rerun: bool = False) -> R | Failed:
    """The cell's result: read back when it was finished before and still holds (``reused``
    set), else computed by ``cell.compute(folder)`` and saved. An exception becomes
    :class:`Failed` (not saved, so the next run tries again) and the suite goes on."""
    kept = None if rerun else cell.kept()
    if kept is not None:
        return kept
    cell.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        result = cell.compute(cell.folder)
    except Exception as e:  # noqa: BLE001 - a failing cell is recorded, the suite goes on
        (cell.folder / "error.txt").write_text(traceback.format_exc())
        return Failed(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip(),
                      time.perf_counter() - t0)
    result = dataclasses.replace(result, seconds=time.perf_counter() - t0, reused=False)
    with atomic_path(cell.folder / "result.json") as tmp:
        tmp.write_text(json.dumps(to_json(result), indent=1, default=float))
    return result
