"""Output files: checked before the work starts, written under a temporary name and renamed into
place, so that a crash never leaves a half-written file under the final name, a bad location is
found before hours of work, and the file gets the permissions the user's umask gives.

Temporary files are named ``.<name>.<pid>.<random>.tmp`` next to their target; one left behind by
a killed process (its pid no longer runs) is removed by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputPathError(ValueError):
    """An output location that cannot be written: found before any work starts."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _existing_ancestor(path: Path) -> Path:
    cur = path.absolute()
    while not cur.exists():
        cur = cur.parent
    return cur


def _check_creatable(path: Path) -> None:
    """path's missing folders can be made and its folder written."""
    anc = _existing_ancestor(path.parent)
    if not anc.is_dir():
        raise OutputPathError(path, f"cannot be created: {anc} is a file, not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputPathError(path, f"cannot be written: no write permission in {anc}")


def check_output_file(path: str | Path) -> Path:
    """Refuse, before any work, a file output that is a directory or cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(path, "is a directory; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(path, "exists and is not writable")
    _check_creatable(path)
    return path


def check_output_dir(path: str | Path) -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be made or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(path, "is a file; give a directory")
    _check_creatable(path / "x")
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def user_file_mode() -> int:
    """The mode a new regular file gets under the current umask (0666 & ~umask)."""
    return 0o666 & ~_umask()


def user_dir_mode() -> int:
    """The mode a new folder gets under the current umask (0777 & ~umask); a temporary folder
    (0700) renamed into place gets it before the rename."""
    return 0o777 & ~_umask()


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Delete temporary files of ``final`` whose writing process no longer runs."""
    removed = []
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        parts = tmp.name[len(final.name) + 2:].split(".")
        if len(parts) >= 3 and parts[0].isdigit() and not _pid_running(int(parts[0])):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``.

    The temporary file lives in the same directory so that the rename is atomic on POSIX. On any
    exception (KeyboardInterrupt included) the temporary file is removed and ``final`` is left as
    it was. The result keeps the mode of the file it replaces, or gets the umask's.
    """
    final = check_output_file(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        mode = final.stat().st_mode & 0o7777 if final.exists() else user_file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
