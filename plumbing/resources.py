"""Checks of values that would otherwise reach torch unchecked and end in a traceback: the device
a command runs on, and sizes whose memory the machine cannot have.

Sizes are refused from an estimate made before anything is allocated, not by catching torch's
allocation error: on Linux an allocation larger than the memory often succeeds (memory is
overcommitted) and the process is killed by the kernel later, without a message, possibly hours
into the work; and one that fails at once fails from deep inside the work, where its size no
longer names the option that asked for it. The estimate is a lower bound (the arrays the command
must hold at once, e.g. its output images), so nothing that could run is refused.
"""

from __future__ import annotations

import os
from pathlib import Path


def check_device(device: str, key: str = "device") -> str:
    """Refuse, with the key and value named, a device torch cannot use on this machine (cuda
    without CUDA, cuda:3 on a machine with two GPUs, a misspelt name). Returns the device."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{key}={device}: not a device; use cpu or cuda (cuda:N for GPU N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{key}={device}: CUDA is not available on this machine")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{key}={device}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{key}={device}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"{key}={device}: unsupported device; use cpu or cuda")
    return device


def format_bytes(n: float) -> str:
    """``1.2 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def memory_bytes(device: str = "cpu") -> int:
    """The memory work on ``device`` can have: a GPU's total memory, or the machine's physical
    memory (the container's limit when lower)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev).total_memory)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = ""
    return min(total, int(limit)) if limit.isdigit() else total


def check_memory(nbytes: float, value: str, what: str, device: str = "cpu") -> None:
    """Refuse work that needs at least ``nbytes`` at once when ``device`` has less memory in all:
    one line naming the value (``resolution=65536``), the estimate and ``what`` it is made of."""
    have = memory_bytes(device)
    if nbytes > have:
        where = "this GPU's" if device.startswith("cuda") else "this machine's"
        raise ValueError(f"{value}: needs at least {format_bytes(nbytes)} of memory ({what}), more than "
                         f"{where} {format_bytes(have)}")
