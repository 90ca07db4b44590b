"""The config group options of conf/ that are a dataclass's defaults and nothing else, registered
with hydra's ConfigStore: their values are written once, in neumip/config.py, and the yaml files
of conf/ keep only what differs (conf/model/plus.yaml: ``defaults: [full, _self_]`` and the keys
it changes). hydra resolves ``model: full`` in conf/train.yaml, and ``full`` in a model file's own
``defaults`` list, to these entries.

An entry is the dataclass's defaults as a plain (untyped) node, as a yaml file would be: hydra
composes it without checking types, and the command's ``to_dataclass`` then checks the whole
config, so a value of the wrong type (``schedule.steps=abc``) stays the commands' one-line refusal
(exit 2), not a hydra composition error.

Every program that composes conf/train.yaml calls :func:`register_configs` before hydra composes
(the ``neumip-train`` and ``neumip-bench`` entry points at import, tests in tests/conftest.py);
without it hydra refuses ``model: full`` as an unknown option."""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from neumip.config import LoggerConfig, ModelConfig, OptimConfig, ScheduleConfig

#: (group, option) -> the dataclass whose defaults that option is.
NODES: dict[tuple[str, str], type] = {
    ("model", "full"): ModelConfig,
    ("optim", "adam"): OptimConfig,
    ("schedule", "paper"): ScheduleConfig,
    ("logger", "wandb"): LoggerConfig,
}


def defaults_of(cls: type) -> dict[str, Any]:
    """A dataclass's defaults, every field, as plain values."""
    return OmegaConf.to_container(OmegaConf.structured(cls))  # type: ignore[return-value]


def register_configs() -> None:
    """Store every entry of :data:`NODES` (idempotent: storing again replaces an entry by the
    same one)."""
    cs = ConfigStore.instance()
    for (group, name), cls in NODES.items():
        cs.store(group=group, name=name, node=defaults_of(cls))
