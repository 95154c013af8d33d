"""Files written so that nothing already there is lost, and the one JSON reader.

* :func:`atomic_path` and the writers built on it write to a temporary name beside the target and rename
  it into place: a reader never sees half a file, and a killed or failed write leaves the old file as it was.
* :func:`write_metrics` writes the ``metrics.json`` every command and notebook leaves behind.
* :func:`read_json_object` reads every JSON file hepfm reads (manifests, checkpoint configs, training
  state, metrics): a missing file, invalid JSON or another JSON type is one error naming the file.
* :func:`directory_lock` keeps two processes from writing one output directory at once (an advisory
  ``fcntl`` lock, released by the kernel when its holder dies, so it never goes stale).
* :func:`writable_directory` checks an output directory before any work is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hepfm.core.errors import DataError, OutputError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "read_json_object",
    "write_metrics",
    "directory_lock",
    "writable_directory",
    "quiet_stdout",
    "LOCK_FILE",
]

#: The lock file :func:`directory_lock` holds inside a directory being written.
LOCK_FILE = ".hepfm.lock"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files private


def _output_error(path: Path, err: OSError) -> OutputError:
    reason = err.strerror or type(err).__name__
    return OutputError(f"{path}: cannot write ({reason}); nothing there was changed")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is synced and renamed onto ``path``.

    On any error the temporary file is removed and ``path`` keeps what it held before. A path that cannot
    be written (read-only directory, disk full, a file where a directory belongs) raises
    :class:`~hepfm.core.errors.OutputError` naming it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise _output_error(path, err) from err
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OutputError):
            raise
        raise _output_error(path, err) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON with sorted keys, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays to plain JSON types; NaN/inf become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy arrays and scalars
        return _plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_metrics(output_dir: str | Path, metrics: dict, name: str = "metrics.json") -> Path:
    """Write ``metrics`` as JSON into ``output_dir`` atomically (numpy values made plain, NaN/inf as null).

    >>> import tempfile, numpy as np
    >>> path = write_metrics(tempfile.mkdtemp(), {"auc": np.float32(0.5), "rej": float("inf")})
    >>> read_json_object(path)
    {'auc': 0.5, 'rej': None}
    """
    path = Path(output_dir) / name
    atomic_write_json(path, _plain(metrics))
    return path


def read_json_object(path: str | Path, what: str = "", error: type[DataError] = DataError) -> dict:
    """The JSON object in ``path``.

    Args:
        path: the file.
        what: what the file should be, for the message when it is missing (e.g. "a checkpoint has config.json").
        error: the :class:`~hepfm.core.errors.DataError` subclass to raise.

    Raises:
        error: the file is missing or unreadable, not valid JSON, or holds another JSON type than an object.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error(f"{path}: missing" + (f" ({what})" if what else "")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise error(f"{path}: not a JSON object (holds a JSON {type(data).__name__})")
    return data


def writable_directory(path: str | Path, option: str = "out") -> Path:
    """``path`` as a directory that exists (it is created) and can be written; checked before any work.

    Raises:
        OutputError: ``path`` is a file, lies under a file, or cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: {option} is a file, expected a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path}: {option} cannot be created ({err.strerror or err})") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: {option} is not writable")
    return path


@contextlib.contextmanager
def directory_lock(path: str | Path, what: str = "writing") -> Iterator[Path]:
    """Hold an exclusive advisory lock on directory ``path`` (created) while the block runs.

    A second process asking for the same lock is refused at once, with the holder's pid, host and command
    in the message: a batch job should fail in seconds rather than wait for hours behind another one.

    Raises:
        OutputError: another process holds the lock, or the directory cannot be written.
    """
    directory = writable_directory(path)
    lock = directory / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    except OSError as err:
        raise _output_error(lock, err) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise OutputError(
                f"{directory}: {holder} is {what} this directory; wait for it to finish or "
                "choose another output directory"
            ) from None
        info = (
            f"hepfm pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} "
            f"({' '.join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))[:300]})"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        yield directory
        lock.unlink(missing_ok=True)  # a finished writer leaves no lock file behind
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence output written to file descriptor 1 by C++ libraries (Pythia8's banner, FastJet's), which
    bypasses Python's ``sys.stdout``."""
    fd = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)
