"""Directions beyond the training grid: what a model's learned parts and its analytic lobe read.

A BTF's directions stop at some elevation (70 deg for the project's direction sets), but a plane
seen towards the horizon asks for views up to 90 deg. There networks extrapolate freely, the
learned horizons (neumip/horizon.py) turn such a view into a visibility no training query ever
had, and an analytic lobe whose shading normal leans a degree away puts the view below its
shading horizon and returns black: a dark band just below the horizon of every plane render of
model=hybrid_horizon (the weave demo frame, 9k steps: 28.84 dB against the reference; 31.95 dB
with both rules below; model=plus 31.29 dB; README "Grazing views").

So, for directions below the lowest elevation of the training grid:
- the learned parts (the neural offset, the horizons' visibilities, the decoder's direction
  inputs) read the direction moved up to that elevation, same azimuth: the nearest direction the
  model was trained on;
- the analytic lobe reads the true direction, bent just above its own shading horizon where it
  falls below it (lobe normal n: w + (BEND_COS - w.n) n, normalised).

Inside the grid both are the identity, exactly, so training and held-out scores do not change.
The grid's limits come from the data the checkpoint was trained on (metadata ``min_cos_wi`` and
``min_cos_wo``: the smallest z of its light and view directions); a checkpoint without them (one
written before these rules) is read as it always was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

#: Cosine with the lobe normal that a bent direction is given: a grazing but valid direction (an
#: assumption of this module, not a fitted value: 0.01-0.05 gave the same weave frame to 0.1 dB).
BEND_COS = 0.02


@dataclass(frozen=True)
class GrazingLimits:
    """The lowest cos(theta) of the training grid's light (wi) and view (wo) directions."""

    min_cos_wi: float
    min_cos_wo: float

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any] | None) -> GrazingLimits | None:
        """From a checkpoint's data metadata; None where it does not hold both limits."""
        meta = meta or {}
        wi, wo = meta.get("min_cos_wi"), meta.get("min_cos_wo")
        if not isinstance(wi, (int, float)) or not isinstance(wo, (int, float)):
            return None
        return cls(float(wi), float(wo))

    @classmethod
    def of_directions(cls, wi_dirs: Any, wo_dirs: Any) -> GrazingLimits:
        """From a BTF's direction sets (P, 3) (arrays or tensors, z up)."""
        return cls(float(torch.as_tensor(wi_dirs)[:, 2].min()), float(torch.as_tensor(wo_dirs)[:, 2].min()))

    def metadata(self) -> dict[str, float]:
        """The metadata fields :meth:`from_metadata` reads."""
        return {"min_cos_wi": self.min_cos_wi, "min_cos_wo": self.min_cos_wo}


def limit_elevation(w: torch.Tensor, min_cos: float) -> torch.Tensor:
    """w (N, 3) unit, z up -> (N, 3): directions with z < min_cos moved up to z = min_cos along
    their azimuth; every other row returned unchanged, bit for bit. A batch with no such row
    (every training batch: its directions are the grid's) is returned as it is, without the
    eight passes over it (on the CPU, where the check costs no device synchronisation)."""
    z = w[:, 2:3]
    if w.device.type == "cpu" and not bool((z < min_cos).any()):
        return w
    xy = w[:, :2]
    ring = xy / xy.norm(dim=1, keepdim=True).clamp_min(1e-12) * (1.0 - min_cos * min_cos) ** 0.5
    return torch.where(z < min_cos, torch.cat([ring, torch.full_like(z, min_cos)], dim=1), w)


def bend_above(w: torch.Tensor, normal: torch.Tensor, beyond: torch.Tensor) -> torch.Tensor:
    """w, normal (N, 3) unit; beyond (N,) bool -> (N, 3): rows flagged ``beyond`` whose cosine
    with ``normal`` is below BEND_COS become w + (BEND_COS - w.n) n, normalised (cosine with n
    about BEND_COS); every other row returned unchanged."""
    d = (w * normal).sum(dim=1, keepdim=True)
    bent = torch.nn.functional.normalize(w + (BEND_COS - d) * normal, dim=1)
    return torch.where(beyond[:, None] & (d < BEND_COS), bent, w)
