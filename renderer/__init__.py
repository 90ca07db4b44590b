"""Renderer: scenes whose pixels pick their level of detail from their footprint, the materials
behind one interface ``eval(uv, wi, wo, lod) -> rgb`` (NeuMIP, the measured BTF, the exact SVBRDF
and the SVBRDF mipmapping baselines in ``renderer.baselines``), and comparison sheets.

    from renderer import RenderCommandConfig, run_render
"""

from renderer.command import RenderCommandConfig, run_render
from renderer.materials import MeasuredBTFMaterial, NeuMIPMaterial, SVBRDFMaterial
from renderer.render import RenderSettings, render

__all__ = ["MeasuredBTFMaterial", "NeuMIPMaterial", "RenderCommandConfig", "RenderSettings", "SVBRDFMaterial",
           "render", "run_render"]
