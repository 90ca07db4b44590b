"""SVBRDF mipmapping baselines: closed forms, the shared reference, MIPNet, the fit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from btf_data.brdf import tensor_from_sqrt, tensor_sqrt
from btf_data.btf_file import BTFFile
from btf_data.generate import GenerateConfig, MaterialConfig, generate
from btf_data.procedural import procedural_maps
from btf_data.svbrdf import SVBRDFMaps
from neumip.evaluate import evaluate_query
from plumbing.tonemap import tonemap_torch
from renderer.baselines import METHODS, BaselineConfig, FitConfig, SVBRDFPyramidMaterial, build_pyramid
from renderer.baselines.mipnet import (
    SHIPPED_CHECKPOINT,
    MIPNet,
    MIPNetArch,
    decode,
    encode,
    load_mipnet,
)
from renderer.baselines.mipnet_train import MIPNetTrainConfig, draw_batch, level_losses
from renderer.baselines.pyramid import clamp_covariance, from_moments, level0_fields, to_moments
from renderer.baselines.shading import reference_levels, sample_directions, shade_grid
from renderer.baselines.toksvig import toksvig_alpha


def flat_maps(r: int = 16, alpha: float = 0.3) -> SVBRDFMaps:
    rng = np.random.default_rng(0)
    return SVBRDFMaps(
        albedo=rng.uniform(0.2, 0.8, (r, r, 3)).astype(np.float32) * 0 + 0.5,
        height=np.zeros((r, r), np.float32),
        normal=np.broadcast_to(np.array([0, 0, 1], np.float32), (r, r, 3)).copy(),
        roughness=np.full((r, r), alpha, np.float32),
        metallic=np.zeros((r, r), np.float32),
        specular=np.full((r, r), 0.04, np.float32),
    )


def checkerboard_maps(t: float, s: float, alpha: float, r: int = 8) -> SVBRDFMaps:
    """Two normals with slopes B = (t, s) and -(t, s) in a checkerboard."""
    maps = flat_maps(r, alpha)
    n1 = np.array([t, s, 1.0]) / math.sqrt(1 + t * t + s * s)
    n2 = n1 * np.array([-1, -1, 1])
    i, j = np.meshgrid(np.arange(r), np.arange(r), indexing="ij")
    maps.normal = np.where(((i + j) % 2 == 0)[..., None], n1, n2).astype(np.float32)
    return maps


def directions(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return sample_directions(n, 0.25, g), sample_directions(n, 0.25, g)


def level_psnr(pyramid, maps: SVBRDFMaps, levels: range, seed: int = 99) -> list[float]:
    """PSNR of tone-mapped shading per level against the reference, on 32 random pairs."""
    wi, wo = directions(32, seed)
    lv0 = {k: torch.as_tensor(v) for k, v in level0_fields(maps).items()}
    refs = reference_levels(lv0, wi, wo, max(levels) + 1)
    out = []
    for k in levels:
        pred = shade_grid(pyramid.level(k), wi, wo)
        mse = ((tonemap_torch(pred) - tonemap_torch(refs[k])) ** 2).mean().item()
        out.append(10 * math.log10(1 / mse))
    return out


@pytest.fixture(scope="module")
def tiny_mipnet(tmp_path_factory) -> Path:
    from renderer.baselines.mipnet import save_mipnet

    path = tmp_path_factory.mktemp("mipnet") / "tiny.safetensors"
    return save_mipnet(path, MIPNet(MIPNetArch(8, 2, 8, 2)), {})


def test_flat_constant_material_every_method_equals_naive_and_reference(tiny_mipnet):
    """A constant material's filtered appearance is itself, so every method's every level holds
    the level-0 parameters (normal +z, tensor (alpha^2, alpha^2, 0), albedo 0.5) and shades as the
    box average of level-0 shading, to float32 round-off: fit too (its gradients vanish there and
    Adam's eps keeps round-off gradients from moving it) and a zero-residual MIPNet (the clamped
    box average). The shipped network is not held to this (its learned residuals move a constant
    material by ~5e-4 per level, far above what fp16 storage of its weights explains)."""
    maps = flat_maps()
    cfg = BaselineConfig(mipnet_checkpoint=str(tiny_mipnet), fit=FitConfig(steps=5, progress=False))
    n_levels = build_pyramid("naive", maps).n_levels
    wi, wo = directions(8, 1)
    lv0 = {k: torch.as_tensor(v) for k, v in level0_fields(maps).items()}
    refs = reference_levels(lv0, wi, wo, n_levels)
    for method in METHODS:
        p = build_pyramid(method, maps, cfg)
        assert p.n_levels == n_levels == 5, method
        for k in range(p.n_levels):
            shape = p.normal[k].shape
            msg = f"{method} level {k}"
            np.testing.assert_allclose(p.normal[k], np.broadcast_to([0.0, 0.0, 1.0], shape), atol=1e-6,
                                       err_msg=msg)
            np.testing.assert_allclose(p.tensor[k], np.broadcast_to([0.09, 0.09, 0.0], shape), rtol=1e-6,
                                       atol=1e-8, err_msg=msg)
            np.testing.assert_allclose(p.albedo[k], 0.5, atol=1e-7, err_msg=msg)
            torch.testing.assert_close(shade_grid(p.level(k), wi, wo), refs[k], rtol=1e-5, atol=1e-7, msg=msg)


def test_pyramid_material_reproduces_a_normal_mapped_planes_btf_and_its_box_pyramid(tmp_path):
    path = tmp_path / "bumps_flat.h5"
    generate(GenerateConfig(material=MaterialConfig(name="bumps_flat"), resolution=16, directions="tiny",
                            out=str(path), progress=False, dtype="float32"))  # default render config
    with BTFFile(path) as btf:
        maps = btf.svbrdf()
        material = SVBRDFPyramidMaterial(build_pyramid("naive", maps))
        level0 = evaluate_query(material.eval, btf, levels=1, subset="all")[0]
        assert level0.mse_linear < 1e-12  # level 0 is the file's level 0 (float32 round-off)
        lv0 = {k: torch.as_tensor(v) for k, v in level0_fields(maps).items()}
        pairs = btf.pairs("all")
        wi = torch.as_tensor(btf.wi_dirs[pairs[:, 1]], dtype=torch.float32)
        wo = torch.as_tensor(btf.wo_dirs[pairs[:, 0]], dtype=torch.float32)
        refs = reference_levels(lv0, wi, wo, btf.n_levels)
        for k in range(btf.n_levels):
            stored = np.stack([btf.image(int(a), int(b), k) for a, b in pairs])
            np.testing.assert_allclose(refs[k].numpy(), stored, rtol=1e-4, atol=1e-6, err_msg=f"level {k}")


def test_pyramid_material_returns_stored_levels_at_texel_centres_and_integer_lod():
    maps = procedural_maps("leather", 16)
    p = build_pyramid("lean", maps)
    material = SVBRDFPyramidMaterial(p)
    wi, wo = directions(3, 5)
    for k in (1, 2):
        r = 16 >> k
        i, j = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
        uv = torch.stack([(j.flatten() + 0.5) / r, (i.flatten() + 0.5) / r], 1).float()
        expect = shade_grid(p.level(k), wi, wo)
        for d in range(3):
            got = material.eval(uv, wi[d].expand(r * r, 3), wo[d].expand(r * r, 3),
                                torch.full((r * r,), float(k)))
            torch.testing.assert_close(got.reshape(r, r, 3), expect[d], rtol=2e-4, atol=1e-6)


def test_moment_interpolation_widens_the_lobe_and_stays_positive_definite():
    n = torch.tensor([[0.6, 0.0, 0.8], [-0.6, 0.0, 0.8]])
    t = torch.tensor([[0.01, 0.01, 0.0]] * 2)
    normal, tensor = from_moments(to_moments(n, t).mean(0))
    torch.testing.assert_close(normal, torch.tensor([0.0, 0.0, 1.0]))
    # B = (+-0.75, 0): variance 0.5625 on x, so the tensor gains 2 * 0.5625 along x only.
    torch.testing.assert_close(tensor, torch.tensor([0.01 + 1.125, 0.01, 0.0]), rtol=1e-5, atol=1e-6)
    cov = clamp_covariance(torch.tensor([[1.0, -0.5, 0.2]]), 1e-3)
    a, b, c = cov[0]
    assert a * b - c * c > 0 and b > 0


def test_lean_checkerboard_level1_covariance_matches_closed_form():
    t, s, alpha = 0.4, -0.25, 0.2
    p = build_pyramid("lean", checkerboard_maps(t, s, alpha))
    # Mean slope 0; slope covariance [[t^2, ts], [ts, s^2]] + alpha^2 / 2 I; GGX tensor = 2 cov.
    expect = np.array([2 * t * t + alpha**2, 2 * s * s + alpha**2, 2 * t * s], np.float32)
    np.testing.assert_allclose(p.tensor[1], np.broadcast_to(expect, p.tensor[1].shape), rtol=1e-5)
    np.testing.assert_allclose(p.normal[1][..., 2], 1.0, atol=1e-6)
    np.testing.assert_allclose(p.tensor[3], p.tensor[1][:1, :1], rtol=1e-5)  # the same mix at every level


def test_toksvig_formula_and_pyramid():
    """Toksvig 2005, worked by hand: unit normals that spread average to a vector of length
    r = |N_a| < 1, and the Toksvig factor f_t = r / (r + s (1 - r)) turns a Phong exponent s into
    s' = f_t s. A GGX lobe of width alpha is the Phong lobe of exponent s = 2 / alpha^2 (the
    Beckmann moment match), so the widened width is alpha' = sqrt(2 / s')."""

    def by_hand(alpha: float, r: float) -> float:
        s = 2.0 / alpha**2
        return math.sqrt(2.0 / (s * r / (r + s * (1.0 - r))))

    alpha = torch.tensor([0.1, 0.3])
    torch.testing.assert_close(toksvig_alpha(alpha, torch.ones(2)), alpha)  # no spread: no widening
    # Two normals tilted by +-theta in a checkerboard, cos theta = 0.8 (slope 0.75): their mean is
    # (0, 0, cos theta), r = 0.8 at every coarser level. alpha 0.2: s = 50, f_t = 0.8 / 10.8,
    # s' = 100 / 27, alpha'^2 = 0.54.
    theta = math.acos(0.8)
    n = np.array([[math.sin(theta), 0.0, math.cos(theta)], [-math.sin(theta), 0.0, math.cos(theta)]])
    r = float(np.linalg.norm(n.mean(0)))
    assert by_hand(0.2, r) ** 2 == pytest.approx(0.54, rel=1e-12)
    widened = toksvig_alpha(torch.tensor([0.2]), torch.tensor([r]))
    torch.testing.assert_close(widened**2, torch.tensor([0.54]))
    maps = checkerboard_maps(math.tan(theta), 0.0, 0.2)
    p = build_pyramid("toksvig", maps)
    for k in range(1, p.n_levels):  # the mean is over the whole block of level-0 normals
        np.testing.assert_allclose(p.tensor[k], np.broadcast_to([0.54, 0.54, 0.0], p.tensor[k].shape),
                                   rtol=1e-5, atol=1e-7, err_msg=f"level {k}")
    # Four normals tilted by 60 deg towards +x, +y, -x, -y in each 2 x 2 block: r = cos 60 = 0.5.
    # alpha 0.3: s = 200 / 9, f_t = 0.5 / (0.5 + 100 / 9), alpha'^2 = 2.09.
    tilt = math.radians(60.0)
    four = flat_maps(8, 0.3)
    i, j = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    phi = (np.pi / 2) * (2 * (i % 2) + (j % 2))
    four.normal = np.stack([np.sin(tilt) * np.cos(phi), np.sin(tilt) * np.sin(phi),
                            np.full_like(phi, np.cos(tilt))], -1).astype(np.float32)
    assert by_hand(0.3, 0.5) ** 2 == pytest.approx(2.09, rel=1e-12)
    p4 = build_pyramid("toksvig", four)
    for k in range(1, p4.n_levels):
        np.testing.assert_allclose(p4.tensor[k], np.broadcast_to([2.09, 2.09, 0.0], p4.tensor[k].shape),
                                   rtol=1e-5, atol=1e-6, err_msg=f"level {k}")
    # Shaded: the wider lobe is nearer the box average of level-0 shading than naive's.
    naive = build_pyramid("naive", maps)
    wi, wo = directions(64, 7)
    lv0 = {key: torch.as_tensor(v) for key, v in level0_fields(maps).items()}
    refs = reference_levels(lv0, wi, wo, 3)
    for k in (1, 2):
        assert (p.tensor[k][..., 0] > naive.tensor[k][..., 0]).all()
        err_t = (shade_grid(p.level(k), wi, wo) - refs[k]).abs().mean().item()
        err_n = (shade_grid(naive.level(k), wi, wo) - refs[k]).abs().mean().item()
        assert err_t < 0.95 * err_n, (k, err_t, err_n)


def test_naive_and_gaussian_average_without_widening():
    p = build_pyramid("naive", checkerboard_maps(0.5, 0.0, 0.2))
    np.testing.assert_allclose(p.tensor[1], np.broadcast_to([0.04, 0.04, 0.0], p.tensor[1].shape), rtol=1e-5)
    g = build_pyramid("gaussian", checkerboard_maps(0.5, 0.0, 0.2))
    np.testing.assert_allclose(g.normal[2][..., 2], 1.0, atol=1e-4)
    np.testing.assert_allclose(g.tensor[2][..., 0], 0.04, rtol=1e-4)


def test_mipnet_shapes_zero_residuals_and_clamps():
    model = MIPNet(MIPNetArch(8, 2, 8, 3))  # the output layers start at zero
    maps = procedural_maps("leather", 32)
    lv0 = level0_fields(maps)
    x0 = encode(torch.as_tensor(lv0["normal"]), torch.as_tensor(lv0["tensor"]), torch.zeros(32, 32))
    out = model(x0, 6)
    assert [tuple(x.shape) for x in out] == [(1, 6, 32 >> k, 32 >> k) for k in range(6)]
    for k in range(1, 6):  # zero residuals: the clamped 2x2 box average of the previous level
        torch.testing.assert_close(out[k], model.clamp(torch.nn.functional.avg_pool2d(out[k - 1], 2)))
    garbage = torch.randn(4, 6, 8, 8) * 3
    normal, tensor = decode(model.clamp(garbage))
    torch.testing.assert_close(normal.norm(dim=-1), torch.ones(4, 8, 8))
    assert (normal[..., 2] > 0).all()
    a, b, c = tensor.unbind(-1)
    assert (a > 0).all() and (a * b - c * c > 0).all()
    t = torch.tensor([[0.3, 0.1, 0.05]])
    torch.testing.assert_close(tensor_from_sqrt(tensor_sqrt(t)), t)


def test_mipnet_training_steps_lower_the_loss():
    torch.manual_seed(0)
    cfg = MIPNetTrainConfig(batch_size=4, crop=16, pairs=8)
    data = torch.stack([torch.from_numpy(np.concatenate([
        m.normal, m.roughness[..., None], m.albedo, m.metallic[..., None], m.specular[..., None],
        np.zeros_like(m.roughness)[..., None]], -1).astype(np.float16))
        for m in (procedural_maps("leather", 32), procedural_maps("bumps_flat", 32))])
    batch = draw_batch(data, cfg, torch.Generator().manual_seed(0))
    model = MIPNet(MIPNetArch(32, 2, 32, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = level_losses(model, batch).mean().item()
    for _ in range(30):
        loss = level_losses(model, batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert level_losses(model, batch).mean().item() < 0.9 * first


def test_shipped_mipnet_loads_and_beats_naive_on_a_held_out_material():
    model, meta = load_mipnet()  # the repository ships it: a missing file fails here
    assert SHIPPED_CHECKPOINT.stat().st_size < 25 * 2**20
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert "leather" in meta["data"]["excluded_patterns"]  # the pattern was never drawn in training
    maps = procedural_maps("leather", 64)  # a named project material: not in the training set
    cfg = BaselineConfig()
    mip = level_psnr(build_pyramid("mipnet", maps, cfg), maps, range(2, 6))
    naive = level_psnr(build_pyramid("naive", maps), maps, range(2, 6))
    assert all(m > n for m, n in zip(mip, naive, strict=True)), (mip, naive)


def test_fit_lowers_the_error_below_lean_on_a_bumpy_normal_map():
    maps = procedural_maps("bumps_flat", 32)
    fit = build_pyramid("fit", maps, BaselineConfig(fit=FitConfig(steps=60, progress=False)))
    lean = build_pyramid("lean", maps)
    f, ln = level_psnr(fit, maps, range(1, 5)), level_psnr(lean, maps, range(1, 5))
    assert np.mean(f) > np.mean(ln) + 1.0 and all(a > b for a, b in zip(f, ln, strict=True)), (f, ln)


def test_bad_method_and_bad_pyramid_are_refused():
    with pytest.raises(ValueError, match="unknown SVBRDF method 'velvet'"):
        build_pyramid("velvet", flat_maps())
    p = build_pyramid("naive", flat_maps())
    p.tensor[1] = p.tensor[1] * -1
    with pytest.raises(ValueError, match=r"tensor\[1\] is not positive definite"):
        p.validate()
