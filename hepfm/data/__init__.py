"""Data: the Pythia8 factory, storage, readers for public formats and torch datasets."""

from __future__ import annotations

from hepfm.data.datasets import FeatureNormaliser, JetDataset, ShardedJetDataset
from hepfm.data.detector import DETECTORS, DetectorConfig
from hepfm.data.factory import generate_events, generate_jets
from hepfm.data.processes import JET_RECIPES, JETCLASS_CLASSES, PROCESSES
from hepfm.data.readers import read_events, read_jets
from hepfm.data.sample import JET_FEATURES, PARTICLE_FEATURES, DataError, EventSample, JetSample

__all__ = [
    "DETECTORS",
    "DataError",
    "DetectorConfig",
    "EventSample",
    "FeatureNormaliser",
    "JET_FEATURES",
    "JET_RECIPES",
    "JETCLASS_CLASSES",
    "JetDataset",
    "JetSample",
    "PARTICLE_FEATURES",
    "PROCESSES",
    "ShardedJetDataset",
    "generate_events",
    "generate_jets",
    "read_events",
    "read_jets",
]
