"""The cluster route of README ("On a cluster"): a ``neumip-train -m`` sweep through hydra's
submitit launcher. ``hydra/launcher=submitit_local`` goes through what ``submitit_slurm`` does
(the job pickled into the sweep's ``.submitit/`` folder, run in a process of its own, its result
collected) with local processes in place of ``sbatch``, so a sweep that runs here differs on a
cluster only in the queue's options."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import synthetic_btf

BIN = Path(sys.executable).parent


def test_a_submitit_sweep_trains_each_job_into_its_own_out_dir(tmp_path):
    assert importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher"), (
        "hydra-submitit-launcher (the dev extras) is not installed: pip install -e '.[dev]'")
    data = synthetic_btf(tmp_path, "bumps", directions="tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # Two seeds share data and model, hence the default out_dir: the seed goes into it (README).
    p = subprocess.run(
        [str(BIN / "neumip-train"), "-m", "hydra/launcher=submitit_local", "seed=0,1", "preset=debug",
         "data=file", f"data.path={data}", "data.name=tiny", "out_dir=outputs/train/tiny/seed${seed}",
         "threads=1", "progress=false"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    weights = []
    for seed in (0, 1):
        ckpt = tmp_path / "outputs" / "train" / "tiny" / f"seed{seed}" / "checkpoints"
        assert "| level | resolution | PSNR (dB)" in (ckpt / "eval.md").read_text()
        assert (ckpt / "eval_psnr.png").stat().st_size > 0
        assert json.loads((ckpt / "last.json").read_text())["train_config"]["seed"] == seed
        weights.append((ckpt / "last.safetensors").read_bytes())
    assert weights[0] != weights[1]  # each job got its own overrides
    logs = sorted(tmp_path.glob("outputs/multirun/*/*/.submitit/*/*_log.out"))
    assert len(logs) == 2, p.stderr[-2000:]
    for log in logs:
        assert "Job completed successfully" in log.read_text()
