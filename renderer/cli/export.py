"""``neumip-export MATERIAL out=DIR [precision=fp16|int8|fp32]``: export a material for the
browser viewer (``neumip-view DIR``). MATERIAL is a NeuMIP checkpoint (``.safetensors``, or
``neumip:CKPT``), an SVBRDF baseline's spec (``lean:FILE.h5``, ``naive:FILE.h5``, ...) or
``constant:R,G,B``. The folder's format: renderer/export.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plumbing.user_errors import user_errors
from renderer.export import PRECISIONS, check_precision, export_material, read_manifest

#: The settings the command takes as key=value, and their defaults (None: required).
SETTINGS: dict[str, str | None] = {"out": None, "precision": "fp16"}


def parse_settings(items: list[str]) -> dict[str, str]:
    """key=value words -> settings, every key known, ``out`` given."""
    given: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in SETTINGS:
            raise ValueError(f"{item!r}: expected one of {', '.join(f'{k}=...' for k in SETTINGS)}")
        given[key] = value
    settings = {k: given.get(k, v) for k, v in SETTINGS.items()}
    missing = [k for k, v in settings.items() if v is None]
    if missing:
        raise ValueError(f"missing {', '.join(f'{k}=...' for k in missing)} (e.g. out=exports/weave)")
    return settings  # type: ignore[return-value]


def material_spec(arg: str) -> str:
    """A bare checkpoint path is ``neumip:PATH``; anything else is a material spec."""
    return f"neumip:{arg}" if arg.endswith(".safetensors") and not arg.startswith("neumip:") else arg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neumip-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("material", help="checkpoint (.safetensors), METHOD:FILE.h5 or constant:R,G,B")
    p.add_argument("settings", nargs="*", help=f"out=DIR (required), precision={'|'.join(PRECISIONS)} "
                   "(default fp16)")
    args = p.parse_args(argv)
    with user_errors("neumip-export"):
        settings = parse_settings(args.settings)
        check_precision(settings["precision"])
        from renderer.material_specs import open_material  # after the arguments are checked: slow

        spec = material_spec(args.material)
        kind, _, arg = spec.partition(":")
        if kind != "constant" and not Path(arg).is_file():
            raise ValueError(f"{arg}: no such file")
        material = open_material(spec)
        data = arg if arg.endswith(".h5") else None
        if data is None and kind == "neumip":
            meta = material.model.metadata  # type: ignore[attr-defined]
            data = meta.get("path") if meta.get("path") and Path(meta["path"]).is_file() else None
        out = export_material(material, settings["out"], settings["precision"], source=spec, data_path=data)
        manifest = read_manifest(out)
    size = manifest["bytes"] / 1024
    print(f"export      {out} ({manifest['kind']}, {manifest['precision']}, {size:.0f} KiB)")
    print(f"view it     neumip-view {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
