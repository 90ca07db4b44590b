"""Direction sets, procedural materials and user materials from maps."""

from __future__ import annotations

import numpy as np
import pytest

from btf_data.directions import DIRECTION_SETS, direction_set, split_pairs
from btf_data.errors import MaterialMapError
from btf_data.generate import MaterialConfig, material_maps
from btf_data.material_maps import MapsConfig, maps_material, srgb_to_linear
from btf_data.procedural import MATERIALS, procedural_maps


def test_direction_sets_are_unit_above_horizon_and_ubo2014_has_151():
    sizes = {name: len(direction_set(name)) for name in DIRECTION_SETS}
    assert sizes == {"tiny": 5, "small": 19, "medium": 25, "dense": 49, "ubo2014": 151}
    for name in DIRECTION_SETS:
        d = direction_set(name)
        np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
        assert (d[:, 2] > 0.25).all()
    with pytest.raises(ValueError, match="unknown direction set"):
        direction_set("bogus")


def test_split_is_reproducible_and_keeps_both_sides():
    a, b = split_pairs(19, 19, 0.1, 3), split_pairs(19, 19, 0.1, 3)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == round(0.1 * 361)
    assert split_pairs(1, 2, 0.01, 0).sum() == 1  # at least one held-out pair
    assert split_pairs(3, 3, 0.0, 0).sum() == 0


@pytest.mark.parametrize("name", sorted(MATERIALS))
def test_procedural_materials_are_valid_and_tile(name):
    maps = procedural_maps(name, 64)
    assert maps.displaced == MATERIALS[name][1]
    assert maps.height.max() == 0.0
    # Tileable: the jump across the tile border is of the size of the jumps inside (a pattern
    # that does not tile jumps by many times that).
    src = maps.height if maps.displaced else maps.normal[..., 0]
    inner = max(np.abs(np.diff(src, axis=1)).max(), 1e-9)
    seam = np.abs(src[:, 0] - src[:, -1]).max()
    assert seam <= 1.5 * inner + 1e-6
    # The same material at twice the resolution has the same relief in uv units.
    big = procedural_maps(name, 128)
    if maps.displaced:
        assert abs(big.height.min() / 128 - maps.height.min() / 64) < 0.1 * abs(maps.height.min() / 64)


def test_families_have_at_least_three_members_each():
    displaced = [n for n, (_, d) in MATERIALS.items() if d]
    flat = [n for n, (_, d) in MATERIALS.items() if not d]
    assert len(displaced) >= 3 and len(flat) >= 3 and len(MATERIALS) >= 6


def test_user_maps_from_png_exr_and_npy(tmp_path):
    import OpenEXR
    from PIL import Image

    r = 16
    h8 = (np.tile(np.linspace(0, 255, r), (r, 1))).astype(np.uint8)
    Image.fromarray(h8).save(tmp_path / "h.png")
    h16 = (np.tile(np.linspace(0, 65535, r), (r, 1))).astype(np.uint16)
    Image.fromarray(h16).save(tmp_path / "h16.png")
    alb = np.full((r, r, 3), 128, np.uint8)
    Image.fromarray(alb).save(tmp_path / "a.png")
    np.save(tmp_path / "rough.npy", np.full((r, r), 0.5))
    exr = np.full((r, r, 3), 0.25, np.float32)
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"RGB": exr}) as f:
        f.write(str(tmp_path / "a.exr"))
    cfg = MapsConfig(height=str(tmp_path / "h.png"), albedo=str(tmp_path / "a.png"),
                     roughness=str(tmp_path / "rough.npy"), height_scale=3.0)
    maps = maps_material(cfg, r)
    np.testing.assert_allclose(maps.albedo, srgb_to_linear(np.array(128 / 255)), rtol=1e-6)
    np.testing.assert_allclose(maps.roughness, 0.25, rtol=1e-6)  # alpha = roughness^2
    assert np.ptp(maps.height) == pytest.approx(3.0, rel=1e-6)
    maps16 = maps_material(MapsConfig(height=str(tmp_path / "h16.png"), height_scale=3.0), r)
    np.testing.assert_allclose(maps16.height, maps.height, atol=1e-6)
    linear = maps_material(MapsConfig(albedo=str(tmp_path / "a.exr")), r)
    np.testing.assert_allclose(linear.albedo, 0.25)  # EXR albedo is linear
    # Through the material config, resampled to another resolution.
    m = material_maps(MaterialConfig(name="maps", maps=cfg), 8)
    assert m.height.shape == (8, 8)


def test_normal_map_conventions(tmp_path):
    from PIL import Image

    r = 8
    n = np.zeros((r, r, 3))
    n[..., 1] = 0.6
    n[..., 2] = 0.8  # green up in the image
    Image.fromarray(np.round((n + 1) / 2 * 255).astype(np.uint8)).save(tmp_path / "n.png")
    gl = maps_material(MapsConfig(normal=str(tmp_path / "n.png")), r)
    dx = maps_material(MapsConfig(normal=str(tmp_path / "n.png"), normal_convention="directx"), r)
    assert gl.normal[0, 0, 1] == pytest.approx(-0.6, abs=0.01)  # image up is -v here
    assert dx.normal[0, 0, 1] == pytest.approx(0.6, abs=0.01)


def test_bad_user_maps_name_the_file(tmp_path):
    with pytest.raises(MaterialMapError, match="no such file"):
        maps_material(MapsConfig(height=str(tmp_path / "nope.png")), 8)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(MaterialMapError, match=r"bad\.png: cannot read map"):
        maps_material(MapsConfig(height=str(tmp_path / "bad.png")), 8)
    np.save(tmp_path / "nan.npy", np.full((4, 4), np.nan))
    with pytest.raises(MaterialMapError, match="NaN"):
        maps_material(MapsConfig(height=str(tmp_path / "nan.npy")), 8)
    with pytest.raises(ValueError, match="unknown material"):
        material_maps(MaterialConfig(name="velvet"), 8)
