"""NeuMIP's decoder component (neumip/decoder.py): its output head against a closed form typed
here, the registry, checkpoints of the layout before the component, and the structured check of
checkpoint metadata."""

from __future__ import annotations

import math

import pytest
import torch

from neumip.config import ModelConfig
from neumip.decoder import DECODERS, YUVLogDecoder, make_decoder
from neumip.model import NeuMIP, model_config_from_meta
from plumbing.tensor_files import CheckpointError, save_checkpoint


def _dirs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, 3, generator=g)
    v[:, 2] = v[:, 2].abs() + 0.2
    return v / v.norm(dim=1, keepdim=True)


def _pass_latent_through(dec: YUVLogDecoder) -> None:
    """Set the MLP by hand so that its output t (N, n_out) is latent[:, :n_out] for latents in
    (-5, 5): hidden units j < n_out hold relu(latent_j + 5), unit 6 the constant 1, the hidden
    layers are identities and the output layer subtracts the 5 again."""
    mlp = dec.mlp
    n_out, n_in = mlp.n_out, mlp.n_in
    with torch.no_grad():
        mats = mlp.matrices()
        for m in mats:
            m.zero_()
        first = mats[0]
        for j in range(n_out):
            first[j, j] = 1.0
            first[j, n_in] = 5.0  # a padded constant-1 input column: a bias
        first[6, n_in] = 1.0
        for m in mats[1:-1]:
            m.copy_(torch.eye(mlp.width))
        for j in range(n_out):
            mats[-1][j, j] = 1.0
            mats[-1][j, 6] = -5.0


def _closed_form(t: torch.Tensor, shadow_mask: bool) -> torch.Tensor:
    """The paper's head in float64: BT.601 YUV -> RGB of t[:, :3], expm1, times 0.1 + sigmoid(m)."""
    t = t.double()
    y, u, v = t[:, 0], t[:, 1], t[:, 2]
    rgb = torch.stack([y + 1.13983 * v, y - 0.39465 * u - 0.58060 * v, y + 2.03211 * u], dim=1).expm1()
    if shadow_mask:
        rgb = rgb * (0.1 + 1.0 / (1.0 + torch.exp(-t[:, 3:6])))
    return rgb


@pytest.mark.parametrize("shadow_mask", [True, False])
def test_yuv_log_head_matches_the_closed_form(shadow_mask):
    cfg = ModelConfig(backend="torch", shadow_mask=shadow_mask)
    dec = make_decoder(cfg, "torch")
    assert isinstance(dec, YUVLogDecoder) and dec.backend == "torch"
    assert dec.mlp.n_in == 7 + 2 + 2 and dec.mlp.n_out == (6 if shadow_mask else 3)
    _pass_latent_through(dec)
    n = 500
    latent = torch.rand(n, 7, generator=torch.Generator().manual_seed(0)) * 6 - 3
    wi, wo = _dirs(n, 1), _dirs(n, 2)
    want = _closed_form(latent[:, : dec.mlp.n_out], shadow_mask)
    with torch.no_grad():
        dec.train()
        got = dec(latent, wi, wo)
        assert got.dtype == torch.float32 and got.shape == (n, 3)
        assert (got < 0).any()  # training mode leaves negative outputs for the loss to see
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        dec.eval()
        torch.testing.assert_close(dec(latent, wi, wo).double(), want.clamp_min(0), rtol=1e-5, atol=1e-5)
    # the directions do enter the MLP: a first-layer weight on wo.x moves the output
    with torch.no_grad():
        dec.mlp.matrices()[0][0, 7 + 2] = 1.0
        assert not torch.equal(dec(latent, wi, wo), dec(latent, wi, wi))


def test_the_registry_refuses_unknown_decoders(tmp_path):
    assert set(DECODERS) == {"yuv_log", "lobe_residual"} and ModelConfig().decoder == "yuv_log"
    with pytest.raises(ValueError, match=r"model\.decoder='fancy': must be one of yuv_log, lobe_residual"):
        ModelConfig(backend="torch", decoder="fancy")  # refused with the config, before any work
    cfg = ModelConfig(backend="torch")
    cfg.decoder = "fancy"  # past the config's own check
    with pytest.raises(ValueError, match=r"model\.decoder='fancy': must be one of yuv_log, lobe_residual"):
        make_decoder(cfg, "torch")
    # a checkpoint naming a decoder this version lacks is refused naming the file
    model = NeuMIP(ModelConfig(backend="torch"), 16)
    meta = {**model.checkpoint_meta(), "model": {**model.checkpoint_meta()["model"], "decoder": "fancy"}}
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path / "f.safetensors", tensors, meta)
    with pytest.raises(CheckpointError, match=r"f\.safetensors: .*model\.decoder='fancy'"):
        NeuMIP.load(tmp_path / "f.safetensors")


def test_checkpoints_of_the_layout_before_the_decoder_component_load(tmp_path):
    torch.manual_seed(0)
    model = NeuMIP(ModelConfig(backend="torch"), 16).eval()
    with torch.no_grad():  # make the offset do something, so every part counts
        model.offset.texture.normal_(0, 0.3)
        model.offset.mlp.params.normal_(0, 0.3)
    n = 300
    uv, wi, wo, lod = torch.rand(n, 2), _dirs(n, 1), _dirs(n, 2), torch.rand(n) * 3
    want = model(uv, wi, wo, lod)
    assert sorted(k for k in model.state_dict() if "decoder" in k or "yuv" in k) == ["decoder.mlp.params"]
    # The old layout, by hand: the decoder MLP at decoder.params, the YUV matrix a model buffer.
    old = {k: v for k, v in model.state_dict().items() if k != "decoder.mlp.params"}
    old["decoder.params"] = model.decoder.mlp.params.detach().clone()
    old["yuv_to_rgb"] = torch.tensor([[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]])
    meta = model.checkpoint_meta()
    meta["model"] = {k: v for k, v in meta["model"].items() if k != "decoder"}
    path = save_checkpoint(tmp_path / "old.safetensors", {f"model.{k}": v for k, v in old.items()}, meta)
    loaded = NeuMIP.load(path, backend="torch")
    assert loaded.cfg == model.cfg
    assert torch.equal(loaded(uv, wi, wo, lod), want)
    # and a new checkpoint round-trips with the new keys
    loaded.save(tmp_path / "new.safetensors")
    assert torch.equal(NeuMIP.load(tmp_path / "new.safetensors", backend="torch")(uv, wi, wo, lod), want)
    # an old file whose matrix is not the constant would decode differently: refused
    old["yuv_to_rgb"] = torch.eye(3)
    path = save_checkpoint(tmp_path / "odd.safetensors", {f"model.{k}": v for k, v in old.items()}, meta)
    with pytest.raises(CheckpointError, match="(?s)weights do not fit.*yuv_to_rgb holds"):
        NeuMIP.load(path, backend="torch")


@pytest.mark.parametrize("key, value", [
    ("shadow_mask", "yes"),        # the schema would read it as true
    ("shadow_mask", 1),
    ("latent_channels", True),
    ("latent_channels", 7.5),
    ("depth_scale", "0.1"),
    ("direction_encoding", 5),     # the schema would read it as "5"
    ("decoder", None),
    ("levels", [3]),
])
def test_metadata_of_the_wrong_type_is_refused_naming_the_field(key, value):
    meta = {"model": {"latent_channels": 7, key: value}, "resolution": 16}
    msg = rf"^ckpt: metadata field 'model\.{key}' = .* has the wrong type"
    with pytest.raises(CheckpointError, match=msg):
        model_config_from_meta("ckpt", meta, "torch")


def test_metadata_is_read_through_the_structured_schema():
    meta = {"model": {"depth_scale": 1, "levels": None, "decoder": "yuv_log", "backend": "tcnn"},
            "resolution": 16}
    cfg = model_config_from_meta("ckpt", meta, "torch")
    assert isinstance(cfg, ModelConfig) and cfg.backend == "torch" and cfg.levels is None
    assert cfg.depth_scale == 1.0 and isinstance(cfg.depth_scale, float)
    assert cfg.shadow_mask is False  # ModelConfig.LEGACY: the checkpoint predates the field
    with pytest.raises(CheckpointError, match=r"metadata field 'model\.colour' is unknown"):
        model_config_from_meta("ckpt", {"model": {"colour": 1}, "resolution": 16}, "torch")
    with pytest.raises(CheckpointError, match=r"metadata field model\.latent_channels=0"):
        model_config_from_meta("ckpt", {"model": {"latent_channels": 0}, "resolution": 16}, "torch")
    assert math.isclose(model_config_from_meta("ckpt", {"model": {}, "resolution": 16}, "torch").depth_scale,
                        ModelConfig().depth_scale)
