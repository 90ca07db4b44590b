"""Native CPU kernels: a C source of the package compiled on first use into a cached shared
library, loaded with ctypes; where that cannot be done the caller keeps its torch path.

Why at first use and not at install: the wheel stays pure Python (one wheel for every machine),
and the library is compiled for the CPU it runs on (``-march=native``: AVX-512 where there is
AVX-512). The sources are plain C99 + OpenMP, with no Python or torch headers, so a build takes
about a second; it needs only a C compiler (``cc``, or ``$CC``). The library is cached under
``$NEUMIP_CACHE`` (default ``~/.cache/neumip``), keyed by the source, the flags, the compiler's
version and the CPU's feature flags, written under a temporary name and renamed into place (two
processes building at once both succeed). ``NEUMIP_NATIVE=0`` turns every kernel off.

OpenMP: the library is linked against ``libgomp.so.1`` by soname; loaded after torch (which
brings its own ``libgomp.so.1``) the loader reuses torch's, so kernels and torch share one thread
pool and no second pool spins beside the first (the collapse ``plumbing/thread_share.py`` is about).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: -ffp-contract=off: no fused multiply-adds where the C has a multiply and an add, so that the
#: kernels round as their torch twins do (a renderer test reads a sharp texture at uv ~ 10^2,
#: where an FMA in the ray's direction moved values by 1e-4).
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fopenmp", "-fPIC", "-shared", "-std=gnu99")
#: Seconds a compile may take before the kernel is given up for this process.
COMPILE_TIMEOUT = 120


def data_pointer(t: torch.Tensor | None) -> int | None:
    """A tensor's data address for a kernel argument (None: NULL)."""
    return None if t is None else t.data_ptr()


class NativeUnavailable(RuntimeError):
    """Why a kernel could not be built or loaded (the caller falls back to torch)."""


def native_enabled() -> bool:
    """False when ``NEUMIP_NATIVE`` is 0 / false / off / no."""
    return os.environ.get("NEUMIP_NATIVE", "1").strip().lower() not in ("0", "false", "off", "no")


def cache_dir() -> Path:
    """Where built libraries are kept: $NEUMIP_CACHE, else $XDG_CACHE_HOME/neumip, else ~/.cache/neumip."""
    given = os.environ.get("NEUMIP_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neumip"


def _cpu_fingerprint() -> str:
    """The CPU's feature flags (a library built with -march=native runs only where they hold)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # no /proc (not Linux): the machine's and processor's names stand in
        lines = []
    for line in lines:
        if line.startswith(("flags", "Features")):
            return line
    import platform

    return platform.machine() + platform.processor()


def _compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise NativeUnavailable(f"no C compiler ({cc!r} is not on PATH; set CC)")
    return cc


def source_texts(source: Path, seen: set[Path] | None = None) -> list[str]:
    """The text of ``source`` and of every local file it includes (``#include "..."``, relative
    to the including file), recursively, each once: what the library is built from, so all of it
    goes into the cache key."""
    seen = set() if seen is None else seen
    source = source.resolve()
    if source in seen:
        return []
    seen.add(source)
    text = source.read_text()
    texts = [text]
    for line in text.splitlines():
        words = line.strip().split(maxsplit=1)
        if len(words) == 2 and words[0] == "#include" and words[1].startswith('"'):
            texts += source_texts(source.parent / words[1].strip('"'), seen)
    return texts


def build(source: Path) -> Path:
    """The cached library of ``source``, compiled when missing. Raises NativeUnavailable."""
    cc = _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"{cc} --version failed ({e})") from None
    try:
        texts = source_texts(source)
    except OSError as e:
        raise NativeUnavailable(f"cannot read {source.name} or a file it includes ({e})") from None
    key = hashlib.sha256("\0".join([*texts, " ".join(FLAGS), version,
                                    _cpu_fingerprint()]).encode()).hexdigest()[:20]
    folder = cache_dir() / "native"
    lib = folder / f"{source.stem}-{key}.so"
    if lib.exists():
        return lib
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{lib.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as e:
        raise NativeUnavailable(f"cannot write the kernel cache {folder} ({e}; set NEUMIP_CACHE)") from None
    try:
        done = subprocess.run([cc, *FLAGS, "-o", tmp, str(source), "-lm"], capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT)
        if done.returncode != 0:
            raise NativeUnavailable(f"{cc} failed on {source.name}: {done.stderr.strip()[-500:]}")
        os.replace(tmp, lib)
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"building {source.name} failed ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("built native kernel %s", lib)
    return lib


def load_or_none(source: Path, signatures: dict[str, tuple[list[Any], Any]],
                 instead: str) -> ctypes.CDLL | None:
    """:func:`load` with the functions' ctypes ``signatures`` {name: (argtypes, restype)} set, or
    None where the library cannot be built or loaded, said once as a warning that names what is
    used ``instead``."""
    try:
        lib = load(source)
    except NativeUnavailable as e:
        log.warning("native %s off, %s used instead: %s", source.stem, instead, e)
        return None
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    return lib


def load(source: Path) -> ctypes.CDLL:
    """Build (or find) and load ``source``'s library. Import torch before: its libgomp is then
    the one the library binds to. Raises NativeUnavailable."""
    if not native_enabled():
        raise NativeUnavailable("NEUMIP_NATIVE=0")
    lib = build(source)
    try:
        return ctypes.CDLL(str(lib))
    except OSError as e:
        raise NativeUnavailable(f"cannot load {lib} ({e})") from None
