"""``neumip-train`` (hydra config conf/train.yaml): train NeuMIP on a BTF file, evaluate it and
write the report next to the checkpoint."""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from neumip.config import TrainConfig
from neumip.config_store import register_configs
from neumip.train import Trainer
from plumbing.hydra_app import hydra_command
from plumbing.resources import check_device
from plumbing.structured_config import to_dataclass
from plumbing.user_errors import user_errors

register_configs()  # model/full, schedule/paper, ... of conf/train.yaml are the dataclasses


@hydra_command("train", "neumip-train")
def main(cfg: DictConfig) -> None:
    logging.getLogger("neumip").setLevel(logging.INFO)
    with user_errors("neumip-train"):
        train_cfg = to_dataclass(TrainConfig, cfg)
        check_device(train_cfg.device)
        try:
            trainer = Trainer(train_cfg)
            print(f"data        {trainer.btf.path}\nout_dir     {trainer.out_dir}")
            path = trainer.fit()
        except KeyboardInterrupt:
            sys.exit(130)
    print(f"checkpoint  {path}\nreport      {path.parent / 'eval.md'}, {path.parent / 'eval_psnr.png'}")


if __name__ == "__main__":
    main()
