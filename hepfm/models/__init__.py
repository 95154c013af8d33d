"""Models: the PET jet foundation model and the event graph network.

The event model needs torch-geometric, which is slow to import; it loads on first use.
"""

from __future__ import annotations

from hepfm.models.pet import PET, PETConfig

__all__ = ["PET", "PETConfig", "EventGNN", "EventGNNConfig"]


def __getattr__(name: str):
    if name in ("EventGNN", "EventGNNConfig"):
        from hepfm.models import event_gnn

        return getattr(event_gnn, name)
    raise AttributeError(f"module 'hepfm.models' has no attribute {name!r}")
