"""Turn a hydra DictConfig into the typed dataclass the library functions take."""

from __future__ import annotations

from typing import TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


def to_dataclass(cls: type[T], cfg: DictConfig) -> T:
    """Merge cfg over the dataclass schema (unknown keys and wrong types are errors; so are
    values the config marks ``???``, which a merge would otherwise fill with the defaults)."""
    missing = _missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise ValueError(f"missing value for {', '.join(missing)}: give it on the command line, "
                         f"e.g. {missing[0]}=...")
    schema = OmegaConf.structured(cls)
    merged = OmegaConf.merge(schema, cfg)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def _missing_keys(node: object, prefix: str = "") -> list[str]:
    """Dotted keys whose value is the ``???`` marker (read without resolving interpolations, which
    would fail on the very values that are missing)."""
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _missing_keys(v, f"{prefix}{key}.")]
    return [prefix[:-1]] if node == "???" else []
