"""Models: the PET jet foundation model (and, later, the event graph network)."""

from __future__ import annotations

from hepfm.models.pet import PET, PETConfig

__all__ = ["PET", "PETConfig"]
