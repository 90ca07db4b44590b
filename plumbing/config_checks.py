"""Range checks of config values, run when a config dataclass is built (hydra or Python), so a
bad value is refused at load time with its key, not discovered hours later as a crash or NaNs."""

from __future__ import annotations

from typing import Any


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ``ValueError("key=value: must be rule")`` unless ok."""
    if not ok:
        raise ValueError(f"{key}={value!r}: must be {rule}")


def is_power_of_two(n: int) -> bool:
    return n >= 2 and n & (n - 1) == 0
