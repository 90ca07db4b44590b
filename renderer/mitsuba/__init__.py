"""The project's materials as Mitsuba 3 BSDFs (``pip install mitsuba``; the llvm variants need a
system libLLVM >= 16, found by :func:`renderer.mitsuba.llvm.configure_llvm`).

Import :mod:`renderer.mitsuba.bsdf` only after :func:`renderer.mitsuba.setup` has chosen the
variant: Mitsuba's Python classes exist per variant.
"""

from __future__ import annotations

from renderer.mitsuba.llvm import MitsubaUnavailable, configure_llvm, setup

__all__ = ["MitsubaUnavailable", "configure_llvm", "setup"]
