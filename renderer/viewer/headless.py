"""The viewer driven by a headless Chromium (the system's ``chromium``; WebGL2 through
SwiftShader, no GPU needed): frames of linear radiance read back from the page, for the tests,
the frame-time benchmark and the README's screenshot. Nothing is downloaded."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from renderer.viewer.server import ViewerServer

#: Chromium's flags for WebGL2 without a GPU (SwiftShader through ANGLE).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--disable-gpu-sandbox", "--no-first-run", "--no-default-browser-check",
                  "--disable-extensions", "--mute-audio")


def find_chromium() -> str | None:
    """The browser: ``NEUMIP_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH."""
    return os.environ.get("NEUMIP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class BrowserFrame:
    """A frame the page rendered: ``rgb`` (H, W, 3) float32 linear radiance, top row first, and
    the milliseconds each repeat took (draw and read back)."""

    label: str
    rgb: np.ndarray
    ms: list[float]


@dataclass
class PageRun:
    frames: list[BrowserFrame]
    errors: list[str]
    """The page's own error message and console errors, in order."""


class BrowserError(RuntimeError):
    """The browser is missing, or the page did not send what it was asked for in time."""


def run_page(exports: list[Path], labels: list[str], query: dict[str, str | float | int] | None = None,
             timeout: float = 120.0, expect_frames: bool = True,
             screenshot: Path | None = None, window: tuple[int, int] = (1280, 720)) -> PageRun:
    """Open the viewer for ``exports`` in headless Chromium with URL parameters ``query`` (test
    mode when ``expect_frames``: one frame per material comes back) and collect what the page
    reports. ``screenshot``: instead, save the interactive page as a PNG there."""
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError("no chromium on this machine (install Debian's chromium, or set NEUMIP_CHROMIUM)")
    server = ViewerServer(exports, labels).start()
    q = dict(query or {})
    if expect_frames:
        q["test"] = 1
    url = server.url + "?" + urlencode(q)
    with tempfile.TemporaryDirectory(prefix="neumip-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--window-size={window[0]},{window[1]}"]
        if screenshot is not None:
            cmd += [f"--screenshot={screenshot}", "--virtual-time-budget=60000", "--hide-scrollbars"]
        proc = subprocess.Popen([*cmd, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if screenshot is not None:
                proc.wait(timeout=timeout)
            elif expect_frames:
                server.wait_for(("done", "page_error"), timeout)
            else:
                server.wait_for(("page_error", "ready"), timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            server.stop()
    frames, errors = [], []
    for r in server.reports:
        if r["kind"] == "frame":
            w, h = r["width"], r["height"]
            rgba = np.frombuffer(base64.b64decode(r["rgba_f32_base64"]), dtype="<f4").reshape(h, w, 4)
            frames.append(BrowserFrame(r["label"], np.ascontiguousarray(rgba[::-1, :, :3]), list(r["ms"])))
        elif r["kind"] in ("page_error", "console"):
            errors.append(r["text"])
    if expect_frames and len(frames) != len(exports) and not errors:
        raise BrowserError(f"the page sent {len(frames)} of {len(exports)} frames within {timeout:.0f} s")
    return PageRun(frames, errors)
