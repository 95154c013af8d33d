"""Signal handlers for the length of a block: installed in the main thread only (where Python runs them), the
previous ones put back on every way out of the block, or earlier on request."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["handling"]


@contextlib.contextmanager
def handling(
    handler: Callable[[int, Any], None], *signums: int, keep_ignored: bool = False
) -> Iterator[Callable[[], None]]:
    """Run ``handler(signum, frame)`` on ``signums`` inside the block.

    Yields a function that puts the previous handlers back at once (the end of the block does it otherwise).
    Outside the main thread nothing is installed. ``keep_ignored``: a signal the process ignores stays ignored.
    """
    previous: dict[int, Any] = {}

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)
        previous.clear()

    if threading.current_thread() is threading.main_thread():
        for signum in signums:
            if not (keep_ignored and signal.getsignal(signum) is signal.SIG_IGN):
                previous[signum] = signal.signal(signum, handler)
    try:
        yield restore
    finally:
        restore()
