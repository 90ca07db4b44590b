"""The project installed from a wheel, away from the checkout: the hydra configs (``conf/``, which
installs as the package ``plumbing.conf``), the ConfigStore entries, the MIPNet weights and the
Mitsuba mesh travel with it, and the commands run from an empty folder.

The wheel is built from a copy of the project's sources (a build writes ``build/`` and
``*.egg-info`` next to its sources, never into the checkout) and installed into a fresh venv
without pip; one ``.pth`` line there puts this venv's site-packages on its path, for the
dependencies only. The site module runs the ``.pth`` files of an interpreter's own site-packages,
not those of a folder a ``.pth`` line adds, so this venv's editable install (its
``__editable__...finder``, started by its own ``.pth``) never runs there: every project module must
come from the wheel. The wheel goes in before that line is written, so pip there sees an empty
environment and cannot uninstall this venv's editable install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

from btf_data.btf_file import BTFFile

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300


@dataclass
class Installed:
    """The built wheel, the fresh venv it went into (its bin/ and site-packages) and the
    environment variables its commands run with (no PYTHONPATH: nothing of the checkout)."""

    wheel: Path
    bin: Path
    site_packages: Path
    env: dict[str, str]


def source_packages() -> list[Path]:
    """The checkout's top-level package folders (``conf/`` is one: it has an ``__init__.py``)."""
    return sorted(p for p in ROOT.iterdir() if (p / "__init__.py").is_file())


def wheel_name(rel: Path) -> str:
    """A package folder of the checkout (relative to ROOT) -> its dotted name in the wheel."""
    parts = rel.parts
    return ".".join(("plumbing", *parts) if parts[0] == "conf" else parts)


def missing_build_tooling() -> str | None:
    """Why this venv cannot build a wheel, or None. Asked of the installed metadata: importing
    setuptools here, after the standard library's distutils is loaded, fails."""
    for name in ("pip", "setuptools"):
        if not has_distribution(name):
            return f"building a wheel needs {name} in this venv ({sys.executable})"
    if Version(metadata.version("setuptools")) < Version("70.1") and not has_distribution("wheel"):
        return "building a wheel needs setuptools >= 70.1 (its own bdist_wheel) or the wheel package"
    return None


def has_distribution(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    missing = missing_build_tooling()
    if missing:
        pytest.skip(missing)
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in source_packages():
        shutil.copytree(pkg, src / pkg.name, ignore=shutil.ignore_patterns("__pycache__"))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # An absolute path: pip reads a bare folder name ("src") as the name of a package on an index.
    p = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
             "-w", str(work / "dist"), str(src)], env, work)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    (wheel,) = (work / "dist").glob("neumip-*.whl")

    venv = work / "venv"
    p = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env, work)
    assert p.returncode == 0, p.stderr
    python = venv / "bin" / "python"
    p = run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
             "--no-index", str(wheel)], env, work)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    p = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, work)
    site_packages = Path(p.stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site_packages / "_neumip_test_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    return Installed(wheel=wheel, bin=venv / "bin", site_packages=site_packages, env=env)


def test_the_wheel_holds_every_package_the_configs_and_the_shipped_data(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    expected = {wheel_name(init.parent.relative_to(ROOT))
                for pkg in source_packages() for init in pkg.rglob("__init__.py")}
    assert packages == expected  # pyproject.toml lists its packages: a new one must be added there
    yaml = {n.removeprefix("plumbing/conf/") for n in names
            if n.startswith("plumbing/conf/") and n.endswith(".yaml")}
    assert yaml == {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    weights = "renderer/baselines/weights/mipnet_cpu"
    for data in (f"{weights}.safetensors", f"{weights}.json", "renderer/mitsuba/assets/torus.obj"):
        assert data in names
    kernels = {str(c.relative_to(ROOT)) for pkg in source_packages() for c in pkg.rglob("*.c")}
    assert {"btf_data/lookup_kernel.c", "neumip/mlp_kernel.c"} <= kernels
    assert kernels <= set(names)  # every native kernel's source ships: it is compiled where it runs
    static = {n for n in names if n.startswith("renderer/viewer/static/")}
    assert static == {f"renderer/viewer/{p.relative_to(ROOT / 'renderer' / 'viewer').as_posix()}"
                      for p in (ROOT / "renderer" / "viewer" / "static").iterdir()}  # the viewer's page


def test_commands_run_from_an_empty_folder(installed, tmp_path):
    env, bin_dir = installed.env, installed.bin
    p = run([str(bin_dir / "btf-generate"), "material=bumps", "resolution=16", "directions=tiny", "out=x.h5",
             "preview=null", "progress=false"], env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    with BTFFile(tmp_path / "x.h5") as btf:
        assert btf.shape == (5, 5, 16, 16) and btf.n_levels == 5

    p = run([str(bin_dir / "neumip-train"), "--help"], env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "model=plus" in p.stdout

    # model: full, schedule: paper... come from neumip/config_store.py; a run composes all of them
    p = run([str(bin_dir / "neumip-train"), "preset=debug", "data=file", "data.path=x.h5", "data.name=x",
             "out_dir=run", "threads=1", "progress=false"], env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()
    assert "| level | resolution | PSNR (dB)" in (tmp_path / "run" / "checkpoints" / "eval.md").read_text()
    assert {f.name for f in tmp_path.iterdir()} == {"x.h5", "run"}  # hydra wrote no folders of its own

    p = run([str(bin_dir / "neumip-export"), "run/checkpoints/last.safetensors", "out=exp"], env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "neumip-view exp" in p.stdout and (tmp_path / "exp" / "manifest.json").is_file()
    p = run([str(bin_dir / "neumip-view"), "--help"], env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]


CHECK_INSTALLED = """
import json, sys
import benchmarks.suite.cli, btf_data.cli.generate, neumip.cli.train, plumbing.conf, renderer.cli.render
from plumbing.conf_dir import CONF_DIR
from renderer.baselines.mipnet import SHIPPED_CHECKPOINT, load_mipnet
from renderer.mitsuba.render import DEMO_MESH
from renderer.viewer.server import STATIC, scene_configs

model, meta = load_mipnet(SHIPPED_CHECKPOINT)
from btf_data import lookup_native
files = {name: m.__file__ for name, m in sys.modules.items()
         if name.split(".")[0] in ("plumbing", "btf_data", "neumip", "renderer", "benchmarks")
         and getattr(m, "__file__", None)}
print(json.dumps({"files": files, "conf": CONF_DIR, "weights": str(SHIPPED_CHECKPOINT),
                  "mipnet_params": sum(p.numel() for p in model.parameters()), "mesh": str(DEMO_MESH),
                  "mesh_bytes": DEMO_MESH.stat().st_size, "static": str(STATIC / "viewer.js"),
                  "static_bytes": (STATIC / "viewer.js").stat().st_size, "scenes": sorted(scene_configs()),
                  "editable": [str(f) for f in sys.meta_path if "editable" in str(f).lower()],
                  "native": lookup_native.native_available()}))
"""


def test_modules_configs_and_data_come_from_the_installed_wheel(installed, tmp_path):
    p = run([str(installed.bin / "python"), "-c", CHECK_INSTALLED], installed.env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    site = str(installed.site_packages)
    assert out["editable"] == []
    assert len(out["files"]) > 20
    for path in [*out["files"].values(), out["conf"], out["weights"], out["mesh"], out["static"]]:
        assert path.startswith(site) and not path.startswith(str(ROOT)), path
    assert Path(out["conf"]) == installed.site_packages / "plumbing" / "conf"
    assert (Path(out["conf"]) / "train.yaml").is_file()
    assert out["mipnet_params"] > 0 and out["mesh_bytes"] > 0
    assert out["static_bytes"] > 0 and out["scenes"] == ["plane", "sphere"]
    assert out["native"]  # the lookup kernel's source ships in the wheel and builds from there
