"""Turn a hydra DictConfig into the typed dataclass the library functions take."""

from __future__ import annotations

from typing import TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


def to_dataclass(cls: type[T], cfg: DictConfig) -> T:
    """Merge cfg over the dataclass schema (unknown keys and wrong types are errors)."""
    schema = OmegaConf.structured(cls)
    merged = OmegaConf.merge(schema, cfg)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
