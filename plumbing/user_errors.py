"""How every command reports bad input: one line naming the file or value and the problem, exit
status 2, no traceback. Tracebacks are for bugs; ``NEUMIP_TRACEBACK=1`` shows them anyway."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from omegaconf.errors import OmegaConfBaseException

#: What bad input raises: the project's own errors are ValueErrors naming the file or value
#: (BTFFormatError, CheckpointError, MaterialMapError, OutputPathError, config checks); OSError is
#: the system's refusal of a path; OmegaConf errors are config values of the wrong type.
USER_ERRORS = (ValueError, OSError, OmegaConfBaseException)

BAD_INPUT = 2


def describe_error(e: BaseException) -> str:
    """One line for the user."""
    if isinstance(e, OmegaConfBaseException):
        key = getattr(e, "full_key", None)
        msg = str(getattr(e, "msg", None) or e).splitlines()[0]
        return f"{key}: {msg}" if key else msg
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    return " ".join(str(e).split("\n"))


@contextlib.contextmanager
def user_errors(prog: str) -> Iterator[None]:
    """Run a command's body; bad input ends it with one line on stderr and exit status 2."""
    try:
        yield
    except USER_ERRORS as e:
        if os.environ.get("NEUMIP_TRACEBACK"):
            raise
        print(f"{prog}: {describe_error(e)}", file=sys.stderr)
        sys.exit(BAD_INPUT)
