"""Directions beyond the training grid (neumip/grazing.py): the two rules in closed form, the
identity inside the grid (training and held-out scores cannot move), and the checkpoint's limits
as the trainer records them."""

from __future__ import annotations

import math

import numpy as np
import torch

from btf_data.btf_file import BTFFile
from neumip.config import ModelConfig
from neumip.grazing import BEND_COS, GrazingLimits, bend_above, limit_elevation
from neumip.model import NeuMIP
from tests.test_export import random_neumip


def _dir(theta_deg: float, phi_deg: float) -> list[float]:
    t, p = math.radians(theta_deg), math.radians(phi_deg)
    return [math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t)]


def test_limit_elevation_moves_only_what_lies_below_the_limit_along_its_azimuth():
    c = math.cos(math.radians(70.0))
    w = torch.tensor([_dir(30, 10), _dir(70, 200), _dir(80, 45), _dir(89.9, -120)])
    w[1, 2] = c  # exactly at the limit (as the grid's own lowest directions are): not moved
    got = limit_elevation(w, c)
    assert torch.equal(got[:2], w[:2])
    want = torch.tensor([_dir(70, 45), _dir(70, -120)])
    torch.testing.assert_close(got[2:], want, atol=1e-6, rtol=0)


def test_limit_elevation_of_a_batch_above_the_limit_is_the_batch_and_passes_gradients():
    c = math.cos(math.radians(70.0))
    w = torch.tensor([_dir(30, 10), _dir(70, 200), _dir(69, 45)], requires_grad=True)
    with torch.no_grad():
        w[1, 2] = c
    got = limit_elevation(w, c)
    assert torch.equal(got, w)
    (got * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(w.grad, torch.tensor([[1.0, 2.0, 3.0]] * 3))
    below = w.detach().clone()
    below[2] = torch.tensor(_dir(80, 45))  # one row below: that row moves, as above
    torch.testing.assert_close(limit_elevation(below, c)[2], torch.tensor(_dir(70, 45)), atol=1e-6, rtol=0)


def test_bend_above_gives_the_stated_cosine_and_leaves_the_rest():
    n = torch.tensor([[0.0, 0.0, 1.0]] * 3)
    w = torch.tensor([_dir(89.5, 0), _dir(89.5, 0), _dir(60, 0)])
    beyond = torch.tensor([True, False, True])
    got = bend_above(w, n, beyond)
    # normalize(w + (eps - cos) n) for n = z: (sin, 0, eps) / |(sin, 0, eps)|
    s = math.sin(math.radians(89.5))
    torch.testing.assert_close(got[0], torch.tensor([s, 0.0, BEND_COS]) / math.hypot(s, BEND_COS))
    assert torch.equal(got[1:], w[1:])  # not beyond; above the normal's horizon already
    tilted = torch.nn.functional.normalize(torch.tensor([[0.0, 0.3, 1.0]]), dim=1)
    view = torch.tensor([_dir(85, -90)])  # leans away from the tilted normal: below its horizon
    assert float((view * tilted).sum()) < 0
    bent = bend_above(view, tilted, torch.tensor([True]))
    assert float((bent * tilted).sum()) > 0 and float(bent[0, 2]) > 0


def test_inside_the_grid_the_model_is_unchanged_bit_for_bit_and_beyond_it_reads_the_limit():
    """The same weights with and without limits: equal outputs for directions inside the grid (so
    training and held-out scores cannot move); beyond it the plain model (no lobe) answers exactly
    what it answers at the direction moved up to the limit."""
    c = math.cos(math.radians(60.0))
    cfg = ModelConfig(backend="torch", latent_channels=16, decoder_width=64)
    limited = random_neumip(cfg, resolution=16, grazing=GrazingLimits(c, c))
    free = random_neumip(cfg, resolution=16)
    g = torch.Generator().manual_seed(3)
    n = 512
    theta = torch.rand(n, generator=g) * 60.0
    phi = torch.rand(n, generator=g) * 360.0
    inside = torch.tensor([_dir(float(t), float(p)) for t, p in zip(theta, phi, strict=True)])
    uv, lod = torch.rand(n, 2, generator=g), torch.rand(n, generator=g) * 3
    with torch.no_grad():
        assert torch.equal(limited(uv, inside, inside.flip(0), lod), free(uv, inside, inside.flip(0), lod))
        far = torch.tensor([_dir(float(t), float(p)) for t, p in zip(theta * 0.45 + 60.5, phi, strict=True)])
        moved = limit_elevation(far, c)
        assert torch.equal(limited(uv, inside, far, lod), free(uv, inside, moved, lod))
        assert not torch.allclose(free(uv, inside, far, lod), free(uv, inside, moved, lod))


def test_the_hybrids_lobe_is_not_black_below_its_own_shading_horizon():
    """A lobe whose normal leans away from a view at 89 deg: without limits the lobe is black there
    (below its shading horizon), with them it is bent just above it and shaded."""
    c = math.cos(math.radians(70.0))
    cfg = ModelConfig(backend="torch", decoder="lobe_residual")
    model = random_neumip(cfg, resolution=16, grazing=GrazingLimits(c, c))
    n = 64
    raw = torch.zeros(n, 10)
    raw[:, 4] = 0.2  # normal (0, 0.2, 1) normalised: leans towards +y
    wi = torch.tensor([_dir(30, 90)] * n)
    wo = torch.tensor([_dir(89, -90)] * n)  # towards -y: below the lobe's shading horizon
    black = model.lobe.shade_raw(raw, wi, wo)
    assert torch.all(black == 0)
    beyond = (wi[:, 2] < c, wo[:, 2] < c)
    lit = model.lobe.shade_raw(raw, wi, wo, beyond)
    assert torch.all(lit > 0)


def test_the_trainer_records_the_grid_limits_and_an_old_checkpoint_has_none(tmp_path):
    from neumip.train import Trainer
    from tests.test_neumip_training import synthetic_btf, tiny_config

    data = synthetic_btf(tmp_path, "bumps")
    trainer = Trainer(tiny_config(data, tmp_path / "run", 2))
    path = trainer.fit()
    model = NeuMIP.load(path)
    with BTFFile(data) as btf:
        want = GrazingLimits(float(np.min(btf.wi_dirs[:, 2])), float(np.min(btf.wo_dirs[:, 2])))
    assert model.grazing == want
    assert NeuMIP(ModelConfig(backend="torch"), 16, {"name": "old"}).grazing is None
    assert GrazingLimits.from_metadata({"min_cos_wi": 0.3}) is None
