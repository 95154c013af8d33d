"""Memory the process has freed, handed back to the system; memory the machine has left.

glibc's allocator keeps the pages of freed tensors in its arenas (one per thread that allocated) and lets them
fragment: a kernel that trains one classifier after another — a training-size scan, OmniFold's iterations — grows
by hundreds of MB although each run frees what it used. Trimming the arenas after each epoch keeps the process at
what it holds, which matters where memory is small (Binder's 2 GB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

__all__ = ["release_freed_memory", "available_memory"]


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


def _read_bytes(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2 without a limit) reads as None


def available_memory(root: Path = Path("/")) -> int | None:
    """Bytes this process may still allocate: the smaller of the machine's available memory
    (``/proc/meminfo`` MemAvailable) and what its cgroup's limit leaves (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``, less the usage) — a container's or Binder's limit, not the host's RAM.
    None where neither can be read (not Linux).
    """
    limits = []
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    cgroup = root / "sys/fs/cgroup"
    for limit_file, usage_file in (
        (cgroup / "memory.max", cgroup / "memory.current"),
        (cgroup / "memory/memory.limit_in_bytes", cgroup / "memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_bytes(limit_file), _read_bytes(usage_file)
        if limit is not None and limit < 2**60:  # v1 reports "no limit" as a huge number
            limits.append(max(0, limit - (usage or 0)))
    return min(limits) if limits else None
