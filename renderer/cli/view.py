"""``neumip-view DIR [DIR2] [--port N] [--no-browser]``: serve the browser viewer for one or two
export folders (``neumip-export``) from a local HTTP server, print its URL and open the browser.
Two folders show side by side or split (e.g. NeuMIP | LEAN). Ctrl-C stops it."""

from __future__ import annotations

import argparse
import sys
import time
import webbrowser
from pathlib import Path

from plumbing.user_errors import user_errors
from renderer.export import read_manifest


def label(folder: Path, manifest: dict) -> str:
    """What the page calls a material: its kind (the method, for SVBRDF pyramids), the data's
    name and the precision."""
    kind = manifest.get("method") or manifest["kind"]
    data = (manifest.get("data") or {}).get("name")
    return " ".join(x for x in (kind, data, manifest["precision"]) if x) + f" ({folder.name})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neumip-view", description=__doc__)
    p.add_argument("folders", nargs="+", metavar="DIR", help="one or two export folders")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--no-browser", action="store_true", help="print the URL only")
    args = p.parse_args(argv)
    with user_errors("neumip-view"):
        if len(args.folders) > 2:
            raise ValueError(f"{len(args.folders)} folders given: the viewer shows one or two")
        folders = [Path(f) for f in args.folders]
        labels = [label(f, read_manifest(f)) for f in folders]  # a broken folder: one line, exit 2
        from renderer.viewer.server import ViewerServer

        try:
            server = ViewerServer(folders, labels, host=args.host, port=args.port).start()
        except OSError as e:
            raise ValueError(f"{args.host}:{args.port}: cannot serve there ({e.strerror or e}); "
                             "pass another --port (0 picks a free one)") from None
    print(f"neumip-view serving {', '.join(labels)}")
    print(f"open        {server.url}", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
