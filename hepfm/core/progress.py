"""Progress bars that suit where hepfm runs: live in a terminal or a notebook, a line a minute in a batch log.

A bar that redraws ten times a second writes megabytes of carriage-return lines into the log file of a batch
job (``hepfm pretrain ... > log``); where standard error is neither a terminal nor a notebook kernel's stream,
:func:`progress_bar` redraws at most every :data:`LOG_INTERVAL` seconds.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress_bar", "LOG_INTERVAL"]

#: Seconds between a bar's lines when standard error goes to a file or a pipe.
LOG_INTERVAL = 60.0


def _live() -> bool:
    """Whether progress is watched live: standard error is a terminal, or this is a notebook kernel."""
    stderr = sys.stderr
    return (stderr is not None and stderr.isatty()) or "ipykernel" in sys.modules


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar (same arguments) that redraws every :data:`LOG_INTERVAL` seconds when not watched live."""
    if not _live():
        # tqdm's monitor thread forces a redraw once maxinterval (10 s) has passed without one: raise it too
        kwargs.setdefault("mininterval", LOG_INTERVAL)
        kwargs.setdefault("maxinterval", LOG_INTERVAL)
    return tqdm(iterable, **kwargs)
