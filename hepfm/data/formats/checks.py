"""Checks every reader shares: the path exists, the reading library's errors become a DataError, values are
finite, labels are integers in range, and limits are sane."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import uproot

from hepfm.core.errors import DataError, MissingInputError, OptionError

__all__ = ["existing", "library_errors", "check_finite", "checked_labels", "check_limits"]

# What h5py, uproot and numpy raise on truncated or corrupt files; turned into DataError.
_LIBRARY_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    IndexError,
    EOFError,
    RuntimeError,
    TypeError,
    zipfile.BadZipFile,
    zlib.error,
    uproot.deserialization.DeserializationError,
)


def existing(path: str | Path) -> Path:
    """``path`` as a Path, which must exist."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such file or directory")
    return path


@contextmanager
def library_errors(path: Path, what: str) -> Iterator[None]:
    """Re-raise a reading library's exception on a truncated or corrupt file as a DataError naming both."""
    try:
        yield
    except DataError:
        raise
    except _LIBRARY_ERRORS as err:
        # uproot's messages span several lines and HDF5's carry the whole back trace.
        detail = " ".join(str(err).split())[:200]
        raise DataError(f"{path}: cannot read {what}: {type(err).__name__}: {detail}") from err


def check_finite(path: Path | str, name: str, values: np.ndarray) -> None:
    """Refuse NaN or infinite values of field ``name``."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{path}: field {name!r} holds {int(bad.sum())} NaN/inf values")


def checked_labels(path: Path | str, name: str, values: np.ndarray, n_classes: int) -> np.ndarray:
    """Stored labels as int64 after checking they are finite integers in ``[0, n_classes)``."""
    values = np.asarray(values, dtype=np.float64)
    check_finite(path, name, values)
    if (values != np.round(values)).any():
        raise DataError(f"{path}: field {name!r} holds non-integer labels")
    if len(values) and (values.min() < 0 or values.max() >= n_classes):
        raise DataError(
            f"{path}: field {name!r} holds labels outside [0, {n_classes - 1}] "
            f"(found {values.min():g} to {values.max():g})"
        )
    return values.astype(np.int64)


def check_limits(max_particles: int | None, max_count: int | None, count_name: str = "max_jets") -> None:
    """``max_particles`` and ``max_jets`` (or ``max_events``) are positive integers or None (no limit)."""
    for name, value in (("max_particles", max_particles), (count_name, max_count)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1):
            raise OptionError(name, f"must be a positive integer or None, got {value!r}")
