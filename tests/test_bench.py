"""neumip-bench: the smallest quick suite end to end, failures recorded per cell, finished cells
reused, empty cells explained, and the speed bound on a known case."""

from __future__ import annotations

import json
import math
import time

import pytest

from renderer.bench.config import BenchConfig, SuiteConfig
from renderer.bench.report import README_BEGIN, README_END, cell_minutes
from renderer.bench.speed import QUERY_IO_FLOATS, bandwidth_bound_qps, bound_qps, mlp_flops
from renderer.bench.suite import run_bench
from tests.conftest import write_small_btf


def tiny_suite(**kw) -> SuiteConfig:
    base = dict(
        name="test",
        materials=["bumps"],
        resolution=16,
        directions="tiny",
        methods=["neumip", "naive", "lean"],
        train_overrides=["preset=debug", "threads=1"],
        render_width=40,
        render_height=30,
        reference_spp=2,
        speed_batch=4096,
        speed_train_steps=2,
        speed_frames=[[48, 32]],
    )
    base.update(kw)
    return SuiteConfig(**base)


def test_speed_bound_on_a_known_case():
    # tiny-cuda-nn layout of a 12 -> 32 x 3 -> 3 MLP: [32, 16], [32, 32], [32, 32], [16, 32]
    assert mlp_flops([(32, 16), (32, 32), (32, 32), (16, 32)]) == 2 * (512 + 1024 + 1024 + 512) == 6144
    assert bound_qps(6144, 61.44) == pytest.approx(10e6)
    assert bandwidth_bound_qps(48, 4.8) == pytest.approx(100e6)  # 48 bytes/query at 4.8 GB/s
    assert 4 * QUERY_IO_FLOATS == 48  # uv, wi, wo, lod in; rgb out


def test_smallest_quick_suite_end_to_end(tmp_path, monkeypatch):
    extra = tmp_path / "captured.h5"
    write_small_btf(extra)  # a "measured" file: no SVBRDF maps

    import renderer.bench.quality as quality

    real = quality.build_pyramid

    def lean_breaks(method, maps, cfg=None):
        if method == "lean":
            raise RuntimeError("injected failure")
        return real(method, maps, cfg)

    monkeypatch.setattr(quality, "build_pyramid", lean_breaks)
    cfg = BenchConfig(
        suite=tiny_suite(extra_files=[str(extra)]),
        out_root=str(tmp_path / "bench"),
        progress=False,
        threads=1,
        publish=True,
        docs_dir=str(tmp_path / "docs"),
        readme=str(tmp_path / "README.md"),
    )
    (tmp_path / "README.md").write_text(f"# x\n{README_BEGIN}\nold table\n{README_END}\nrest\n")
    t0 = time.perf_counter()
    written = run_bench(cfg, "neumip-bench (test)")
    assert time.perf_counter() - t0 < 120
    res = json.loads(written["json"].read_text())
    bumps = res["materials"]["bumps"]
    assert bumps["family"] == "displaced" and bumps["btf_bytes"] == 5 * 5 * 16 * 16 * 3 * 2
    neu = bumps["methods"]["neumip"]["seeds"]["0"]
    assert all(math.isfinite(r["psnr"]) and math.isfinite(r["psnr_cos"]) for r in neu["levels"])
    assert neu["params"] > 0 and neu["train_qps"] > 0
    assert all(math.isfinite(r["psnr"]) for r in bumps["methods"]["naive"]["levels"])
    assert bumps["methods"]["lean"]["error"] == "RuntimeError: injected failure"  # recorded, run went on
    captured = res["materials"]["captured"]
    assert captured["family"] == "measured" and "no SVBRDF maps" in captured["methods"]["naive"]["empty"]
    assert "levels" in captured["methods"]["neumip"]["seeds"]["0"]
    img = res["images"]["bumps"]
    assert math.isfinite(img["reference_noise_psnr"])
    for method in ("measured", "neumip", "naive"):
        for mode in ("max", "aniso"):
            assert math.isfinite(img["methods"][method][mode]["psnr"])
    cpu = res["speed"]["cpu"]
    assert cpu["gemm"]["fp32"] > 0 and cpu["gemm"]["bf16"] > 0
    assert {r["method"] for r in cpu["queries"]} == {"neumip", "neumip_plus"}
    assert all(r["query_qps"] > 0 and r["query_bound_fp32"] > r["query_qps"] for r in cpu["queries"])
    assert cpu["bandwidth"]["gbps"] > 0
    assert all(r["query_bound_bandwidth"] > r["query_qps"] for r in cpu["queries"])
    assert all(r["train_qps"] > 0 for r in cpu["training"]) and len(cpu["frames"]) == 2
    md = written["md"].read_text()
    assert "| lean | — |" in md and "failed: RuntimeError: injected failure" in md
    assert "no SVBRDF maps" in md and "neumip-bench (test)" in md
    for name in ("RESULTS.md", "results.json", "psnr_per_level.png", "speed.png", "compare_bumps.png"):
        assert (tmp_path / "docs" / name).exists(), name
    readme = (tmp_path / "README.md").read_text()
    assert (
        "old table" not in readme and readme.startswith("# x\n") and readme.endswith(f"{README_END}\nrest\n")
    )
    assert "](docs/RESULTS.md)" in readme and "| bumps | displaced | " in readme
    assert "## Headline" in md and "## Checked against the literature" in md
    assert f"add up to {cell_minutes(res):.0f} min" in md and cell_minutes(res) >= neu["train_seconds"] / 60

    # A second run reuses the finished cells (the failed one is tried again, and now works).
    monkeypatch.setattr(quality, "build_pyramid", real)
    cfg2 = BenchConfig(
        suite=tiny_suite(), out_root=str(tmp_path / "bench"), progress=False, threads=1, only=["quality"]
    )
    res2 = json.loads(run_bench(cfg2)["json"].read_text())
    m2 = res2["materials"]["bumps"]["methods"]
    assert m2["neumip"]["seeds"]["0"]["reused"] and m2["naive"]["reused"]
    assert m2["neumip"]["seeds"]["0"]["levels"] == neu["levels"]
    assert not m2["lean"]["reused"] and math.isfinite(m2["lean"]["levels"][1]["psnr"])
    assert res2["images"] == {} and res2["speed"] == {}


def test_a_kept_cell_is_recomputed_when_no_longer_valid(tmp_path):
    from renderer.bench.cells import run_cell

    calls = []

    def compute(cell_dir):
        calls.append(1)
        return {"model": {"latent_channels": 7 + len(calls)}}

    first = run_cell(tmp_path / "c", compute)
    assert first["reused"] is False and len(calls) == 1
    same = run_cell(tmp_path / "c", compute, still_valid=lambda kept: kept["model"] == first["model"])
    assert same["reused"] is True and len(calls) == 1
    changed = run_cell(
        tmp_path / "c", compute, still_valid=lambda kept: kept["model"] == {"latent_channels": 9}
    )
    assert changed["reused"] is False and changed["model"] == {"latent_channels": 9} and len(calls) == 2


def test_seeds_and_families_of_a_budgeted_suite():
    from renderer.bench.quality import MaterialFile, empty_reason

    suite = tiny_suite(
        seeds=[0, 1],
        family_seeds={"normal-mapped": [0]},
        method_seeds={"neumip_no_offset": [3]},
        method_families={"neumip_no_offset": ["displaced"]},
    )
    assert suite.seeds_of("neumip", "displaced") == [0, 1]
    assert suite.seeds_of("neumip", "normal-mapped") == [0]
    assert suite.seeds_of("neumip_no_offset", "displaced") == [3]
    flat = MaterialFile("bumps_flat", None, "normal-mapped", True, 0, 0)
    bumps = MaterialFile("bumps", None, "displaced", True, 0, 0)
    measured = MaterialFile("carpet", None, "measured", False, 0, 0)
    assert empty_reason(bumps, "neumip_no_offset", suite) is None
    assert "normal-mapped" in empty_reason(flat, "neumip_no_offset", suite)
    assert empty_reason(flat, "neumip", suite) is None
    assert "SVBRDF maps" in empty_reason(measured, "lean", suite)
    with pytest.raises(ValueError, match="method_families"):
        tiny_suite(method_families={"neumip_no_offset": ["bumpy"]})
    with pytest.raises(ValueError, match="family_seeds"):
        tiny_suite(family_seeds={"displaced": []})
