"""What the evaluation writes for a reader: an empty light band is "no pairs" (null in JSON, never
NaN), a subset of pairs is spread over them, and the image sheet names its direction pair."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from btf_data.btf_file import BTFFile
from neumip.evaluate import direction_label, evaluate_query, spread_subset, write_report
from tests.conftest import write_small_btf


def test_an_empty_light_band_is_no_pairs_not_nan(tmp_path):
    # every light within 30 degrees of the normal: the 35-60 and 60-90 degree bands hold no pair
    dirs = np.array([[0.0, 0.0, 1.0], [0.3, 0.0, math.sqrt(1 - 0.09)], [0.0, -0.4, math.sqrt(1 - 0.16)],
                     [-0.2, 0.2, math.sqrt(1 - 0.08)]])
    write_small_btf(tmp_path / "b.h5", dirs=dirs)
    with BTFFile(tmp_path / "b.h5") as btf:
        scores = evaluate_query(lambda uv, wi, wo, lod: torch.full((uv.shape[0], 3), 0.5), btf, 2, "all")
    mid = "light 35-60 deg"
    assert scores[0].psnr_by_light[mid] is None and scores[0].pairs_by_light[mid] == 0
    assert math.isfinite(scores[0].psnr_by_light["light 0-35 deg"])
    paths = write_report(scores, tmp_path, "t")
    text = paths["json"].read_text()
    assert "NaN" not in text and json.loads(text)[0]["psnr_by_light"]["light 60-90 deg"] is None
    md = paths["md"].read_text()
    assert md.count("no pairs") == 2 * 2 and "nan" not in md.lower()  # two empty bands x two levels


def test_a_subset_of_pairs_is_spread_over_all_of_them():
    pairs = np.arange(100).reshape(50, 2)
    # exactly 8 of the 50 pairs, evenly spaced: pairs 0, 6, 12, 18, 25, 31, 37, 43
    np.testing.assert_array_equal(spread_subset(pairs, 8)[:, 0] // 2, [0, 6, 12, 18, 25, 31, 37, 43])
    assert len(spread_subset(pairs, 36)) == 36  # exactly as many as asked, where every k-th gives 25
    assert spread_subset(pairs, None) is pairs and spread_subset(pairs, 80) is pairs


def test_directions_are_labelled_by_their_angles():
    assert direction_label(np.array([0.0, 0.0, 1.0])) == "theta 0, phi 0 deg"
    s = math.sqrt(0.5)
    assert direction_label(np.array([0.0, -s, s])) == "theta 45, phi 270 deg"


def test_training_curves_score_every_held_out_pair_or_a_fixed_subset_and_the_report_every_pair(tmp_path):
    """By default the curve's points score every held-out pair, so its last point is eval.md's
    numbers; with ``logger.curve_pairs`` set, every point scores the same spread subset (the last
    one does not jump to another set). eval.md always scores every held-out pair. One point per
    step."""
    import csv

    from neumip.evaluate import evaluate_levels
    from neumip.model import NeuMIP
    from neumip.train import Trainer
    from tests.conftest import synthetic_btf
    from tests.test_neumip_training import tiny_config

    data = synthetic_btf(tmp_path, "bumps")
    for subset in (None, 3):
        cfg = tiny_config(data, tmp_path / f"run{subset}", 20)
        cfg.logger.eval_every = 10  # evaluations at steps 10 and 20; the final one is at step 20 too
        cfg.logger.curve_pairs = subset
        path = Trainer(cfg).fit()
        rows = list(csv.DictReader(open(tmp_path / f"run{subset}" / "curves_psnr.csv")))
        points = [(int(r["step"]), int(r["level"])) for r in rows]
        assert points == [(s, k) for s in (10, 20) for k in range(4)]
        model = NeuMIP.load(path)
        with BTFFile(data) as btf:
            scored = evaluate_levels(model, btf, 4, "held_out", max_pairs=subset)
            every = evaluate_levels(model, btf, 4, "held_out")
            assert len(btf.pairs("held_out")) > 3
        assert [float(r["psnr"]) for r in rows[4:]] == [round(s.psnr, 4) for s in scored]
        report = json.loads((path.parent / "eval.json").read_text())
        assert [r["psnr"] for r in report] == [s.psnr for s in every]
        if subset is not None:
            assert [s.psnr for s in scored] != [s.psnr for s in every]
