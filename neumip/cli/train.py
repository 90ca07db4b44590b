"""``neumip-train`` (hydra config conf/train.yaml): train NeuMIP on a BTF file, evaluate it and
write the report next to the checkpoint."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import h5py
from omegaconf import DictConfig

from neumip.config import TrainConfig
from neumip.config_store import register_configs
from neumip.train import Trainer
from plumbing.hydra_app import hydra_command
from plumbing.resources import check_device
from plumbing.structured_config import to_dataclass
from plumbing.user_errors import user_errors

register_configs()  # model/full, schedule/paper, ... of conf/train.yaml are the dataclasses


def check_held_out(path: str | Path) -> None:
    """Refuse, before the run folder is taken, a data file without held-out pairs: training
    evaluates on them, and would otherwise fail at its first evaluation, hours in. A file that
    cannot be read here is left to the Trainer, whose open names what is wrong with it."""
    try:
        with h5py.File(path, "r") as f:
            held_out = int((f["split"][()] == 1).sum())
    except (OSError, KeyError, ValueError, TypeError):
        return
    if held_out == 0:
        raise ValueError(f"{path}: no held-out (wo, wi) pairs to evaluate on; make the file with "
                         "held_out_fraction > 0 (e.g. 0.1)")


@hydra_command("train", "neumip-train")
def main(cfg: DictConfig) -> None:
    logging.getLogger("neumip").setLevel(logging.INFO)
    with user_errors("neumip-train"):
        train_cfg = to_dataclass(TrainConfig, cfg)
        check_device(train_cfg.device)
        if Path(train_cfg.data.path).is_file():  # else generated, with held-out pairs
            check_held_out(train_cfg.data.path)
        try:
            trainer = Trainer(train_cfg)
            print(f"data        {trainer.btf.path}\nout_dir     {trainer.out_dir}")
            path = trainer.fit()
        except KeyboardInterrupt:
            sys.exit(130)
    print(f"checkpoint  {path}\nreport      {path.parent / 'eval.md'}, {path.parent / 'eval_psnr.png'}")


if __name__ == "__main__":
    main()
