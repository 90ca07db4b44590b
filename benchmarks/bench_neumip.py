"""NeuMIP measurements: training time and held-out PSNR per level with the ``cpu`` preset (full
model and the no-offset ablation on a displaced material), and query throughput at batch 2^20.

Run: .venv/bin/python benchmarks/bench_neumip.py [--data outputs/data/weave.h5] [--device cpu]
     [--skip-train]
Prints markdown; each training run also leaves eval.md / eval_psnr.png next to its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from neumip.config import ModelConfig, TrainConfig
from neumip.config_store import register_configs
from neumip.model import NeuMIP
from neumip.train import Trainer
from plumbing.conf_dir import CONF_DIR
from plumbing.structured_config import to_dataclass

register_configs()  # conf/train.yaml's model/full, schedule/paper... are the dataclasses


def train_config(data: str, model: str, preset: str, out: Path) -> TrainConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"preset={preset}", f"model={model}", f"data.path={data}",
                                          f"out_dir={out / model}", "logger.mode=disabled",
                                          "progress=false"])
    return to_dataclass(TrainConfig, cfg)


@torch.no_grad()
def throughput(device: str, batch: int = 2**20, repeats: int = 3) -> dict[str, float]:
    """Queries per second of the whole NeuMIP query and of the decoder alone (eval mode)."""
    dev = torch.device(device)
    model = NeuMIP(ModelConfig(), 128).to(dev).eval()
    uv = torch.rand(batch, 2, device=dev)
    w = torch.nn.functional.normalize(torch.rand(batch, 3, device=dev) + torch.tensor([0, 0, 1.0],
                                      device=dev), dim=1)
    lod = torch.rand(batch, device=dev) * 6
    x = torch.rand(batch, model.decoder.mlp.n_in, device=dev)

    def rate(fn) -> float:
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return batch * repeats / (time.perf_counter() - t0)

    return {"query": rate(lambda: model(uv, w, w, lod, check=False)),
            "decoder": rate(lambda: model.decoder.mlp(x)), "backend": model.backend}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="outputs/data/weave.h5")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--out", default="outputs/bench_neumip")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    results = {}
    if not args.skip_train:
        for model in ("full", "no_offset"):
            cfg = train_config(args.data, model, args.preset, out)
            cfg.device = args.device
            trainer = Trainer(cfg)
            t0 = time.perf_counter()
            trainer.fit()
            minutes = (time.perf_counter() - t0) / 60
            scores = json.loads((Path(cfg.out_dir) / "checkpoints" / "eval.json").read_text())
            results[model] = {"minutes": minutes, "scores": scores}
            print((Path(cfg.out_dir) / "checkpoints" / "eval.md").read_text())
        full0 = results["full"]["scores"][0]
        abl0 = results["no_offset"]["scores"][0]
        for key in ("mse_linear", "mse_tonemapped"):
            print(f"level-0 {key}: full {full0[key]:.3e}, no_offset {abl0[key]:.3e}, "
                  f"ratio {full0[key] / abl0[key]:.2f}")
    t = throughput(args.device)
    print(f"\nquery throughput (batch 2^20, {t['backend']} MLPs): whole NeuMIP query "
          f"{t['query']:,.0f} queries/s, decoder alone {t['decoder']:,.0f} queries/s")


if __name__ == "__main__":
    main()
