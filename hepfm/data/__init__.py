"""Data: the in-memory samples, the field schema, sharded storage, readers for public formats and torch
datasets. Making data (Pythia8, the detector, the factory) is :mod:`hepfm.sim`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hepfm.core.errors import DataError
from hepfm.data.formats import read_events, read_jets
from hepfm.data.normaliser import FeatureNormaliser
from hepfm.data.sample import EventSample, JetSample
from hepfm.data.schema import JET_FEATURES, JETCLASS_CLASSES, MAX_PARTICLES, PARTICLE_FEATURES

if TYPE_CHECKING:
    from hepfm.data.datasets import JetDataset, ShardedJetDataset

__all__ = [
    "DataError",
    "EventSample",
    "FeatureNormaliser",
    "JET_FEATURES",
    "JETCLASS_CLASSES",
    "JetDataset",
    "JetSample",
    "MAX_PARTICLES",
    "PARTICLE_FEATURES",
    "ShardedJetDataset",
    "read_events",
    "read_jets",
]


def __getattr__(name: str) -> Any:
    # The torch datasets load on first use: hepfm.sim (and so every Dask worker of a production) reads and writes
    # samples through this package and should not pay torch's import time and memory for it.
    if name in ("JetDataset", "ShardedJetDataset"):
        import hepfm.data.datasets as datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'hepfm.data' has no attribute {name!r}")
