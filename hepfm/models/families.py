"""Model families: which model, sample, dataset and batch go together.

hepfm has two families, and everything that differs between jets and events is said here once:

==========  ======================  ===============  ========================================
family      model (``model`` name)  sample           dataset -> batch
==========  ======================  ===============  ========================================
``jets``    ``PET`` (``pet``)       ``JetSample``    ``JetDataset`` -> ``JetBatch``
``events``  ``EventGNN``            ``EventSample``  ``EventGraphDataset`` -> ``EventBatch``
            (``event_gnn``)
==========  ======================  ===============  ========================================

The trainers, the evaluation and the analyses ask the family (``family_of(model)``, ``FAMILIES[name]``)
instead of testing for jets or events themselves. A new model family is one more :class:`Family` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hepfm.core.errors import CheckpointError, DataError
from hepfm.data.datasets import JetBatch, JetDataset
from hepfm.data.formats import read_events, read_jets
from hepfm.data.normaliser import FeatureNormaliser
from hepfm.data.sample import EventSample, JetSample
from hepfm.data.schema import MAX_EVENT_PARTICLES, MAX_PARTICLES
from hepfm.models.pet import PET, PETConfig

__all__ = ["Family", "FAMILIES", "MODELS", "family_of", "family_of_model"]


def _pet() -> tuple[type, type]:
    return PET, PETConfig


def _event_gnn() -> tuple[type, type]:
    from hepfm.models.event_gnn import EventGNN, EventGNNConfig  # torch-geometric: imported only when needed

    return EventGNN, EventGNNConfig


def _jet_dataset(sample: JetSample, normaliser: FeatureNormaliser | None) -> JetDataset:
    if normaliser is None:
        raise CheckpointError("a jet model reads normalised features: its checkpoint must hold 'normaliser'")
    return JetDataset(sample, normaliser)


def _event_dataset(sample: EventSample, normaliser: FeatureNormaliser | None):
    from hepfm.data.graphs import EventGraphDataset

    return EventGraphDataset(sample)


def _jet_logits(model: nn.Module, batch: JetBatch, use_jet_features: bool = False) -> torch.Tensor:
    return model(batch.x, batch.mask, batch.jet if use_jet_features else None)


def _event_logits(model: nn.Module, batch, use_jet_features: bool = False) -> torch.Tensor:
    return model(batch.graph)


def _read_jets(data: Any, max_particles: int | None) -> JetSample:
    if isinstance(data, JetSample):
        return data
    if isinstance(data, EventSample):
        raise DataError(f"{data.source}: holds events; a jet model reads jets (read_jets)")
    return read_jets(data, max_particles=max_particles or MAX_PARTICLES)


def _read_events(data: Any, max_particles: int | None) -> EventSample:
    if isinstance(data, EventSample):
        return data
    if isinstance(data, JetSample):
        raise DataError(f"{data.source}: holds jets; an event model reads events (read_events)")
    return read_events(data, max_particles=max_particles or MAX_EVENT_PARTICLES)


@dataclass(frozen=True)
class Family:
    """What belongs together for one kind of input.

    Attributes:
        name: ``"jets"`` or ``"events"``.
        model_name: the checkpoint's ``model`` field (``"pet"``, ``"event_gnn"``).
        sample_type: the in-memory sample the family's readers return.
        max_particles: constituents (objects) per example the readers pad to by default.
        classes: a function returning (model class, config dataclass), imported on first use.
        read: ``read(data, max_particles)``: a sample of this family from a path or a sample.
        make_dataset: ``make_dataset(sample, normaliser)``: the torch dataset (its ``collate`` builds batches).
        logits: ``logits(model, batch, use_jet_features)``: the head's outputs (B, K) of a batch.
    """

    name: str
    model_name: str
    sample_type: type
    max_particles: int
    classes: Callable[[], tuple[type, type]]
    read: Callable[[Any, int | None], Any]
    make_dataset: Callable[[Any, FeatureNormaliser | None], Any]
    logits: Callable[..., torch.Tensor]

    def model_classes(self) -> tuple[type, type]:
        """(model class, config dataclass) of this family."""
        return self.classes()

    def dataset(self, sample, normaliser: FeatureNormaliser | None = None):
        """The torch dataset of ``sample`` (jets need the model's ``normaliser``)."""
        if not isinstance(sample, self.sample_type):
            raise DataError(
                f"{getattr(sample, 'source', sample)}: a {self.name} model reads a "
                f"{self.sample_type.__name__}, got a {type(sample).__name__}"
            )
        return self.make_dataset(sample, normaliser)

    def fit_normaliser(self, sample) -> FeatureNormaliser | None:
        """The feature normalisation fitted on training data (events use fixed transformations: None)."""
        return FeatureNormaliser.fit(sample) if self.name == "jets" else None


JETS = Family("jets", "pet", JetSample, MAX_PARTICLES, _pet, _read_jets, _jet_dataset, _jet_logits)
EVENTS = Family(
    "events", "event_gnn", EventSample, MAX_EVENT_PARTICLES, _event_gnn, _read_events, _event_dataset, _event_logits
)
#: The families by name.
FAMILIES = {f.name: f for f in (JETS, EVENTS)}
#: The families by checkpoint model name.
MODELS = {f.model_name: f for f in (JETS, EVENTS)}


def family_of_model(model_name: str, source: str | Path = "the checkpoint") -> Family:
    """The family of a checkpoint's ``model`` name."""
    if model_name not in MODELS:
        raise CheckpointError(f"{source}: field 'model' is {model_name!r}; known: {list(MODELS)}")
    return MODELS[model_name]


def family_of(model: nn.Module) -> Family:
    """The family of a model instance."""
    for family in MODELS.values():
        if isinstance(model, family.model_classes()[0]):
            return family
    raise TypeError(f"{type(model).__name__} belongs to no hepfm model family")
