"""The fused native query (neumip/query_kernel.c) against the model's stages run one at a time
(the lookups', the MLP's and the head's kernels with torch between them), a second composition
of the same pieces: bit for bit, for the architectures it serves, blurred latents, lods past both
ends, views below the offset's min_cos, partial blocks and thread counts; None for what it does
not serve; and its caches following the parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neumip import query_native
from neumip.config import ModelConfig
from neumip.model import NeuMIP
from tests.conftest import require_cpu_features

QUERY_KERNEL = Path(query_native.__file__).with_name("query_kernel.c")


@pytest.fixture(autouse=True)
def kernel():
    require_cpu_features(QUERY_KERNEL, query_native._library() is not None, "AVX512-BF16",
                         "the query's stages one by one")


def random_model(seed: int, **cfg) -> NeuMIP:
    """An eval-mode model whose every parameter is random (the offset network's zero-initialised
    output layer too, so that the offset moves uv)."""
    torch.manual_seed(seed)
    model = NeuMIP(ModelConfig(backend="torch", **cfg), 32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 1 else 0.5))
    return model


def queries(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(n, 2, generator=g) * 3 - 1
    wi = torch.nn.functional.normalize(torch.randn(n, 3, generator=g) + torch.tensor([0, 0, 1.5]), dim=1)
    wo = torch.nn.functional.normalize(torch.randn(n, 3, generator=g) + torch.tensor([0, 0, 0.5]), dim=1)
    wo[:, 2] = wo[:, 2].abs()  # many below min_cos = 0.6: the offset's clamp
    lod = torch.rand(n, generator=g) * 8 - 1  # past both ends of the pyramid
    return uv, wi, wo, lod


def by_stages(model: NeuMIP, *q: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> torch.Tensor:
    with monkeypatch.context() as m:
        m.setattr(query_native, "fused_query", lambda *a, **k: None)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(*q, check=False)


def fused(model: NeuMIP, *q: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = query_native.fused_query(model, *q, float(model.blur_sigma))
    assert out is not None, "the fused query did not serve"
    return out


@pytest.mark.parametrize("cfg", [
    dict(latent_channels=16, decoder_width=64),       # model=plus
    dict(),                                           # the paper's (model=full)
    dict(use_offset=False),                           # the no-offset ablation
    dict(shadow_mask=False, decoder_width=48, latent_channels=5),
])
def test_the_fused_query_is_the_stages_bit_for_bit(cfg, monkeypatch):
    model = random_model(3, **cfg)
    q = queries(1001, 4)  # not a multiple of the kernel's blocks
    want = by_stages(model, *q, monkeypatch=monkeypatch)
    got = fused(model, *q)
    assert torch.equal(got, want)
    assert float(want.std()) > 1e-3  # the numbers are not all alike (e.g. all clamped to 0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model(*q, check=False), want)  # the model takes it (one call, no chunks)


def test_blurred_latents_threads_and_parameter_changes(monkeypatch):
    model = random_model(5, latent_channels=16, decoder_width=64)
    model.blur_sigma.fill_(2.0)  # the latents and the offset texture read blurred
    q = queries(777, 6)
    want = by_stages(model, *q, monkeypatch=monkeypatch)
    assert torch.equal(fused(model, *q), want)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(fused(model, *q), want)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():  # in place: the packed latents and weights must follow
        model.pyramid.levels[0].mul_(-1.0)
        model.decoder.mlp.params.mul_(0.5)
        model.offset.texture.add_(0.5)
    moved = by_stages(model, *q, monkeypatch=monkeypatch)
    assert not torch.equal(moved, want) and torch.equal(fused(model, *q), moved)
    model.blur_sigma.fill_(0.0)
    assert torch.equal(fused(model, *q), by_stages(model, *q, monkeypatch=monkeypatch))


def test_what_it_does_not_serve_runs_the_stages():
    model = random_model(7)
    q = queries(50, 8)
    sigma = float(model.blur_sigma)
    with torch.no_grad():
        assert query_native.fused_query(model, *q, sigma) is None  # fp32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model.train()
            assert query_native.fused_query(model, *q, sigma) is None  # training mode: no clamp
            model.eval()
            assert query_native.fused_query(model, *q, sigma) is not None
            uv, wi, wo, lod = q
            assert query_native.fused_query(model, uv, wi[:-1], wo, lod, sigma) is None  # shapes disagree
            assert query_native.fused_query(model, uv, wi, wo, lod[:, None], sigma) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert query_native.fused_query(model, *q, sigma) is None  # autograd on
    for cfg in (dict(direction_encoding="sh3"), dict(horizon_azimuths=4), dict(decoder="lobe_residual"),
                dict(decoder_width=128)):
        assert not query_native.served(random_model(9, **cfg)), cfg
