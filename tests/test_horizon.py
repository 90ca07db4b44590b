"""Shadow-aware latents (neumip/horizon.py): the horizon map of a known step, the soft visibility's
switch at the right light elevation, agreement with the BTF renderer's shadow rays (a second
implementation), and the model variant that reads them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from btf_data.btf_render import HeightfieldMaterial, RenderConfig, light_visible
from btf_data.procedural import procedural_maps
from btf_data.svbrdf import make_maps
from neumip.config import ModelConfig
from neumip.horizon import HorizonFeatures, horizon_at, horizon_map, soft_visibility
from neumip.model import NeuMIP


def _step(height: float = 4.0) -> np.ndarray:
    """A wall ``height`` texels high at columns 16..19 of a 4 x 32 tile, flat elsewhere."""
    h = np.zeros((4, 32))
    h[:, 16:20] = height
    return h


def _light(elevation_deg: float, phi_deg: float = 0.0) -> torch.Tensor:
    e, p = math.radians(elevation_deg), math.radians(phi_deg)
    return torch.tensor([[math.cos(e) * math.cos(p), math.cos(e) * math.sin(p), math.sin(e)]])


@pytest.mark.parametrize("d", [1, 2, 4, 8])
def test_the_horizon_of_a_step_is_atan_of_height_over_distance(d: int) -> None:
    hm = horizon_map(_step(4.0), azimuths=4)
    assert hm[1, 16 - d, 0] == pytest.approx(math.atan(4.0 / d), abs=1e-9)  # towards the wall (+x)
    assert hm[1, 21, 0] == pytest.approx(math.atan(4.0 / 27), abs=1e-9)  # behind it: the tile wraps
    assert hm[1, 16 - d, 2] == pytest.approx(math.atan(4.0 / (29 - d)), abs=1e-9)  # -x: wraps to column 19


@pytest.mark.parametrize("d", [2, 4])
def test_the_soft_visibility_switches_at_the_step_s_shadow_elevation(d: int) -> None:
    """A light towards the wall is shadowed below atan(H / d) and lit above; the soft switch is
    0.5 exactly there and sharpens as tau shrinks."""
    horizon = torch.as_tensor(horizon_map(_step(4.0), azimuths=8)[1, 16 - d][None], dtype=torch.float32)
    boundary = math.degrees(math.atan(4.0 / d))
    tau = torch.tensor([0.01])
    assert float(soft_visibility(horizon, tau, _light(boundary))) == pytest.approx(0.5, abs=1e-3)
    assert float(soft_visibility(horizon, tau, _light(boundary + 3))) > 0.99
    assert float(soft_visibility(horizon, tau, _light(boundary - 3))) < 0.01
    # Half-way between two azimuths the horizon is the mean of theirs.
    assert float(horizon_at(horizon, torch.tensor([math.pi / 8]))) == pytest.approx(
        float(horizon[0, :2].mean()), abs=1e-6)


def test_horizons_agree_with_the_btf_renderer_s_shadow_rays() -> None:
    """On the bumps heightfield, lights along the horizon map's azimuths: 'above the horizon' is
    the renderer's light_visible (marched shadow rays) for all but the pairs within a degree of the
    boundary, where the two discretisations (march step, shadow bias) may differ."""
    maps = procedural_maps("bumps", 32)
    height = maps.height.astype(np.float64)
    k = 8
    hm = horizon_map(height, azimuths=k)
    material = HeightfieldMaterial(make_maps(height, maps.albedo, maps.roughness, 0.0, 0.04, displaced=True))
    rng = np.random.default_rng(0)
    n = 2000
    iy, ix, ia = rng.integers(0, 32, n), rng.integers(0, 32, n), rng.integers(0, k, n)
    elev = rng.uniform(2.0, 60.0, n)
    phi = 2 * math.pi * ia / k
    e = np.radians(elev)
    wi = torch.as_tensor(np.stack([np.cos(e) * np.cos(phi), np.cos(e) * np.sin(phi), np.sin(e)], 1),
                         dtype=torch.float32)
    xy = torch.as_tensor(np.stack([ix + 0.5, iy + 0.5], 1), dtype=torch.float32)
    cfg = RenderConfig(march_step=0.25, shadow_bias=0.0)
    traced = light_visible(material, xy, wi, cfg).numpy()
    horizon = np.degrees(hm[iy, ix, ia])
    above = elev > horizon
    clear = np.abs(elev - horizon) > 1.0
    assert 0.1 < traced.mean() < 0.95  # both lit and shadowed lights are tested
    assert (above == traced)[clear].mean() > 0.995, (above != traced)[clear].sum()


def test_the_horizon_variant_feeds_two_visibilities_to_its_decoder() -> None:
    cfg = ModelConfig(backend="torch", latent_channels=16, decoder_width=64, horizon_azimuths=8)
    model = NeuMIP(cfg, 16)
    assert cfg.decoder_latent_width == 18 and model.decoder.mlp.n_in == 18 + 4
    feats = HorizonFeatures(16, 8)
    wi = torch.nn.functional.normalize(torch.tensor([[0.3, 0.1, 0.9], [0.9, 0.0, 0.2]]), dim=1)
    v = feats(torch.rand(2, 2), torch.zeros(2), wi, wi)
    # At the start every horizon is 10.7 deg (tau 0.1 rad): a light at 64 deg elevation is lit,
    # one at 11.5 deg about half.
    expect = torch.sigmoid((torch.asin(wi[:, 2]) - math.radians(90 / (1 + math.exp(2.0)))) / 0.1)
    torch.testing.assert_close(v, torch.stack([expect, expect], 1))
    out = model(torch.rand(5, 2), wi[[0, 1, 0, 1, 0]], wi[[1, 0, 1, 0, 1]], torch.rand(5) * 3)
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="horizon_azimuths"):
        ModelConfig(horizon_azimuths=1)
