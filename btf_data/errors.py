"""Errors raised for bad input files, each naming the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class BTFFormatError(ValueError):
    """A BTF HDF5 file that is missing, unreadable or inconsistent."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UBOFormatError(ValueError):
    """A UBO2014 FMF1 file that is truncated, corrupted or of an unsupported variant."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MaterialMapError(ValueError):
    """A user-supplied SVBRDF map that cannot be read or has the wrong shape."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
