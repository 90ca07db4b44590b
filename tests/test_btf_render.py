"""The synthetic BTF renderer against closed-form cases."""

from __future__ import annotations

import math

import numpy as np
import torch

from btf_data.btf_render import RenderConfig, render_btf
from btf_data.directions import direction_set, spherical_to_cartesian
from btf_data.svbrdf import SVBRDFMaps
from tests.test_brdf import reference_isotropic_ggx


def uniform_maps(r: int, albedo: float, alpha: float, specular: float, height=None) -> SVBRDFMaps:
    return SVBRDFMaps(
        albedo=np.full((r, r, 3), albedo, np.float32),
        height=np.zeros((r, r), np.float32) if height is None else height.astype(np.float32),
        normal=np.tile(np.array([0, 0, 1], np.float32), (r, r, 1)),
        roughness=np.full((r, r), alpha, np.float32),
        metallic=np.zeros((r, r), np.float32),
        specular=np.full((r, r), specular, np.float32),
    )


def render_all(maps, wo, wi, cfg=None) -> np.ndarray:
    return np.stack([imgs for _, imgs in render_btf(maps, wo, wi, cfg)])


def test_white_lambertian_plane_reads_one_over_pi_everywhere():
    d = direction_set("small")
    btf = render_all(uniform_maps(8, 1.0, 0.5, 0.0), d, d)
    assert btf.shape == (19, 19, 8, 8, 3)
    np.testing.assert_allclose(btf, 1 / math.pi, rtol=1e-6)


def test_flat_ggx_plane_matches_the_analytic_brdf():
    d = direction_set("small")
    btf = render_all(uniform_maps(4, 0.3, 0.25, 0.04), d, d)
    wo = torch.as_tensor(d).repeat_interleave(len(d), 0)
    wi = torch.as_tensor(d).repeat(len(d), 1)
    want = reference_isotropic_ggx(wi, wo, torch.full((len(wo), 3), 0.3, dtype=torch.float64), 0.25, 0.04)
    got = btf.reshape(len(d), len(d), -1, 3).mean(2).reshape(-1, 3)
    np.testing.assert_allclose(got, want.numpy(), rtol=2e-5)
    assert btf.std(axis=(2, 3)).max() < 1e-6  # a uniform plane has no texture


def test_tall_wall_shadows_the_texels_behind_it_for_a_grazing_light():
    r, wall_h = 64, 8.0
    height = np.full((r, r), -wall_h)
    height[:, 30:34] = 0.0  # a wall along v, 4 texels thick, 8 texels tall
    maps = uniform_maps(r, 1.0, 0.5, 0.0, height)
    theta = math.radians(70.0)
    from_plus_x = spherical_to_cartesian(np.array([theta]), np.array([0.0]))
    from_minus_x = spherical_to_cartesian(np.array([theta]), np.array([math.pi]))
    wo = np.array([[0.0, 0.0, 1.0]])
    btf = render_all(maps, wo, np.concatenate([from_plus_x, from_minus_x]))[0]
    # The wall's top edge (x = 30.5 with bilinear heights) shadows the ground down to
    # x = 30.5 - 8 tan(70 deg) = 8.5; one texel of margin covers the shadow map's soft edge.
    edge = 30.5 - wall_h * math.tan(theta)
    behind = btf[0, :, math.ceil(edge) + 1 : 29].mean(-1)
    assert behind.shape[1] >= 18
    assert behind.max() < 1e-6, "texels behind the wall must be in its shadow"
    np.testing.assert_allclose(btf[0, :, 36:62].mean(-1), 1 / math.pi, rtol=1e-4)
    # Lit from the other side, the same texels see the light.
    np.testing.assert_allclose(btf[1, :, math.ceil(edge) + 1 : 29].mean(-1), 1 / math.pi, rtol=1e-4)


def test_parallax_shifts_the_visible_texel_by_depth_times_tan_theta():
    r, depth = 64, 4.0
    height = np.zeros((r, r))
    height[:, 32:] = -depth  # a step: the right half is 4 texels lower
    maps = uniform_maps(r, 1.0, 0.5, 0.0, height)
    ramp = (np.arange(r) + 0.5) / r  # albedo = v, so the colour tells the row that is seen
    maps.albedo[:] = ramp[:, None, None]
    theta = math.radians(45.0)
    wo = spherical_to_cartesian(np.array([theta]), np.array([math.pi / 2]))  # viewer towards +v
    wi = np.array([[0.0, 0.0, 1.0]])
    cfg = RenderConfig(samples_per_axis=2, jitter=False)
    img = render_all(maps, wo, wi, cfg)[0, 0, ..., 0]
    seen_v = img * math.pi * r  # row coordinate (texels) of the hit
    own_v = np.arange(r) + 0.5
    shift = own_v[:, None] - seen_v
    # Low half, away from the step and the ramp's wrap: shift = depth * tan(theta) = 4 texels.
    np.testing.assert_allclose(shift[16:56, 36:60], depth * math.tan(theta), atol=0.02)
    # Top half: no parallax.
    np.testing.assert_allclose(shift[4:60, 2:28], 0.0, atol=1e-4)
