"""Where the hydra configs live: the repository's top-level ``conf/`` (the package is installed
in editable mode by ``make``; NEUMIP_CONF_DIR overrides it for other layouts)."""

from __future__ import annotations

import os
from pathlib import Path

CONF_DIR = os.environ.get("NEUMIP_CONF_DIR", str(Path(__file__).resolve().parents[1] / "conf"))
