"""neumip-export: a material as the viewer's folder, and the folder read back into torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from neumip.config import ModelConfig
from neumip.grazing import GrazingLimits
from neumip.model import NeuMIP
from renderer.baselines.pyramid import from_moments
from renderer.export import (
    ExportError,
    export_material,
    load_export,
    quantise_levels,
    quantised_model,
    read_manifest,
)
from renderer.materials import ConstantMaterial, NeuMIPMaterial


def random_neumip(cfg: ModelConfig, resolution: int = 16, seed: int = 0, blur: float = 0.0,
                  grazing: GrazingLimits | None = None) -> NeuMIP:
    """A model with every part switched on and away from its initialisation (the offset's output
    layer is zero at initialisation: here it is not, so parallax is exercised); ``grazing``: the
    training grid's limits its metadata holds (neumip/grazing.py), None: none."""
    torch.manual_seed(seed)
    model = NeuMIP(cfg, resolution, {"name": "probe", **(grazing.metadata() if grazing else {})})
    with torch.no_grad():
        for t in model.pyramid.levels:
            t.normal_(0.0, 0.5)
        if model.offset is not None:
            model.offset.texture.normal_(0.0, 0.5)
            model.offset.mlp.reset_parameters()
        model.decoder.mlp.reset_parameters()  # the hybrid's output layer starts at zero too
        if model.lobe is not None:
            for t in model.lobe.levels:
                t.add_(torch.randn_like(t) * 0.3)
        if model.horizon is not None:
            for t in model.horizon.pyramid.levels:
                t.normal_(-1.0, 1.0)
        model.blur_sigma.fill_(blur)
    return model.eval()


def queries(n: int = 2048, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)

    def dirs() -> torch.Tensor:
        v = torch.randn(n, 3, generator=g)
        v[:, 2] = v[:, 2].abs() + 0.1
        return v / v.norm(dim=1, keepdim=True)

    return torch.rand(n, 2, generator=g) * 4 - 2, dirs(), dirs(), torch.rand(n, generator=g) * 5


PLUS = ModelConfig(backend="torch", latent_channels=16, decoder_width=64)
HYBRID_HORIZON = ModelConfig(backend="torch", latent_channels=16, decoder_width=64, decoder="lobe_residual",
                             horizon_azimuths=8)


@pytest.fixture
def checkpoint(tmp_path):
    model = random_neumip(PLUS, blur=1.5)  # a blur to bake: the export must read as the model reads
    return model, model.save(tmp_path / "m.safetensors")


@pytest.mark.parametrize("cfg", [PLUS, HYBRID_HORIZON], ids=["plus", "hybrid_horizon"])
def test_fp32_export_reloads_bit_identically(cfg, tmp_path):
    model = random_neumip(cfg, blur=1.5)  # a blur to bake: the export must read as the model reads
    ckpt = model.save(tmp_path / "m.safetensors")
    out = export_material(NeuMIPMaterial(ckpt, backend="torch"), tmp_path / "exp", "fp32")
    back = load_export(out)
    manifest = read_manifest(out)
    assert {k: v for k, v in manifest["model"].items()} == {
        k: v for k, v in json.loads(json.dumps(model.checkpoint_meta()["model"])).items() if k != "backend"}
    q = queries()
    assert torch.equal(back(*q), model(*q))  # blur baked in: the same numbers without it
    assert torch.equal(back.decoder.mlp.params, model.decoder.mlp.params)
    assert torch.equal(back.offset.mlp.params, model.offset.mlp.params)


def test_weights_reload_bit_identically_without_a_blur(tmp_path):
    model = random_neumip(ModelConfig(backend="torch", offset_blur_min=0.0))
    back = load_export(export_material(_material(model, tmp_path), tmp_path / "exp", "fp32"))
    for a, b in zip(back.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _material(model: NeuMIP, tmp_path) -> NeuMIPMaterial:
    return NeuMIPMaterial(model.save(tmp_path / "m.safetensors"), backend="torch")


@pytest.mark.parametrize("precision, tol", [("fp16", 2e-3), ("int8", 4e-3)])
def test_lower_precisions_round_as_the_format_says(checkpoint, tmp_path, precision, tol):
    model, ckpt = checkpoint
    out = export_material(NeuMIPMaterial(ckpt, backend="torch"), tmp_path / precision, precision)
    back = load_export(out)
    # the networks are float16 in both: within half's relative round-off of the checkpoint's
    assert torch.allclose(back.decoder.mlp.params, model.decoder.mlp.params, rtol=2**-11, atol=1e-7)
    latent = [t.detach() for t in model.pyramid.blurred_levels(float(model.blur_sigma))]
    flat = torch.cat([t.reshape(-1, t.shape[-1]) for t in latent])
    half_step = (flat.amax(0) - flat.amin(0)) / 255 / 2  # int8: per channel, over every level
    for got, want in zip(back.pyramid.levels, latent, strict=True):
        err = (got.detach() - want).abs()
        if precision == "fp16":
            assert (err <= 2**-11 * want.abs() + 2**-25).all()  # half of a subnormal step
        else:
            assert (err <= half_step * 1.0001 + 1e-7).all()
    q = queries()
    assert torch.equal(quantised_model(model, precision)(*q), back(*q))  # the scored model is the export
    assert (back(*q) - model(*q)).abs().max().item() < tol * max(1.0, model(*q).abs().max().item())


def test_int8_codes_are_bytes_with_scale_and_bias():
    x = [torch.tensor([[[0.0, -1.0], [1.0, 3.0]]]), torch.tensor([[[0.5, 1.0]]])]
    values, quant = quantise_levels(x, "int8")
    assert quant["bias"] == [0.0, -1.0] and quant["scale"] == [1.0, 4.0]
    assert torch.equal(quant["codes"][0], torch.tensor([[[0.0, 0.0], [255.0, 255.0]]]))
    assert torch.allclose(values[1], torch.tensor([[[128 / 255, -1 + 4 * 128 / 255]]]))


def test_svbrdf_export_holds_the_pyramid_as_moments(tmp_path):
    from btf_data.procedural import procedural_maps
    from renderer.baselines import SVBRDFPyramidMaterial, build_pyramid

    maps = procedural_maps("bumps", 16)
    material = SVBRDFPyramidMaterial(build_pyramid("lean", maps))
    out = export_material(material, tmp_path / "lean", "fp32")
    m = read_manifest(out)
    assert m["kind"] == "svbrdf" and m["method"] == "lean" and m["n_levels"] == material.n_levels
    tex = m["textures"]["svbrdf"]
    raw = np.frombuffer((out / tex["file"]).read_bytes(), "<f4")
    level2 = material.pyramid.level(2)
    h, w = tex["levels"][2]
    before = sum(a * b * 4 for a, b in tex["levels"][:2])
    group0 = torch.from_numpy(raw[before : before + h * w * 4].reshape(h, w, 4).copy())
    g1_start = sum(a * b * 4 for a, b in tex["levels"]) + before
    group1 = torch.from_numpy(raw[g1_start : g1_start + h * w * 4].reshape(h, w, 4).copy())
    normal, tensor = from_moments(torch.cat([group0, group1[..., :1]], dim=-1))
    assert torch.allclose(normal, level2["normal"], atol=1e-5)
    assert torch.allclose(tensor, level2["tensor"], rtol=1e-4, atol=1e-7)
    assert torch.allclose(group1[..., 1:4], level2["albedo"])


def test_refusals_name_what_is_refused(tmp_path, monkeypatch):
    import renderer.export

    monkeypatch.setattr(renderer.export, "VIEWER_DECODERS", ("yuv_log",))  # a decoder the shader lacks
    hybrid = NeuMIP(ModelConfig(backend="torch", decoder="lobe_residual"), 16)
    with pytest.raises(ExportError, match="lobe_residual"):
        export_material(_material(hybrid, tmp_path), tmp_path / "h", "fp16")
    assert not (tmp_path / "h").exists()  # nothing half-written under the name
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an export folder"):
        export_material(ConstantMaterial((0.1, 0.2, 0.3)), tmp_path / "notes", "fp16")
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="precision"):
        export_material(ConstantMaterial((0.1, 0.2, 0.3)), tmp_path / "c", "int4")


def test_a_damaged_folder_is_named(tmp_path):
    out = export_material(ConstantMaterial((0.1, 0.2, 0.3)), tmp_path / "c", "fp16")
    assert read_manifest(out)["rgb"] == pytest.approx([0.1, 0.2, 0.3])
    model = random_neumip(ModelConfig(backend="torch"))
    out = export_material(_material(model, tmp_path), tmp_path / "n", "fp16")
    whole = (out / "texture_latent.bin").read_bytes()
    (out / "texture_latent.bin").write_bytes(whole[:100])
    with pytest.raises(ExportError, match="texture_latent.bin: 100 bytes"):
        read_manifest(out)
    (out / "texture_latent.bin").write_bytes(whole)
    (out / "mlp_decoder.bin").unlink()
    with pytest.raises(ExportError, match="mlp_decoder.bin: missing"):
        read_manifest(out)


def test_command_line(tmp_path):
    model = random_neumip(ModelConfig(backend="torch"))
    ckpt = model.save(tmp_path / "m.safetensors")
    run = [sys.executable, "-m", "renderer.cli.export"]
    p = subprocess.run([*run, str(ckpt), f"out={tmp_path / 'e'}", "precision=int8"], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert f"neumip-view {tmp_path / 'e'}" in p.stdout
    assert read_manifest(tmp_path / "e")["precision"] == "int8"
    for args, message in (([str(ckpt)], "missing out="), ([str(ckpt), "out=x", "bits=8"], "'bits=8'"),
                          ([str(tmp_path / "none.safetensors"), "out=x"], "no such file")):
        p = subprocess.run([*run, *args], capture_output=True, text=True, cwd=tmp_path)
        assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_view_command_names_a_taken_port(tmp_path):
    import socket

    folder = export_material(ConstantMaterial((0.1, 0.2, 0.3)), tmp_path / "c", "fp16")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "renderer.cli.view", str(folder), "--no-browser", "--port",
                            str(port)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and f"127.0.0.1:{port}: cannot serve there" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_export_folder_gets_the_umask_mode_not_the_temporary_one(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        out = export_material(ConstantMaterial((0.1, 0.2, 0.3)), tmp_path / "c", "fp16")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o750  # mkdtemp's 0700 replaced before the rename
