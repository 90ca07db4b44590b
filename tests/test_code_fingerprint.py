"""A cell's code fingerprint follows what the cell runs: the import closure of its modules."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.suite.cells import code_closure, code_fingerprint
from benchmarks.suite.quality import NEUMIP_CODE

PKG = "fp_probe_pkg"


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    importlib.invalidate_caches()


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A package: ``a`` imports ``b`` inside a function (relative), ``b`` imports ``sub.c``,
    ``d`` is imported by nothing; ``json`` is outside the followed packages."""
    monkeypatch.syspath_prepend(str(tmp_path))
    _write(tmp_path, {
        f"{PKG}/__init__.py": "",
        f"{PKG}/a.py": "import json\n\ndef f():\n    from . import b\n    return b.g()\n",
        f"{PKG}/b.py": f"from {PKG}.sub.c import h\n\ndef g():\n    return h()\n",
        f"{PKG}/sub/__init__.py": "",
        f"{PKG}/sub/c.py": '"""doc"""\n\ndef h():\n    return 1\n',
        f"{PKG}/d.py": "X = 1\n",
    })
    yield tmp_path
    for name in [m for m in sys.modules if m.split(".")[0] == PKG]:
        del sys.modules[name]


def fingerprint(*modules: str) -> str:
    return code_fingerprint.__wrapped__(modules, (PKG,))


def test_closure_is_what_the_module_imports(probe):
    names = {p.relative_to(probe).as_posix() for p in code_closure((f"{PKG}.a",), (PKG,))}
    assert names == {f"{PKG}/__init__.py", f"{PKG}/a.py", f"{PKG}/b.py", f"{PKG}/sub/__init__.py",
                     f"{PKG}/sub/c.py"}
    # a whole package named: every module in it, d included
    assert f"{PKG}/d.py" in {p.relative_to(probe).as_posix() for p in code_closure((PKG,), (PKG,))}


def test_fingerprint_changes_with_code_the_cell_runs_only(probe):
    before = fingerprint(f"{PKG}.a")
    _write(probe, {f"{PKG}/d.py": "X = 2\n", f"{PKG}/e.py": "Y = 1\n"})  # not imported by a
    assert fingerprint(f"{PKG}.a") == before
    _write(probe, {f"{PKG}/sub/c.py": '"""another doc"""\n# a comment\n\ndef h():\n    return 1\n'})
    assert fingerprint(f"{PKG}.a") == before  # documentation only
    _write(probe, {f"{PKG}/sub/c.py": "def h():\n    return 2\n"})  # two imports away
    assert fingerprint(f"{PKG}.a") != before


def test_unknown_module_is_refused(probe):
    with pytest.raises(ValueError, match="no module"):
        code_closure((f"{PKG}.nosuch",), (PKG,))


def test_neumip_cell_code_excludes_what_training_never_runs():
    files = {p.as_posix() for p in code_closure(NEUMIP_CODE)}
    for needed in ("neumip/train.py", "neumip/decoder.py", "neumip/horizon.py", "btf_data/sampler.py",
                   "plumbing/thread_share.py"):
        assert any(f.endswith(needed) for f in files), needed
    for unrelated in ("renderer/render.py", "renderer/baselines/lean.py", "benchmarks/suite/report.py"):
        assert not any(f.endswith(unrelated) for f in files), unrelated
