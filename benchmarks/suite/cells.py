"""The suite's unit of work: a cell computes one typed result (``benchmarks.suite.results``), keeps
it on disk under a key made of everything that determines it, and records a failure without
stopping the suite."""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.util
import json
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from benchmarks.suite.results import CellRun, Failed, to_json
from btf_data.btf_file import file_fingerprint
from plumbing.atomic import atomic_path

R = TypeVar("R", bound=CellRun)


def cell_key(*parts: Any) -> str:
    """A short stable hash of a cell's defining values (configs as JSON, sorted keys). A cell is
    keyed by what its caller passes (data file, method and its options, seed, overrides as given,
    render sizes, checkpoint contents); a config file edited in place behind an override such as
    ``preset=cpu`` is not seen (NeuMIP model files are checked): use ``rerun=true`` then."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
    ).stdout.strip()


def git_revision() -> str:
    """The commit the numbers come from, marked when the working tree differs from it."""
    try:
        rev, dirty = (
            _git("rev-parse", "--short", "HEAD"),
            _git("status", "--porcelain", "--untracked-files=no"),
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+uncommitted changes" if dirty else "")) or "unknown"


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


#: The project's top-level packages: an import of one of them is followed into its source.
PROJECT_PACKAGES = ("neumip", "btf_data", "renderer", "plumbing", "benchmarks")


def _module_file(name: str) -> Path | None:
    """The source file of a module (a package's ``__init__.py``), or None when ``name`` is not a
    module (e.g. a function imported with ``from pkg import f``). Found on disk from its top-level
    package, without importing anything (importing a module to find it would run its code)."""
    first, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(first)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin)
    for i, part in enumerate(rest):
        if path.name != "__init__.py":
            return None
        package = path.parent / part / "__init__.py"
        module = path.parent / f"{part}.py"
        if package.is_file():
            path = package
        elif module.is_file() and i == len(rest) - 1:
            path = module
        else:
            return None
    return path


def _imported_modules(name: str, path: Path, packages: tuple[str, ...]) -> set[str]:
    """The project modules a module's source imports anywhere (top level or inside a function),
    with the packages above each: importing ``a.b.c`` runs ``a`` and ``a.b`` too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # kept only where a module
    closed = {".".join(m.split(".")[: i + 1]) for m in found for i in range(m.count(".") + 1)}
    return {m for m in closed if m.split(".")[0] in packages}


def code_closure(modules: tuple[str, ...], packages: tuple[str, ...] = PROJECT_PACKAGES) -> list[Path]:
    """The source files the code of ``modules`` runs: each module (a package: every module in it)
    and, transitively, every project module it imports. Code a cell never imports (an exporter, a
    viewer, another method's baseline) is not in it, so adding or editing that code keeps the
    cell's results; editing any line the cell can run computes it again. Imports are followed
    into ``packages`` only (the project's own code; installed libraries are versioned apart)."""
    todo: list[str] = []
    for name in modules:
        origin = _module_file(name)
        if origin is None:
            raise ValueError(f"code fingerprint: no module {name!r}")
        todo += [".".join(name.split(".")[: i + 1]) for i in range(name.count(".") + 1)]  # and parents
        if origin.name == "__init__.py":  # a whole package named: all of its modules
            todo += [".".join((name, *f.relative_to(origin.parent).with_suffix("").parts))
                     for f in sorted(origin.parent.rglob("*.py")) if f.name != "__init__.py"]
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen or (path := _module_file(name)) is None:
            continue
        seen[name] = path
        todo += sorted(_imported_modules(name, path, packages) - seen.keys())
    return sorted(set(seen.values()))


@functools.cache
def code_fingerprint(modules: tuple[str, ...], packages: tuple[str, ...] = PROJECT_PACKAGES) -> str:
    """A hash of the code ``modules`` run (:func:`code_closure`): their syntax trees without
    docstrings and comments, so that what changes the numbers changes it and what only documents
    them does not."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for f in code_closure(modules, packages):
        rel = f.resolve().relative_to(root) if f.resolve().is_relative_to(root) else Path(f.name)
        h.update(str(rel).encode())
        h.update(ast.dump(_without_docstrings(ast.parse(f.read_text()))).encode())
    return h.hexdigest()[:12]


def _data_fingerprint(path: Path) -> str:
    """The data file's fingerprint, read once per version of the file (a suite asks for it for
    every cell of a material, and it reads up to 64 MiB)."""
    st = Path(path).stat()
    return _fingerprint_of(str(path), st.st_size, st.st_mtime_ns)


@functools.cache
def _fingerprint_of(path: str, size: int, mtime_ns: int) -> str:
    return file_fingerprint(path)


@dataclass
class Cell(Generic[R]):
    """One unit of the suite: where it lives, how it is computed, how its kept JSON reads back,
    whether a kept result still holds (e.g. the architecture it trained is today's), and its
    provenance: the data file and the code it depends on (``code``: module or package names).
    A kept result computed from another data file or by other code is computed again."""

    folder: Path
    compute: Callable[[Path], R]
    parse: Callable[[dict[str, Any]], R | Failed]
    still_valid: Callable[[R], bool] = lambda result: True
    data: Path | None = None
    code: tuple[str, ...] = ()

    def provenance(self) -> dict[str, str | None]:
        """What the cell's result depends on, as recorded with it."""
        return {
            "data_fingerprint": _data_fingerprint(self.data) if self.data else None,
            "code_fingerprint": code_fingerprint(self.code) if self.code else None,
        }

    def kept(self) -> R | None:
        """The finished result kept in the folder when it still holds, else None. A result of an
        older version without recorded provenance is kept (the report lists it)."""
        path = self.folder / "result.json"
        if not path.exists():
            return None
        try:
            result = self.parse(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):  # cut short or of another format: computed again
            return None
        if isinstance(result, Failed) or not self.still_valid(result):
            return None
        for key, now in self.provenance().items():
            then = getattr(result, key)
            if then is not None and then != now:
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
    result = dataclasses.replace(result, seconds=time.perf_counter() - t0, reused=False,
                                 revision=git_revision(), **cell.provenance())
    with atomic_path(cell.folder / "result.json") as tmp:
        tmp.write_text(json.dumps(to_json(result), indent=1, default=float))
    return result
