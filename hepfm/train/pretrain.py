"""Pretraining the foundation models: PET on labelled multi-class jets (``hepfm pretrain``), the event graph
network on multi-process events (``hepfm pretrain --model event_gnn``).

PET learns with the OmniLearn objective (:class:`~hepfm.train.objectives.PretrainObjective`: classification
of clean and noised jets, v-prediction diffusion, jet-feature regression); the event model with 12-way
cross entropy or the multilabel truth (:class:`~hepfm.train.objectives.EventPretrainObjective`). Each writes a
checkpoint directory (:mod:`hepfm.train.checkpoint`) and its ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hepfm.core.errors import DataError, OptionError
from hepfm.data.datasets import JetDataset
from hepfm.data.formats import read_events, read_jets
from hepfm.data.formats.checks import check_limits
from hepfm.data.sample import EventSample, JetSample
from hepfm.data.schema import MAX_PARTICLES
from hepfm.models.families import EVENTS
from hepfm.models.pet import PET, PETConfig
from hepfm.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from hepfm.train.config import History, TrainConfig
from hepfm.train.loop import fit
from hepfm.train.objectives import EVENT_TASKS, EventPretrainObjective, PretrainObjective
from hepfm.train.splits import (
    check_fraction,
    normaliser_of,
    production_normaliser,
    split,
    streamed,
    subsets,
    world_size,
)
from hepfm.train.state import best_dir, data_fingerprint, finish_run, prepare_run, record_data, write_run_metrics

if TYPE_CHECKING:
    from hepfm.models.event_gnn import EventGNNConfig

__all__ = ["pretrain", "pretrain_events", "in_label_space", "check_classes"]


def check_classes(sample: JetSample | EventSample, what: str = "training") -> None:
    """A classifier needs examples of at least two classes; refuse anything less before training."""
    present = np.unique(sample.labels)
    if len(sample) == 0:
        raise DataError(f"{sample.source}: the {what} sample holds no examples")
    if len(present) < 2:
        only = sample.class_names[int(present[0])] if len(present) else "none"
        raise DataError(
            f"{sample.source}: the {what} sample holds one class only ({only!r} of "
            f"{sample.class_names}); a classifier needs at least two"
        )


def in_label_space(sample: JetSample, class_names: list[str], source: str | Path = "the checkpoint") -> JetSample:
    """The sample relabelled into ``class_names`` (its classes must all be among them)."""
    missing = [c for c in sample.class_names if c not in class_names]
    if missing:
        raise DataError(f"{sample.source}: classes {missing} are not among the classes of {source}: {class_names}")
    mapping = np.array([class_names.index(c) for c in sample.class_names])
    out = sample[np.arange(len(sample))]
    out.labels, out.class_names = mapping[sample.labels], list(class_names)
    return out


def _sample_fingerprint(sample: JetSample | EventSample, *extra) -> str:
    jets = getattr(sample, "jets", None)
    return data_fingerprint(sample.particles, sample.mask, sample.labels, jets, sample.weights, *extra)


def _summary(task: str, model, history: History, n_train: int, n_val: int, wall: float, config) -> dict:
    best = history.epochs[history.best_epoch]
    return {
        "task": task,
        "config": asdict(config),
        "world_size": world_size(),
        "n_parameters": model.num_parameters(),
        "n_train": n_train,
        "n_val": n_val,
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "best_val_loss": history.best_val_loss,
        "val_accuracy": best.get("val_accuracy"),
        "stopped_early": history.stopped_early,
        "wall_seconds": wall,
        "history": history.epochs,
    }


def pretrain(
    data: str | Path | JetSample,
    out: str | Path,
    *,
    config: str | PETConfig = "tiny",
    train: TrainConfig | None = None,
    val_fraction: float = 0.1,
    max_particles: int = MAX_PARTICLES,
    max_jets: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stream: bool = False,
    init: str | Path | Checkpoint | None = None,
    init_weights: bool = True,
    allow_incomplete: bool = False,
) -> dict:
    """Pretrain a PET (classifier + generator) on a multi-class jet sample.

    With ``init`` (a PET checkpoint) the run continues from that model instead: its architecture, feature
    normalisation and class list are kept, the data's classes (a subset of the checkpoint's, matched by
    name) are relabelled into that list, and training starts from its weights (``init_weights=True``:
    fine-tuning the classifier and the generator together) or from random weights with the very same
    set-up (``init_weights=False``: the from-scratch baseline).

    Args:
        data: a dataset directory or any file :func:`hepfm.data.read_jets` reads, or a sample.
        out: checkpoint directory (``config.json``, ``model.safetensors``, ``metrics.json``, ``training/``).
        config: PET size name or config; ``n_classes`` is set from the data.
        train: optimisation recipe (default :class:`TrainConfig`).
        val_fraction: held-out fraction for validation and early stopping.
        max_particles: constituents kept per jet.
        max_jets: read at most this many jets (for quick runs).
        resume: continue an interrupted run in ``out`` (same data, same recipe).
        overwrite: replace a run already in ``out``.
        stream: read a hepfm dataset directory shard by shard instead of into memory (for data
            larger than memory); every ``round(1 / val_fraction)``-th shard is held out for validation.
        init, init_weights: continue from a checkpoint (see above).
        allow_incomplete: train on an unfinished production (the shards written so far).

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    train = train or TrainConfig()
    check_fraction(val_fraction)
    check_limits(max_particles, max_jets)
    if init is not None and stream:
        raise OptionError("stream", "init and stream cannot be combined")
    cfg = None if init is not None else (config if isinstance(config, PETConfig) else PETConfig.named(config))
    start = load_checkpoint(init) if init is not None else None
    if start is not None and start.family.name != "jets":
        raise OptionError("init", f"{start.path} is a {start.family.name} checkpoint; PET pretraining needs a PET")
    out = prepare_run(out, resume=resume, overwrite=overwrite, starts_from=start.path if start else None)

    train_set: Any
    val_set: Any
    if stream:
        if isinstance(data, JetSample):
            raise OptionError("stream", "streaming reads a hepfm dataset directory, not a sample in memory")
        train_set, val_set, class_names, fingerprint = streamed(
            data,
            val_fraction,
            train.seed,
            allow_incomplete=allow_incomplete,
            max_particles=max_particles,
            normaliser=production_normaliser(data, allow_incomplete),
        )
        normaliser, source = train_set.normaliser, str(data)
        n_train, n_val = train_set.n_examples, val_set.n_examples
    else:
        sample = (
            data
            if isinstance(data, JetSample)
            else read_jets(data, max_particles=max_particles, max_jets=max_jets, allow_incomplete=allow_incomplete)
        )
        if isinstance(data, JetSample) and max_jets is not None:
            sample = sample[:max_jets]
        if start is not None:  # continuing a model: one class is enough (its generator learns that class)
            sample = in_label_space(sample, start.class_names, start.path)
        else:
            check_classes(sample)
        tr, _ = split(len(sample), val_fraction, train.seed)
        normaliser = start.normaliser if start is not None and start.normaliser else normaliser_of(data, sample, tr)
        train_set, val_set = subsets(JetDataset(sample, normaliser), val_fraction, train.seed)
        class_names, source = sample.class_names, sample.source
        fingerprint = _sample_fingerprint(sample, val_fraction)
        n_train, n_val = len(train_set), len(val_set)
    record_data(out, fingerprint, {"data": str(source)})

    if start is not None:
        cfg = PETConfig(**{**start.model_config, "generative": True})
    else:
        assert cfg is not None
        cfg = replace(cfg, n_classes=len(class_names), generative=True)
    torch.manual_seed(train.seed)
    model: Any = PET(cfg)
    if start is not None and init_weights:
        model = start.model(generative=True).train()
    meta = {
        "class_names": class_names,
        "normaliser": normaliser.to_dict(),
        "task": "pretrain",
        "init": None if start is None else {"checkpoint": str(start.path), "weights": init_weights},
        "data": str(source),
        "n_train": n_train,
        "n_val": n_val,
        "train_config": asdict(train),
        "max_particles": max_particles,
    }

    def on_best(_model, weights, epoch):
        save_checkpoint(best_dir(out), model, {**meta, "epoch": epoch}, state_dict=weights)

    history = fit(PretrainObjective(model), train_set, val_set, train, out, resume=resume, on_best=on_best)
    metrics = _summary("pretrain", model, history, n_train, n_val, history.wall_seconds, cfg)
    finish_run(out)
    write_run_metrics(out, metrics)
    return metrics


def pretrain_events(
    data: str | Path | EventSample,
    out: str | Path,
    *,
    config: str | EventGNNConfig = "default",
    task: str = "multiclass",
    train: TrainConfig | None = None,
    val_fraction: float = 0.1,
    max_events: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stream: bool = False,
    allow_incomplete: bool = False,
) -> dict:
    """Pretrain the event model on a multi-process event sample (``hepfm pretrain --model event_gnn``).

    Args:
        data: a hepfm event dataset directory (or any object-level :func:`hepfm.data.read_events` input).
        out: checkpoint directory.
        config: event-model size name (``default``, ``small``, ``tiny``) or config.
        task: ``"multiclass"`` (which process) or ``"multilabel"`` (hard-process truth labels and
            kinematic targets, :data:`hepfm.data.schema.TRUTH_LABELS` / ``TRUTH_TARGETS``).
        train: optimisation recipe.
        val_fraction: held-out fraction for validation and early stopping.
        max_events: read at most this many events per shard-ordered read (for quick runs).
        stream: read a hepfm event dataset directory shard by shard instead of into memory (for more events
            than memory holds); every ``round(1 / val_fraction)``-th shard is held out for validation.
        resume, overwrite, allow_incomplete: see :func:`pretrain`.

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    from hepfm.models.event_gnn import EventGNN, EventGNNConfig

    train = train or TrainConfig()
    check_fraction(val_fraction)
    check_limits(None, max_events, "max_events")
    if task not in EVENT_TASKS:
        raise OptionError("task", f"unknown event pretraining task {task!r}; use one of {', '.join(EVENT_TASKS)}")
    cfg = config if isinstance(config, EventGNNConfig) else EventGNNConfig.named(config)
    out = prepare_run(out, resume=resume, overwrite=overwrite)
    train_set: Any
    val_set: Any
    if stream:
        if isinstance(data, EventSample):
            raise OptionError("stream", "streaming reads a hepfm dataset directory, not a sample in memory")
        if max_events is not None:
            raise OptionError("max_events", "reads part of a sample into memory; a streamed run reads every shard")
        from hepfm.data.graphs import ShardedEventDataset

        train_set, val_set, class_names, fingerprint = streamed(
            data, val_fraction, train.seed, ShardedEventDataset, allow_incomplete=allow_incomplete
        )
        if task == "multiclass" and len(class_names) < 2:
            raise DataError(f"{data}: holds one process only ({class_names}); a classifier needs at least two")
        if val_set.layout != train_set.layout:
            raise DataError(
                f"{val_set.shards[0]}: the validation shards hold other classes or fields than the training "
                f"shards ({val_set.layout} against {train_set.layout})"
            )
        truth_names, target_names = list(train_set.truth_names), list(train_set.target_names)
        source, n_train, n_val = str(data), train_set.n_examples, val_set.n_examples
    else:
        sample = (
            data
            if isinstance(data, EventSample)
            else read_events(data, max_events=max_events, allow_incomplete=allow_incomplete)
        )
        if task == "multiclass":
            check_classes(sample)
        train_set, val_set = subsets(EVENTS.dataset(sample), val_fraction, train.seed)
        class_names, truth_names, target_names = sample.class_names, list(sample.truth_names), list(sample.target_names)
        fingerprint = _sample_fingerprint(sample, val_fraction, sample.truth, sample.targets)
        source, n_train, n_val = str(sample.source), len(train_set), len(val_set)
    if task == "multilabel" and not truth_names:
        raise DataError(f"{source}: multilabel pretraining needs generator truth (fields 'truth_*')")
    record_data(out, fingerprint, {"data": source})
    n_outputs = len(class_names) if task == "multiclass" else len(truth_names) + len(target_names)
    n_labels = 0 if task == "multiclass" else len(truth_names)
    cfg = replace(cfg, task=task, n_outputs=n_outputs, n_labels=n_labels)
    torch.manual_seed(train.seed)
    model = EventGNN(cfg)
    meta = {
        "class_names": class_names,
        "task": f"pretrain-{task}",
        "data": source,
        "truth_names": truth_names,
        "target_names": target_names,
        "n_train": n_train,
        "n_val": n_val,
        "train_config": asdict(train),
    }

    def on_best(_model, weights, epoch):
        save_checkpoint(best_dir(out), model, {**meta, "epoch": epoch}, state_dict=weights)

    history = fit(EventPretrainObjective(model, task), train_set, val_set, train, out, resume=resume, on_best=on_best)
    metrics = _summary(f"pretrain-{task}", model, history, n_train, n_val, history.wall_seconds, cfg)
    finish_run(out)
    write_run_metrics(out, metrics)
    return metrics
