"""The project's commands share the machine's cores instead of fighting over them (issue 22).

Two torch processes with default threads on a small machine slow each other 7-40x: each runs as
many OpenMP threads as there are cores, and the threads of one spin while they wait for the other
process's to leave the core. Here every command registers itself as a running job (a file in a
per-user folder, held under an exclusive ``flock`` for the process's life, so a crashed job leaves
nothing to clear) and, in its long loops, calls :func:`adjust_threads`: with n jobs running, each
one that did not fix its threads takes its share of the cores, max(1, (cores - fixed) // n), and
takes them back when the others end. A job that fixed its threads (``threads=N``, or
``OMP_NUM_THREADS`` in the environment) keeps them and is counted with them. A job that is only
waiting for a child process (the suite training a cell) marks itself idle (:func:`idle`) and is not
counted. A lone command keeps every core: one directory listing a second is all it costs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import torch

try:
    import fcntl
except ImportError:  # not POSIX: no sharing (every command keeps torch's default)
    fcntl = None  # type: ignore[assignment]

#: Seconds between two looks at the other jobs.
CHECK_EVERY = 1.0
#: What a job file says when its process only waits for a child.
IDLE = "idle"
#: What a job file says when its process takes a share of the cores.
SHARED = "shared"


def jobs_dir() -> Path:
    """The folder of running jobs' files: $NEUMIP_JOBS_DIR, else one per user in the temp dir."""
    given = os.environ.get("NEUMIP_JOBS_DIR")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(given) if given else Path(tempfile.gettempdir()) / f"neumip-jobs-{uid}"


class _Job:
    """This process's registration: its locked file and what it says."""

    def __init__(self, cores: int, fixed: int | None) -> None:
        self.cores = cores
        self.fixed = fixed
        self.folder = jobs_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{os.getpid()}"
        self.file: IO[str] = open(self.path, "w")  # noqa: SIM115 - held for the process's life
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.state = ""
        self.write(str(fixed) if fixed else SHARED)
        self.last_check = -1e9

    def write(self, state: str) -> None:
        if state != self.state:
            self.file.seek(0)
            self.file.truncate()
            self.file.write(state)
            self.file.flush()
            self.state = state

    def others(self) -> list[str]:
        """What each other live job's file says; files of ended jobs are removed."""
        states = []
        for f in self.folder.iterdir():
            if f.name == self.path.name or not f.name.isdigit():
                continue
            try:
                with open(f) as fh:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:  # held: the job is running
                        states.append(fh.read().strip())
                        continue
                    f.unlink(missing_ok=True)  # nobody holds it: that job has ended
            except OSError:
                continue
        return states

    def share(self) -> int:
        """This job's threads given the others now."""
        if self.fixed:
            return self.fixed
        busy = [s for s in self.others() if s != IDLE]
        fixed = sum(int(s) for s in busy if s.isdigit())
        sharing = 1 + sum(1 for s in busy if not s.isdigit())
        return max(1, (self.cores - fixed) // sharing)


_job: _Job | None = None
#: torch's own thread count before any command changed it (its physical cores, or OMP_NUM_THREADS).
DEFAULT_THREADS = torch.get_num_threads()


def share_threads(fixed: int | None = None) -> None:
    """Register this process as a project job (again: to change ``fixed``). ``fixed``: threads
    the user asked for (None: take a share of the cores). ``OMP_NUM_THREADS`` in the environment
    counts as fixed."""
    global _job
    if fixed is None and os.environ.get("OMP_NUM_THREADS"):
        fixed = torch.get_num_threads()
    if fixed:
        torch.set_num_threads(fixed)
    if fcntl is None:
        return
    if _job is None:
        try:
            _job = _Job(DEFAULT_THREADS, fixed)
        except OSError:  # no folder or no locks here: run unshared
            return
    else:
        _job.fixed = fixed
        _job.write(str(fixed) if fixed else SHARED)
    _job.last_check = -1e9
    adjust_threads()


def adjust_threads() -> None:
    """Take this job's share of the cores now (at most one look a second; nothing when the
    process never registered)."""
    job = _job
    if job is None:
        return
    now = time.monotonic()
    if now - job.last_check < CHECK_EVERY:
        return
    job.last_check = now
    want = job.share()
    if want != torch.get_num_threads():
        torch.set_num_threads(want)


@contextlib.contextmanager
def idle() -> Iterator[None]:
    """While this job only waits for a child process: not counted by the others."""
    job = _job
    if job is None:
        yield
        return
    before = job.state
    job.write(IDLE)
    try:
        yield
    finally:
        job.write(before)
        job.last_check = -1e9
