"""The core every other layer builds on: the error hierarchy, files written atomically, the one JSON reader,
core counts and Dask clients, and the four-vector helpers."""

from __future__ import annotations

from hepfm.core.errors import (
    CheckpointError,
    DataError,
    DependencyError,
    HepfmError,
    MissingInputError,
    OptionError,
    OutputError,
)

__all__ = [
    "CheckpointError",
    "DataError",
    "DependencyError",
    "HepfmError",
    "MissingInputError",
    "OptionError",
    "OutputError",
]
