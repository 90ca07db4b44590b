"""Display encoding shared by previews, metrics and image sheets: x / (1 + x), then sRGB."""

from __future__ import annotations

import numpy as np
import torch


def tonemap(x: np.ndarray) -> np.ndarray:
    """Linear non-negative values -> display values in [0, 1] (Reinhard x / (1 + x), sRGB)."""
    y = np.clip(x, 0.0, None)
    y = y / (1.0 + y)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1.0 / 2.4) - 0.055)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Tone-map linear values and quantise to uint8 (what PNG writers and wandb.Image expect)."""
    return np.round(tonemap(x) * 255.0).astype(np.uint8)


def tonemap_torch(x: torch.Tensor) -> torch.Tensor:
    """:func:`tonemap` on tensors, differentiable everywhere (losses in the metric's space)."""
    y = x.clamp_min(0.0)
    y = y / (1.0 + y)
    knee = 0.0031308
    return torch.where(y <= knee, 12.92 * y, 1.055 * y.clamp_min(knee) ** (1.0 / 2.4) - 0.055)
