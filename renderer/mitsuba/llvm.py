"""Finding what Mitsuba's llvm variants need before ``drjit`` is imported: a libLLVM of version
16 or newer (the 14 and 15 of some systems fail to JIT Dr.Jit's kernels). ``DRJIT_LIBLLVM_PATH``
overrides the search."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

#: Oldest libLLVM major version Mitsuba 3.9's llvm variants run with here (LLVM 14 and 15 fail).
MIN_LLVM = 16
SEARCH = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/opt/homebrew/opt/llvm/lib",
    "/usr/local/opt/llvm/lib",
)
INSTALL_HINT = (
    "install a libLLVM >= 16: Debian/Ubuntu `apt-get install libllvm19`, Fedora "
    "`dnf install llvm-libs`, macOS `brew install llvm`; or point DRJIT_LIBLLVM_PATH at one"
)


class MitsubaUnavailable(OSError):
    """Mitsuba 3 or a usable libLLVM is missing; the message says what to install."""


def llvm_version(path: str) -> int | None:
    """Major version in a libLLVM file name (libLLVM-19.so, libLLVM.so.19.1), or None."""
    m = re.search(r"libLLVM[-.](?:so\.)?(\d+)", Path(path).name)
    return int(m.group(1)) if m else None


def find_libllvm(search: tuple[str, ...] = SEARCH) -> str | None:
    """The newest libLLVM >= MIN_LLVM in the usual library folders, or None."""
    found = []
    for folder in search:
        for path in glob.glob(os.path.join(folder, "libLLVM*.so*")) + glob.glob(
            os.path.join(folder, "libLLVM*.dylib")
        ):
            v = llvm_version(path)
            if v is not None and v >= MIN_LLVM:
                found.append((v, path))
    return max(found)[1] if found else None


def configure_llvm() -> str:
    """Set DRJIT_LIBLLVM_PATH (unless the user did) to a usable libLLVM; returns it or raises
    :class:`MitsubaUnavailable` naming what to install."""
    given = os.environ.get("DRJIT_LIBLLVM_PATH")
    if given:
        if not Path(given).exists():
            raise MitsubaUnavailable(f"DRJIT_LIBLLVM_PATH={given} does not exist; {INSTALL_HINT}")
        return given
    path = find_libllvm()
    if path is None:
        raise MitsubaUnavailable(f"no libLLVM >= {MIN_LLVM} found in {', '.join(SEARCH)}; {INSTALL_HINT}")
    os.environ["DRJIT_LIBLLVM_PATH"] = path
    return path


def setup(variant: str = "llvm_ad_rgb"):
    """Import Mitsuba with ``variant`` (llvm_ad_rgb on the CPU, cuda_ad_rgb on a GPU), wavefront
    mode (the BSDF calls torch, which Dr.Jit cannot trace into symbolic loops or calls), and
    register the project's BSDF. Returns the ``mitsuba`` module."""
    if variant.startswith("llvm"):
        configure_llvm()
    try:
        import drjit as dr
        import mitsuba as mi
    except ImportError as e:
        raise MitsubaUnavailable(f"Mitsuba 3 is not installed ({e}); `pip install mitsuba`") from None
    try:
        mi.set_variant(variant)
    except (ImportError, AttributeError, RuntimeError) as e:
        raise MitsubaUnavailable(
            f"Mitsuba variant {variant!r} is unavailable ({e}); {INSTALL_HINT}"
        ) from None
    dr.set_flag(dr.JitFlag.SymbolicLoops, False)
    dr.set_flag(dr.JitFlag.SymbolicCalls, False)
    from renderer.mitsuba.bsdf import register

    register()
    return mi
