"""The viewer's numbers for one trained material (issue 21): bytes per material for the checkpoint
and each export precision beside the BTF's own size and an SVBRDF pyramid's; the held-out PSNR
per level of each precision, evaluated through the torch model with exactly the export's rounding;
the browser frame (headless Chromium, software WebGL through SwiftShader here) against the project
renderer's frame of the same scene, camera, light and lod; and the browser's frame times.

    python -m benchmarks.bench_viewer CKPT [--data FILE.h5] [--out DIR] [--screenshot PNG]

Writes ``viewer.md`` and ``viewer.json`` in --out (default: beside the checkpoint, ``viewer/``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from btf_data.btf_file import BTFFile
from neumip.checkpoint import training_data_path
from plumbing.atomic import atomic_path
from renderer.export import PRECISIONS, export_material, held_out_by_precision, read_manifest
from renderer.material_specs import open_material
from renderer.output import score
from renderer.render import RenderSettings, render
from renderer.scene_config import SceneConfig, build_scene
from renderer.viewer.headless import run_page
from renderer.viewer.server import scene_configs

SCENES = ("plane", "sphere")


def renderer_frame(spec: str, scene: str, size: int, light: list[float]) -> tuple[np.ndarray, float]:
    """The project renderer's frame (linear) of a viewer scene with the viewer's directional light,
    and its seconds."""
    cfg = {**scene_configs()[scene], "light": "directional", "light_direction": light}
    t0 = time.perf_counter()
    image, _ = render(
        build_scene(SceneConfig(**cfg), size, size), open_material(spec), RenderSettings(progress=False)
    )
    return image, time.perf_counter() - t0


def browser_rows(spec: str, folders: list[Path], labels: list[str], scene: str, size: int,
                 light: list[float], repeats: int) -> dict[str, dict[str, float]]:
    """Each export of ``spec`` rendered in the browser against the renderer's frame of ``spec``:
    {label: PSNR, max abs error, browser and renderer ms per frame}."""
    ref, ref_seconds = renderer_frame(spec, scene, size, light)
    query = {"scene": scene, "width": size, "height": size, "light": ",".join(map(str, light)),
             "repeats": repeats}
    run = run_page(folders, labels, query, timeout=900)
    if run.errors:
        raise SystemExit(f"the page reported: {run.errors}")
    return {f.label: {"psnr_db": score(ref, f.rgb, f.label)[0].psnr,
                      "max_abs": float(np.abs(f.rgb - ref).max()),
                      "browser_ms": float(np.median(f.ms)), "renderer_ms": 1000 * ref_seconds}
            for f in run.frames}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--data", help="BTF file (default: the checkpoint's training file)")
    p.add_argument("--out", help="folder of exports and report (default: CHECKPOINT's folder/viewer)")
    p.add_argument("--levels", type=int, default=6)
    p.add_argument("--size", type=int, default=256, help="frame width and height (pixels)")
    p.add_argument("--repeats", type=int, default=3, help="browser frames timed per material")
    p.add_argument("--screenshot", help="also save the interactive page (NeuMIP | LEAN split, plane) here")
    args = p.parse_args(argv)
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else ckpt.parent / "viewer"
    spec = f"neumip:{ckpt}"
    material = open_material(spec)
    model = material.model  # type: ignore[attr-defined]
    data = Path(args.data or training_data_path(ckpt, model.metadata, "--data FILE"))
    light = scene_configs()["plane"]["light_direction"]

    exports = {
        prec: export_material(material, out / f"neumip_{prec}", prec, spec, data) for prec in PRECISIONS
    }
    with BTFFile(data) as btf:
        synthetic = btf.svbrdf() is not None
        btf_bytes = data.stat().st_size
        scores = held_out_by_precision(model, btf, args.levels)
    lean = (
        export_material(open_material(f"lean:{data}"), out / "lean_fp16", "fp16", f"lean:{data}")
        if synthetic
        else None
    )
    sizes = {
        "checkpoint (fp32, safetensors)": ckpt.stat().st_size,
        **{f"export {prec}": read_manifest(f)["bytes"] for prec, f in exports.items()},
        "BTF file (as stored)": btf_bytes,
    }
    if lean is not None:
        sizes["LEAN pyramid export (fp16)"] = read_manifest(lean)["bytes"]

    parity: dict[str, dict[str, dict[str, float]]] = {}
    for scene in SCENES:
        parity[scene] = browser_rows(spec, [exports["fp16"], exports["int8"]], ["fp16", "int8"], scene,
                                     args.size, light, args.repeats)
        if lean is not None:
            parity[scene].update(browser_rows(f"lean:{data}", [lean], ["lean fp16"], scene, args.size, light,
                                              args.repeats))

    lines = [
        f"# Viewer: {data.name}, {ckpt}",
        "",
        "## Bytes per material",
        "",
        "| what | bytes | KiB |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v:,} | {v / 1024:.0f} |" for k, v in sizes.items()]
    lines += [
        "",
        f"## Held-out PSNR per level (dB), each precision through the torch model ({data.name})",
        "",
        "| precision | " + " | ".join(f"L{k}" for k in range(args.levels)) + " | largest loss vs fp32 |",
        "|---|" + "---|" * (args.levels + 1),
    ]
    for prec, s in scores.items():
        loss = max(a - b for a, b in zip(scores["fp32"], s, strict=True))
        lines.append(f"| {prec} | " + " | ".join(f"{x:.2f}" for x in s) + f" | {loss:.3f} |")
    lines += [
        "",
        f"## Browser frame vs the project renderer's ({args.size} x {args.size}, directional light "
        f"{light}, lod from each pixel's footprint, max axis)",
        "",
        "PSNR of tone-mapped frames, as `neumip-render` scores frames; browser times are the median of "
        f"{args.repeats} frames in headless Chromium with SwiftShader (software WebGL, this machine's "
        "CPU), draw and read-back.",
        "",
        "| scene | export | PSNR (dB) | max abs error | browser ms/frame | torch renderer ms/frame |",
        "|---|---|---|---|---|---|",
    ]
    for scene, rows in parity.items():
        for label, r in rows.items():
            lines.append(
                f"| {scene} | {label} | {r['psnr_db']:.2f} | {r['max_abs']:.2e} | {r['browser_ms']:.0f} | "
                f"{r['renderer_ms']:.0f} |"
            )
    report = "\n".join(lines) + "\n"
    with atomic_path(out / "viewer.md") as tmp:
        tmp.write_text(report)
    with atomic_path(out / "viewer.json") as tmp:
        tmp.write_text(json.dumps({"sizes": sizes, "held_out_psnr": scores, "parity": parity}, indent=1))
    print(report)
    if args.screenshot and lean is not None:
        run_page(
            [exports["fp16"], lean],
            ["NeuMIP", "LEAN"],
            {"scene": "plane"},
            expect_frames=False,
            screenshot=Path(args.screenshot).resolve(),
            window=(960, 540),
            timeout=600,
        )
        print(f"screenshot  {args.screenshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
