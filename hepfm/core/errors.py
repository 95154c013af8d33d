"""The errors a user can cause, under one base class.

Every message names the file, field or option at fault and what was expected, in one line, so that the
command line can print it as it is (``error: <message>``, exit status 2) and a notebook shows it without a
page of traceback. Each class also derives from the built-in exception a caller would have caught before
(``ValueError`` for bad values, ``OSError`` for paths), so ``except ValueError`` keeps working.

>>> try:
...     raise OptionError("batch_size", "must be a positive integer, got 0")
... except HepfmError as err:
...     print(err, "|", err.option)
batch_size: must be a positive integer, got 0 | batch_size
"""

from __future__ import annotations

__all__ = [
    "HepfmError",
    "DataError",
    "CheckpointError",
    "OptionError",
    "OutputError",
    "MissingInputError",
    "DependencyError",
    "Stopped",
]


class HepfmError(Exception):
    """Base of every error hepfm raises for bad input, bad options or an unusable output path."""


class DataError(HepfmError, ValueError):
    """A file or array does not hold what hepfm expects; the message names the file and field."""


class MissingInputError(DataError, FileNotFoundError):
    """An input file or directory does not exist; the message names it."""


class CheckpointError(DataError):
    """A checkpoint is missing, corrupt, or does not match the model asked for; names the file."""


class OptionError(HepfmError, ValueError):
    """An option or argument has a value hepfm cannot use.

    Attributes:
        option: the parameter's name as the Python API spells it (``batch_size``); the command line shows
            it as its flag (``--batch-size``).
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option, self.message = option, message


class OutputError(HepfmError, OSError):
    """An output path cannot be written (read-only, a file where a directory belongs, disk full) or holds
    results that writing would destroy; the message names the path."""


class DependencyError(HepfmError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


class Stopped(KeyboardInterrupt):
    """A run stopped on request (Ctrl-C, a batch system's SIGTERM) after saving what it had done; the message
    says where it stopped and how to continue. A ``KeyboardInterrupt``, so code that stops on Ctrl-C still does.

    Attributes:
        signum: the signal that asked for the stop.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    def __reduce__(self):  # raised in a worker process (parallel scan runs), re-raised in the parent
        return type(self), (str(self), self.signum)
