"""``neumip-bench`` (hydra config conf/bench.yaml): regenerate every table and plot of the
project's results (quality per material x method x level, rendered comparisons, speed, sizes)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from benchmarks.suite.config import BenchConfig
from benchmarks.suite.run import run_bench
from neumip.config_store import register_configs
from plumbing.hydra_app import hydra_command
from plumbing.structured_config import to_dataclass
from plumbing.user_errors import user_errors

register_configs()  # model_fields composes conf/train.yaml's model options inside this app


@hydra_command("bench", "neumip-bench")
def main(cfg: DictConfig) -> None:
    with user_errors("neumip-bench"):
        written = run_bench(to_dataclass(BenchConfig, cfg), " ".join(["neumip-bench", *sys.argv[1:]]))
        for name, path in written.items():
            print(f"{name:10s}{path}")


if __name__ == "__main__":
    main()
