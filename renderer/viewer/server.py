"""The viewer's HTTP server (standard library only): the static page, ``/config.json`` (the
materials' URLs and the project's scenes), each export folder under ``/m/<i>/``, and
``/__report``, where the page posts what a caller may want to know (frames in test mode, errors,
console errors); they are kept in :attr:`ViewerServer.reports`."""

from __future__ import annotations

import dataclasses
import json
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from omegaconf import OmegaConf

from plumbing.conf_dir import find_conf_dir
from renderer.scene_config import SceneConfig

STATIC = Path(__file__).parent / "static"
#: The scenes the viewer offers (conf/scene/<name>.yaml); the viewer lights both with a
#: directional light (the scene's ``light_direction`` and ``irradiance``).
VIEWER_SCENES = ("plane", "sphere")
MIME = {".js": "text/javascript", ".html": "text/html", ".json": "application/json",
        ".bin": "application/octet-stream", ".css": "text/css"}


def scene_configs() -> dict[str, dict[str, Any]]:
    """The project's scene configs the viewer offers, as plain dicts (conf/scene/*.yaml)."""
    out = {}
    for name in VIEWER_SCENES:
        raw = OmegaConf.load(Path(find_conf_dir()) / "scene" / f"{name}.yaml")
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SceneConfig), raw))
        out[name] = dataclasses.asdict(cfg)  # type: ignore[arg-type]
    return out


class ViewerServer:
    """Serves the viewer for ``exports`` (folders) and ``labels``."""

    def __init__(self, exports: list[Path], labels: list[str],
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.exports = [Path(e).resolve() for e in exports]
        self.config = {
            "materials": [{"url": f"/m/{i}/", "label": label} for i, label in enumerate(labels)],
            "scenes": scene_configs(),
        }
        self.reports: list[dict[str, Any]] = []
        self.report_arrived = threading.Condition()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ViewerServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_for(self, kinds: tuple[str, ...], timeout: float) -> dict[str, Any] | None:
        """The first report of one of ``kinds`` (waiting up to ``timeout`` seconds), or None."""
        with self.report_arrived:
            self.report_arrived.wait_for(lambda: any(r["kind"] in kinds for r in self.reports), timeout)
            return next((r for r in self.reports if r["kind"] in kinds), None)

    def _file(self, path: str) -> Path | None:
        """The file a URL path names: the page's own files, or a file directly inside an export
        folder (no other path is served)."""
        parts = [p for p in unquote(path).split("/") if p]
        if not parts:
            return STATIC / "index.html"
        if parts[0] == "m" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(self.exports):
            f = self.exports[int(parts[1])] / parts[2]
        elif len(parts) == 1:
            f = STATIC / parts[0]
        else:
            return None
        return f if f.is_file() and ".." not in parts else None

    def _handler(self) -> type[SimpleHTTPRequestHandler]:
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """No request log: the command prints the URL, the page reports its own errors."""

            def _send(self, body: bytes, mime: str, status: HTTPStatus = HTTPStatus.OK) -> None:
                self.send_response(status)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = urlparse(self.path).path
                if path == "/config.json":
                    return self._send(json.dumps(server.config).encode(), MIME[".json"])
                f = server._file(path)
                if f is None:
                    return self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
                self._send(f.read_bytes(), MIME.get(f.suffix, "application/octet-stream"))

            def do_POST(self) -> None:  # noqa: N802
                if urlparse(self.path).path != "/__report":
                    return self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
                n = int(self.headers.get("Content-Length", 0))
                try:
                    report = json.loads(self.rfile.read(n))
                except json.JSONDecodeError:
                    return self._send(b"bad report", "text/plain", HTTPStatus.BAD_REQUEST)
                with server.report_arrived:
                    server.reports.append(report)
                    server.report_arrived.notify_all()
                self._send(b"ok", "text/plain")

        return Handler
