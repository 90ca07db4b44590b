"""Where the hydra configs live. They are written in the repository's top-level ``conf/``, which
installs as the package ``plumbing.conf`` (pyproject.toml maps the folder to that name and ships
its yaml files as package data): a wheel carries them and an editable install serves the
checkout's own folder. So the commands find them by importing that package, not by a path relative
to this file, which holds only in a checkout.

In order: ``NEUMIP_CONF_DIR`` (a config folder of your own); the package ``plumbing.conf``; the
checkout's ``conf/`` beside this package (a source tree on ``sys.path`` without an install, or an
editable install made before the mapping existed)."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path


def find_conf_dir() -> str:
    """The config folder as a path: hydra reads its configs from a folder on disk."""
    override = os.environ.get("NEUMIP_CONF_DIR")
    if override:  # absolute: hydra reads a relative config path from its caller's module folder
        return str(Path(override).expanduser().resolve())
    try:
        conf = importlib.resources.files("plumbing.conf")
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[1] / "conf")
    if not isinstance(conf, Path):  # an install inside a zip file: hydra cannot list its groups
        raise RuntimeError(f"the package plumbing.conf is installed as {conf!r}, not as a folder; "
                           "install the project unpacked (pip does) or set NEUMIP_CONF_DIR")
    return str(conf)


CONF_DIR = find_conf_dir()
