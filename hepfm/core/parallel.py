"""How many cores hepfm may use, how it shares them, and the Dask clients it runs shards on.

Multi-threaded torch collapses when another process wants the same cores (every thread spins at the
synchronisation points while the one it waits for is descheduled), so hepfm never assumes the machine is
free: it counts the cores this process may run on (``os.sched_getaffinity``, which honours ``taskset``,
cgroups' cpusets and batch systems' bindings) and divides them among what runs at once — parallel training
runs (:func:`share_cores`), DDP ranks on one node, Dask workers and DataLoader workers (one thread each).
Importing hepfm also sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already: waiting OpenMP threads then
sleep instead of spinning, which is what keeps a busy machine from collapsing (measured in
``benchmarks/RESULTS.md``). ``HEPFM_THREADS`` overrides the count of torch threads per process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hepfm.core.errors import OptionError

__all__ = ["available_cores", "threads_per_process", "set_torch_threads", "share_cores", "dask_client", "THREADS_ENV"]

#: Environment variable fixing the torch threads of each hepfm process (an integer >= 1).
THREADS_ENV = "HEPFM_THREADS"
# How many processes of this job share the cores (set by share_cores in each of them).
_share = 1


def share_cores(processes: int) -> None:
    """Declare that this process is one of ``processes`` sharing the cores (parallel scan runs, say); later
    :func:`set_torch_threads` calls give it its share."""
    global _share
    _share = max(1, int(processes))


def available_cores() -> int:
    """Cores this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _override() -> int | None:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise OptionError(THREADS_ENV, f"must be a positive integer, got {raw!r}")
    return int(raw)


def threads_per_process(processes: int = 1, beside: int = 0) -> int:
    """Torch threads for each of ``processes`` processes running at once, with ``beside`` more single-threaded
    processes (DataLoader or Dask workers) sharing the cores; ``HEPFM_THREADS`` wins when set, and
    ``OMP_NUM_THREADS`` caps the count.

    >>> threads_per_process(processes=10**6)
    1
    """
    override = _override()
    if override is not None:
        return override
    share = max(1, (available_cores() - beside) // max(1, processes, _share))
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(share, int(omp)) if omp.isdigit() and int(omp) > 0 else share  # OMP_NUM_THREADS caps it


def set_torch_threads(processes: int = 1, beside: int = 0) -> int:
    """Set this process's torch intra-op threads to :func:`threads_per_process`; returns the count."""
    import torch

    n = threads_per_process(processes, beside)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextmanager
def dask_client(workers: int, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: of the cluster at ``scheduler``, or of a ``LocalCluster`` of ``workers`` single-threaded
    processes started here and closed on exit."""
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
        )
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
