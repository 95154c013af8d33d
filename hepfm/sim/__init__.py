"""Simulation: the Pythia8 driver, the fast detector model, the process registry, jet and event production,
dijet clustering and the factory that runs productions shard by shard on Dask."""

from __future__ import annotations

from hepfm.sim.detector import DETECTORS, DetectorConfig
from hepfm.sim.factory import EventProduction, JetProduction, generate_events, generate_jets
from hepfm.sim.processes import JET_RECIPES, PROCESSES

__all__ = [
    "DETECTORS",
    "DetectorConfig",
    "EventProduction",
    "JET_RECIPES",
    "JetProduction",
    "PROCESSES",
    "generate_events",
    "generate_jets",
]
