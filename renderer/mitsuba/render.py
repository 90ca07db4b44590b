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
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plumbing.atomic import check_output_dir
from plumbing.user_errors import user_errors

if TYPE_CHECKING:
    from renderer.materials import Material


#: The demo's bundled mesh: a torus ring with uv (the material 4 times around it), 118 KB.
DEMO_MESH = Path(__file__).parent / "assets" / "torus.obj"


def demo_scene(
    mi,
    width: int = 320,
    height: int = 240,
    spp: int = 16,
    max_depth: int = 3,
    sun: tuple[float, float, float] = (0.4, 1.0, 0.3),
) -> dict[str, Any]:
    """The demo: a torus ring (the bundled mesh, shape ``object``) on a ground plane (``ground``,
    4 x 4 units, one copy of the material) under a sky (constant environment) and a sun."""
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
    given. Returns the linear image (H, W, 3)."""
    from renderer.mitsuba.llvm import setup

    mi = setup(variant)
    from renderer.material_specs import open_material
    from renderer.mitsuba.bsdf import material_bsdf, register_named

    device = "cuda" if variant.startswith("cuda") else "cpu"
    mats = {k: open_material(v, device) if isinstance(v, str) else v for k, v in materials.items()}
    if isinstance(scene, dict):
        scene = dict(scene)
        for name, m in mats.items():
            if name not in scene:
                shapes = [k for k, v in scene.items() if isinstance(v, dict) and "bsdf" in v]
                raise ValueError(f"scene has no shape {name!r}; its shapes: {', '.join(shapes)}")
            scene[name] = {
                **scene[name],
                "bsdf": material_bsdf(m, lod_mode, sampling),
            }
        loaded = mi.load_dict(scene)
    else:
        for name, m in mats.items():
            register_named(name, m, lod_mode, sampling)
        loaded = mi.load_file(str(scene))
    image = np.array(mi.render(loaded, spp=spp or 0, seed=seed), dtype=np.float32)[..., :3]
    if out is not None:
        from renderer.output import write_exr, write_png

        out = Path(out)
        check_output_dir(out.parent)
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
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--max-depth", type=int, default=3)
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
