"""Render a Mitsuba 3 scene whose shapes wear project materials: ``neumip-mitsuba`` and
:func:`render_scene`.

Materials are named by specs: ``neumip:CKPT``, ``measured:FILE.h5``, ``<svbrdf method>:FILE.h5``
(naive, gaussian, toksvig, lean, mipnet, fit), ``svbrdf:FILE.h5`` (exact level 0) or
``constant:R,G,B``. In a scene dict they replace the ``bsdf`` of the named shapes; in an XML file a
shape refers to one by ``<bsdf type="neumip"><string name="material_id" value="NAME"/></bsdf>``.

    from renderer.mitsuba.render import render_scene, demo_scene
    from renderer.mitsuba import setup
    scene = demo_scene(setup("llvm_ad_rgb"))
    image = render_scene(scene, {"ground": "neumip:last.safetensors", "object": "lean:metal.h5"},
                         out="outputs/mitsuba/demo")   # demo.exr, demo.png
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plumbing.atomic import check_output_dir
from plumbing.user_errors import user_errors

if TYPE_CHECKING:
    from renderer.materials import Material


#: The demo's bundled mesh: a torus ring with uv (the material 4 times around it), 118 KB.
DEMO_MESH = Path(__file__).parent / "assets" / "torus.obj"
#: Mitsuba's shape plugins: the entries of a scene dict that a material may be given to.
SHAPE_TYPES = frozenset(
    "obj ply serialized mesh rectangle disk sphere cube cylinder instance shapegroup bsplinecurve "
    "linearcurve sdfgrid ellipsoids ellipsoidsmesh".split()
)


def check_at_least(name: str, value: int, low: int, note: str = "") -> None:
    """Refuse a count below ``low`` before Mitsuba sees it (0 samples per pixel kills it with
    SIGFPE; other bad sizes end in its tracebacks)."""
    if value < low:
        raise ValueError(f"{name} {value}: must be >= {low}{note}")


#: The demo scene's defaults (``demo_scene`` and ``neumip-mitsuba``'s options); max_depth as
#: Mitsuba counts it: 4 segments from the camera, two bounces of indirect light.
DEMO_WIDTH, DEMO_HEIGHT, DEMO_SPP, DEMO_MAX_DEPTH = 320, 240, 16, 4


def demo_scene(
    mi,
    width: int = DEMO_WIDTH,
    height: int = DEMO_HEIGHT,
    spp: int = DEMO_SPP,
    max_depth: int = DEMO_MAX_DEPTH,
    sun: tuple[float, float, float] = (0.4, 1.0, 0.3),
) -> dict[str, Any]:
    """The demo: a torus ring (the bundled mesh, shape ``object``) on a ground plane (``ground``,
    4 x 4 units, one copy of the material) under a sky (constant environment) and a sun.
    ``max_depth`` is Mitsuba's (segments from the camera: 2 is direct light); 4 gives two bounces
    of indirect light."""
    check_at_least("width", width, 1)
    check_at_least("height", height, 1)
    check_at_least("spp", spp, 1)
    check_at_least("max_depth", max_depth, -1, " (-1: unlimited)")
    T = mi.ScalarTransform4f
    return {
        "type": "scene",
        "integrator": {"type": "neumip_path", "max_depth": max_depth},
        "sensor": {
            "type": "perspective",
            "fov": 40,
            "fov_axis": "y",
            "to_world": T().look_at(origin=[0.0, 2.4, 3.6], target=[0.0, 0.3, 0.0], up=[0, 1, 0]),
            "film": {"type": "hdrfilm", "width": width, "height": height, "rfilter": {"type": "box"}},
            "sampler": {"type": "independent", "sample_count": spp},
        },
        "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.4}},
        "sun": {
            "type": "directional",
            "direction": [-s for s in sun],
            "irradiance": {"type": "rgb", "value": 3.0},
        },
        "ground": {
            "type": "rectangle",
            "to_world": T().rotate([1, 0, 0], -90).scale(2.0),
            "bsdf": {"type": "diffuse"},
        },
        "object": {
            "type": "obj",
            "filename": str(DEMO_MESH),
            "face_normals": False,
            "bsdf": {"type": "diffuse"},
        },
    }


def xml_material_ids(path: Path) -> set[str] | None:
    """The ``material_id`` of every ``neumip`` BSDF in a Mitsuba XML scene, read before Mitsuba
    loads it, so that a missing file, a broken one or a material without a spec is one line naming
    it; None when the file may name more through ``<include>`` or ``$parameters`` (Mitsuba's load
    is then the check)."""
    if not path.exists():
        raise ValueError(f"{path}: no such scene file")
    if not path.is_file():
        raise ValueError(f"{path}: is not a file; give a Mitsuba XML scene")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not a well-formed XML scene ({e})") from None
    if root.tag != "scene":
        raise ValueError(f"{path}: not a Mitsuba scene (its root element is <{root.tag}>, not <scene>)")
    ids = {
        s.get("value", "")
        for bsdf in root.iter("bsdf")
        if bsdf.get("type") == "neumip"
        for s in bsdf.findall("string")
        if s.get("name") == "material_id"
    }
    if any(root.iter("include")) or any("$" in i for i in ids):
        return None
    return ids


def mitsuba_message(e: BaseException) -> str:
    """Mitsuba's error as one line: without its tags (source locations, component names), and of
    an error raised in Python inside a plugin (a bad ``neumip_path`` property), the last line of the
    traceback Mitsuba copies into its message."""
    text = str(e)
    head, sep, trace = text.partition("Traceback (most recent call last):")
    if sep:
        lines = [ln for ln in trace.splitlines() if ln.strip()]
        text = head + (lines[-1].strip() if lines else "")
    text = re.sub(r"\[(?:[\w.]+:\d+|[A-Z]\w*)\]\s*", "", text)  # [parser.cpp:1718], [PluginManager]
    text = re.sub(r"^At .*? \((line \d+, col \d+)\):", r"\1:", text.strip())
    return " ".join(text.split())


def render_scene(
    scene: dict[str, Any] | str | Path,
    materials: dict[str, str | Material],
    out: str | Path | None = None,
    variant: str = "llvm_ad_rgb",
    lod_mode: str = "max",
    spp: int | None = None,
    seed: int = 0,
    sampling: str = "cosine",
) -> np.ndarray:
    """Render ``scene`` (a Mitsuba scene dict, or an XML file) with project materials assigned by
    shape name (dict) or material_id (XML); writes ``out``.exr (linear) and .png when ``out`` is
    given. Returns the linear image (H, W, 3).

    Bad input (spp < 1, a shape or material_id the scene lacks, a missing or broken XML file, an
    unwritable ``out``) raises ValueError naming it before any material is opened or pixel
    rendered."""
    if spp is not None:
        check_at_least("spp", spp, 1)
    if out is not None:
        out = Path(out)
        check_output_dir(out.parent)
    xml_ids: set[str] | None = None
    if isinstance(scene, dict):
        shapes = [
            k
            for k, v in scene.items()
            if isinstance(v, dict) and ("bsdf" in v or v.get("type") in SHAPE_TYPES)
        ]
        for name in materials:
            if name not in shapes:
                raise ValueError(f"scene has no shape {name!r}; its shapes: {', '.join(shapes)}")
    else:
        scene = Path(scene)
        xml_ids = xml_material_ids(scene)
        for name in materials:
            if xml_ids is not None and name not in xml_ids:
                raise ValueError(
                    f"{scene}: no neumip BSDF has material_id {name!r}; its material_ids: "
                    f"{', '.join(sorted(xml_ids)) or 'none'}"
                )
    from renderer.mitsuba.llvm import setup

    mi = setup(variant)
    from renderer.material_specs import open_material
    from renderer.mitsuba.bsdf import material_bsdf, register_named, registered_names

    for key in sorted(xml_ids or ()):
        if key not in materials and key not in registered_names():
            raise ValueError(f"{scene}: material_id {key!r} has no material; give one: --material {key}=SPEC")

    device = "cuda" if variant.startswith("cuda") else "cpu"
    mats = {k: open_material(v, device) if isinstance(v, str) else v for k, v in materials.items()}
    if isinstance(scene, dict):
        scene = dict(scene)
        for name, m in mats.items():
            scene[name] = {
                **scene[name],
                "bsdf": material_bsdf(m, lod_mode, sampling),
            }
        loaded = mi.load_dict(scene)
    else:
        for name, m in mats.items():
            register_named(name, m, lod_mode, sampling)
        try:
            loaded = mi.load_file(str(scene))
        except RuntimeError as e:  # the file's own errors: a bad plugin, property or referenced file
            raise ValueError(f"{scene}: {mitsuba_message(e)}") from e
        sensor = loaded.sensors()[0]
        width, height = sensor.film().size()
        check_at_least(f"{scene}: film width", int(width), 1)
        check_at_least(f"{scene}: film height", int(height), 1)
        if spp is None:
            check_at_least(f"{scene}: sample_count", int(sensor.sampler().sample_count()), 1)
    image = np.array(mi.render(loaded, spp=spp or 0, seed=seed), dtype=np.float32)[..., :3]
    if out is not None:
        from renderer.output import write_exr, write_png

        write_exr(out.with_suffix(".exr"), image)
        write_png(out.with_suffix(".png"), image)
    return image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="neumip-mitsuba",
        description=(
            "Path-trace a Mitsuba 3 scene with project materials (NeuMIP checkpoints, measured BTFs, SVBRDF "
            "baselines). Example: neumip-mitsuba --material ground=neumip:CKPT --material object=lean:FILE.h5"
        ),
    )
    p.add_argument(
        "--scene",
        default="demo",
        help="demo (a torus mesh on a plane, sky and sun: shapes object and ground) or a Mitsuba XML file",
    )
    p.add_argument(
        "--material",
        action="append",
        default=[],
        metavar="SHAPE=SPEC",
        help="neumip:CKPT | measured:FILE | naive:FILE | lean:FILE | ... | constant:R,G,B",
    )
    p.add_argument("--spp", type=int, default=DEMO_SPP, help="samples per pixel (>= 1)")
    p.add_argument("--width", type=int, default=DEMO_WIDTH, help="image width of the demo scene")
    p.add_argument("--height", type=int, default=DEMO_HEIGHT, help="image height of the demo scene")
    p.add_argument(
        "--max-depth",
        type=int,
        default=DEMO_MAX_DEPTH,
        help="longest path of the demo scene in segments, as Mitsuba's: 1 emitters seen directly, "
        "2 direct light, 3 one bounce of indirect light; -1 unlimited",
    )
    p.add_argument("--lod-mode", default="max", choices=("max", "mean", "aniso"))
    p.add_argument(
        "--sampling",
        default="lobe",
        choices=("cosine", "lobe"),
        help="BSDF sampling: cosine, or lobe (a GGX lobe fitted to the material, mixed with cosine)",
    )
    p.add_argument("--variant", default="llvm_ad_rgb", help="llvm_ad_rgb (CPU) or cuda_ad_rgb (GPU)")
    p.add_argument("--out", default="outputs/mitsuba/demo", help="output path without extension (.exr, .png)")
    args = p.parse_args(argv)
    with user_errors("neumip-mitsuba"):
        check_at_least("--spp", args.spp, 1)
        check_at_least("--width", args.width, 1)
        check_at_least("--height", args.height, 1)
        check_at_least("--max-depth", args.max_depth, -1, " (-1: unlimited)")
        materials = {}
        for item in args.material:
            name, sep, spec = item.partition("=")
            if not sep:
                raise ValueError(
                    f"--material {item!r}: expected SHAPE=SPEC, e.g. ground=neumip:last.safetensors"
                )
            materials[name] = spec
        if args.scene == "demo":
            from renderer.mitsuba.llvm import setup

            scene: Any = demo_scene(setup(args.variant), args.width, args.height, args.spp, args.max_depth)
        else:
            scene = args.scene
        t0 = time.perf_counter()
        img = render_scene(
            scene, materials, args.out, args.variant, args.lod_mode, args.spp, sampling=args.sampling
        )
        print(
            f"rendered {img.shape[1]}x{img.shape[0]}, {args.spp} spp in {time.perf_counter() - t0:.1f} s: "
            f"{Path(args.out).with_suffix('.exr')}, {Path(args.out).with_suffix('.png')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
