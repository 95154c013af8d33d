"""Memory the process has freed, handed back to the system.

glibc's allocator keeps the pages of freed tensors in its arenas (one per thread that allocated) and lets them
fragment: a kernel that trains one classifier after another — a training-size scan, OmniFold's iterations — grows
by hundreds of MB although each run frees what it used. Trimming the arenas after each epoch keeps the process at
what it holds, which matters where memory is small (Binder's 2 GB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the system; True where the C library can (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
