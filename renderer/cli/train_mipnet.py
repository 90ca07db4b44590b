"""``mipnet-train`` (hydra config conf/mipnet_train.yaml): train MIPNet's cascade on procedural
SVBRDFs and export its fp16 weights."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from plumbing.hydra_app import hydra_command
from plumbing.structured_config import to_dataclass
from plumbing.user_errors import user_errors
from renderer.baselines.mipnet_train import MIPNetTrainConfig, MIPNetTrainer


@hydra_command("mipnet_train", "mipnet-train")
def main(cfg: DictConfig) -> None:
    with user_errors("mipnet-train"):
        train_cfg = to_dataclass(MIPNetTrainConfig, cfg)
        try:
            trainer = MIPNetTrainer(train_cfg)
            path = trainer.fit()
        except KeyboardInterrupt:
            sys.exit(130)
    print(f"weights  {path} ({path.stat().st_size / 2**20:.2f} MiB, {trainer.step} steps, "
          f"{trainer.seconds / 60:.1f} min)")
    if train_cfg.export:
        print(f"exported {train_cfg.export}")
    print(f"log      {trainer.out_dir / 'log.jsonl'}, {trainer.out_dir / 'loss.png'}")


if __name__ == "__main__":
    main()
