"""Data: the in-memory samples, the field schema, sharded storage, readers for public formats and torch
datasets. Making data (Pythia8, the detector, the factory) is :mod:`hepfm.sim`."""

from __future__ import annotations

from hepfm.core.errors import DataError
from hepfm.data.datasets import JetDataset, ShardedJetDataset
from hepfm.data.formats import read_events, read_jets
from hepfm.data.normaliser import FeatureNormaliser
from hepfm.data.sample import EventSample, JetSample
from hepfm.data.schema import JET_FEATURES, JETCLASS_CLASSES, MAX_PARTICLES, PARTICLE_FEATURES

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
