"""The recipes behind ``hepfm pretrain`` and ``hepfm finetune``, for the jet and the event model.

``pretrain`` trains a PET on a labelled multi-class jet sample with the OmniLearn objective and
writes a checkpoint directory. ``finetune`` loads that backbone, puts a new classification layer on
it and trains everything with the backbone's learning rate divided by ``lr_factor`` (or, with
``from_scratch=True``, the same architecture and recipe from random weights), then evaluates on a
test sample and writes ``metrics.json``. ``pretrain_events`` trains the event model (multiclass or
multilabel); ``finetune`` and ``evaluate_checkpoint`` take either kind of checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from hepfm.analysis.metrics import classifier_metrics, write_metrics
from hepfm.data import DataError, EventSample, FeatureNormaliser, JetDataset, JetSample, read_events, read_jets
from hepfm.data.datasets import ShardedJetDataset
from hepfm.data.storage import read_manifest
from hepfm.models.pet import PET, PETConfig
from hepfm.train.checkpoint import (
    load_checkpoint,
    load_into,
    load_weights,
    model_classes,
    read_checkpoint_config,
    save_checkpoint,
)
from hepfm.train.loop import History, TrainConfig, fit, resolve_device, to_device
from hepfm.train.objectives import ClassifierObjective, EventPretrainObjective, PretrainObjective, logits_and_labels

if TYPE_CHECKING:
    from hepfm.models.event_gnn import EventGNNConfig

__all__ = ["pretrain", "pretrain_events", "in_label_space", "checkpoint_normaliser", "probe_head", "fit_classifier",
           "finetune", "predict", "model_outputs", "split", "evaluate_checkpoint", "evaluate_truth"]


def _streamed(data, val_fraction: float, max_particles: int, seed: int):
    """Train/validation ShardedJetDatasets over disjoint shards of a hepfm dataset directory."""
    from hepfm.data.storage import iter_jet_shards, shard_paths

    path = Path(data)
    shards = shard_paths(path)
    every = max(2, round(1 / val_fraction))
    val_shards = shards[every - 1::every]
    train_shards = [s for s in shards if s not in val_shards]
    if not val_shards or not train_shards:
        raise DataError(f"{path}: {len(shards)} shard(s) cannot be split into training and validation shards")
    class_names = next(iter_jet_shards(shards[0]))[2]["class_names"]
    rank, world = (torch.distributed.get_rank(), _world_size()) if torch.distributed.is_initialized() else (0, 1)
    rank = int(os.environ.get("RANK", rank))
    world = int(os.environ.get("WORLD_SIZE", world))
    common = dict(max_particles=max_particles, rank=rank, world_size=world)
    train = ShardedJetDataset(path, shards=train_shards, seed=seed, **common)  # reads dataset.json's normalisation
    val = ShardedJetDataset(path, shards=val_shards, normaliser=train.normaliser, **common)
    return train, val, class_names, train.normaliser, str(path)


def _world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, validation) index arrays, fixed by ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _as_sample(data, max_particles: int, max_jets: int | None = None) -> JetSample:
    if isinstance(data, JetSample):
        return data if max_jets is None else data[:max_jets]
    return read_jets(data, max_particles=max_particles, max_jets=max_jets)


def pretrain(
    data: str | Path | JetSample,
    out: str | Path,
    *,
    config: str | PETConfig = "tiny",
    train: TrainConfig | None = None,
    val_fraction: float = 0.1,
    max_particles: int = 128,
    max_jets: int | None = None,
    resume: bool = False,
    stream: bool = False,
    init: str | Path | None = None,
    init_weights: bool = True,
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
        resume: continue an interrupted run in ``out``.
        stream: read a hepfm dataset directory shard by shard instead of into memory (for data
            larger than memory); every ``round(1 / val_fraction)``-th shard is held out for validation.
        init, init_weights: continue from a checkpoint (see above).

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    train = train or TrainConfig()
    out = Path(out)
    init_config = read_checkpoint_config(init) if init is not None else None
    if init_config is not None and stream:
        raise ValueError("init and stream cannot be combined")
    if stream:
        train_set, val_set, class_names, normaliser, source = _streamed(data, val_fraction, max_particles, train.seed)
    elif init_config is not None:
        sample = in_label_space(_as_sample(data, max_particles, max_jets), init_config["class_names"], init)
        normaliser = FeatureNormaliser.from_dict(init_config["normaliser"], str(Path(init) / "config.json"))
        tr, va = split(len(sample), val_fraction, train.seed)
        dataset = JetDataset(sample, normaliser)
        train_set, val_set = Subset(dataset, tr), Subset(dataset, va)
        class_names, source = sample.class_names, sample.source
    else:
        sample = _as_sample(data, max_particles, max_jets)
        is_dir = isinstance(data, str | Path) and Path(data).is_dir()
        stored = read_manifest(data).get("normalisation") if is_dir else None
        tr, va = split(len(sample), val_fraction, train.seed)
        normaliser = FeatureNormaliser.from_dict(stored) if stored else FeatureNormaliser.fit(sample[tr])
        dataset = JetDataset(sample, normaliser)
        train_set, val_set = Subset(dataset, tr), Subset(dataset, va)
        class_names, source = sample.class_names, sample.source
    if init_config is not None:
        cfg = PETConfig(**{**init_config["model_config"], "generative": True})
    else:
        cfg = config if isinstance(config, PETConfig) else PETConfig.named(config)
        cfg = replace(cfg, n_classes=len(class_names), generative=True)
    torch.manual_seed(train.seed)
    model = PET(cfg)
    if init_config is not None and init_weights:
        model = load_checkpoint(init, generative=True)[0].train()
    n_train, n_val = (d.n_jets if isinstance(d, ShardedJetDataset) else len(d) for d in (train_set, val_set))
    meta = {"class_names": class_names, "normaliser": normaliser.to_dict(), "task": "pretrain",
            "init": None if init is None else {"checkpoint": str(init), "weights": init_weights},
            "data": str(source), "n_train": n_train, "n_val": n_val, "train_config": asdict(train),
            "max_particles": max_particles}

    def on_best(_model, weights, epoch):
        save_checkpoint(out, model, "pet", {**meta, "epoch": epoch}, state_dict=weights)

    start = time.perf_counter()
    history = fit(PretrainObjective(model), train_set, val_set, train, out, resume=resume, on_best=on_best)
    best = history.epochs[history.best_epoch]
    metrics = {"task": "pretrain", "config": asdict(cfg), "world_size": _world_size(),
               "n_parameters": model.num_parameters(),
               "n_train": n_train, "n_val": n_val, "epochs_run": len(history.epochs),
               "best_epoch": history.best_epoch, "best_val_loss": history.best_val_loss,
               "val_accuracy": best.get("val_accuracy"), "stopped_early": history.stopped_early,
               "wall_seconds": time.perf_counter() - start, "history": history.epochs}
    write_metrics(out, metrics)
    return metrics


def in_label_space(sample: JetSample, class_names: list[str], source: str | Path = "the checkpoint") -> JetSample:
    """The sample relabelled into ``class_names`` (its classes must all be among them)."""
    missing = [c for c in sample.class_names if c not in class_names]
    if missing:
        raise DataError(f"{sample.source}: classes {missing} are not among the classes of {source}: {class_names}")
    mapping = np.array([class_names.index(c) for c in sample.class_names])
    out = sample[np.arange(len(sample))]
    out.labels, out.class_names = mapping[sample.labels], list(class_names)
    return out


def _by_length(dataset, indices) -> np.ndarray:
    """``indices`` sorted by the examples' lengths (particles per jet) where the dataset knows them, so that
    batches of them carry little padding; unchanged otherwise."""
    indices = np.asarray(indices)
    lengths = getattr(dataset, "lengths", None)
    if lengths is None:
        return indices
    return indices[np.argsort(np.asarray(lengths)[indices], kind="stable")]


def _eval_batches(dataset, indices, batch_size: int, device: torch.device):
    """Batches of ``dataset[indices]`` (jets or event graphs), in the order of ``indices``, on ``device``."""
    for start in range(0, len(indices), batch_size):
        yield to_device(dataset.collate([dataset[int(i)] for i in indices[start:start + batch_size]]), device)


@torch.no_grad()
def model_outputs(model: torch.nn.Module, dataset, batch_size: int = 512, device: str = "auto",
                  use_jet_features: bool = False) -> np.ndarray:
    """The head's raw outputs (N, K) over a dataset (jets or event graphs), in order."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    order = _by_length(dataset, np.arange(len(dataset)))
    out = [logits_and_labels(model, batch, use_jet_features)[0].float().cpu()
           for batch in _eval_batches(dataset, order, batch_size, dev)]
    if not out:
        return np.zeros((0, model.head.out_features), dtype=np.float32)
    result = np.empty((len(order), out[0].shape[1]), dtype=np.float32)
    result[order] = torch.cat(out).numpy()
    return result


def predict(model: torch.nn.Module, dataset, batch_size: int = 512, device: str = "auto",
            use_jet_features: bool = False) -> np.ndarray:
    """Class probabilities (N, C) of a dataset (jets or event graphs), in order."""
    logits = torch.from_numpy(model_outputs(model, dataset, batch_size, device, use_jet_features))
    return torch.softmax(logits, -1).numpy()


def _is_events(ckpt_config: dict) -> bool:
    return ckpt_config["model"] == "event_gnn"


def checkpoint_normaliser(checkpoint: str | Path) -> FeatureNormaliser | None:
    """The feature normalisation a jet checkpoint's model reads its inputs with (None for the event model)."""
    config = read_checkpoint_config(checkpoint)
    if _is_events(config):
        return None
    return FeatureNormaliser.from_dict(config["normaliser"], str(Path(checkpoint) / "config.json"))


def _read_for(ckpt_config: dict, data, max_particles: int):
    """A sample of the kind the checkpoint's model reads: jets for PET, events for the event model."""
    if not _is_events(ckpt_config):
        return _as_sample(data, max_particles)
    if isinstance(data, EventSample):
        return data
    return read_events(data, max_particles=max_particles)


def _dataset_for(ckpt_config: dict, sample, normaliser):
    if _is_events(ckpt_config):
        from hepfm.data.graphs import EventGraphDataset

        return EventGraphDataset(sample)
    return JetDataset(sample, normaliser)


HEAD_INITS = ("probe", "zero")
# OmniFold's and CWoLa's classifiers read their outputs as likelihood ratios of samples that may not differ at
# all (a closure test, a background-only region): a probe fitted to that noise would start them away from 1,
# so they start from the zero head (every ratio 1) and let early stopping on validation decide.
REWEIGHTING_HEAD_INIT = "zero"


@torch.no_grad()
def _head_inputs(model: torch.nn.Module, dataset, indices: np.ndarray, device: torch.device,
                 use_jet_features: bool, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features the head reads, labels, per-example weights) of ``dataset[indices]``, by a hook on the head."""
    features: list[torch.Tensor] = []
    hook = model.head.register_forward_pre_hook(lambda _m, args: features.append(args[0].float().cpu()))
    labels, weights = [], []
    try:
        model.to(device).eval()
        for batch in _eval_batches(dataset, _by_length(dataset, indices), batch_size, device):  # any order fits
            _, y = logits_and_labels(model, batch, use_jet_features)
            labels.append(y.cpu())
            jet_batch = isinstance(batch, list | tuple) and len(batch) == 5
            weights.append(batch[4].float().cpu() if jet_batch else torch.ones(len(y)))
    finally:
        hook.remove()
        model.train()
    return torch.cat(features), torch.cat(labels), torch.cat(weights)


def probe_head(model: torch.nn.Module, dataset, indices: np.ndarray, device: str = "auto",
               use_jet_features: bool = False, max_iter: int = 100) -> float:
    """Set the classification layer to a linear probe: weighted logistic regression on the backbone's features.

    The features the head reads are computed once over ``dataset[indices]`` (the training split) and a
    multinomial logistic regression with an L2 penalty of 1 / (2 N) per squared weight (scikit-learn's ``C = 1``)
    is fitted with L-BFGS in double precision; the result is written into ``model.head``. The penalty acts on the
    features' own scale, so directions in which the features hardly vary (a random backbone's) get small
    weights rather than large ones that the first updates of the backbone would blow up. Fine-tuning
    then starts from a head that already reads the backbone, instead of a zero layer that Adam's bounded steps
    take many updates to grow (linear probing then fine-tuning: Kumar et al., arXiv 2202.10054).

    Returns:
        Wall seconds spent.
    """
    start = time.perf_counter()
    z, y, w = _head_inputs(model, dataset, indices, resolve_device(device), use_jet_features)
    z, w = z.double(), (w / w.mean().clamp_min(1e-12)).double()
    mean = z.mean(0)
    zc = z - mean
    n_out = model.head.out_features
    weight = torch.zeros(n_out, z.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_out, dtype=torch.float64, requires_grad=True)
    l2 = 1.0 / max(len(y), 1)
    lbfgs = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        with torch.enable_grad():
            loss = (w * F.cross_entropy(zc @ weight.T + bias, y, reduction="none")).mean()
            loss = loss + 0.5 * l2 * (weight**2).sum()
            loss.backward()
        return loss

    with torch.enable_grad():
        lbfgs.step(closure)
    with torch.no_grad():
        model.head.weight.copy_(weight.detach().to(model.head.weight))
        model.head.bias.copy_((bias.detach() - weight.detach() @ mean).to(model.head.bias))
    return time.perf_counter() - start


def fit_classifier(
    checkpoint: str | Path,
    sample,
    out: str | Path,
    *,
    from_scratch: bool = False,
    train: TrainConfig | None = None,
    lr_factor: float = 10.0,
    freeze_backbone: bool = False,
    val_fraction: float = 0.2,
    use_jet_features: bool = False,
    head_init: str = "probe",
    resume: bool = False,
    meta: dict | None = None,
) -> tuple[torch.nn.Module, History, float]:
    """Train a classifier on ``sample`` from a pretrained model (or the same model from scratch).

    The one fine-tuning step behind :func:`finetune`, OmniFold's and weak supervision's classifiers: a fresh
    head of ``len(sample.class_names)`` outputs on the checkpoint's backbone, the backbone at the head's
    learning rate / ``lr_factor``, early stopping on a random ``val_fraction`` of ``sample``. Per-example
    weights (``sample.weights``) weight the loss. The best weights are written to ``out`` as a checkpoint.
    The fresh head starts as a linear probe of the backbone's features (``head_init="probe"``, see
    :func:`probe_head`; the from-scratch model probes its random features alike) or at zero (``"zero"``).
    The wall seconds returned, and those of every epoch in the history, include the probe.

    Args:
        checkpoint: pretrained checkpoint directory (its architecture is used also with ``from_scratch``).
        sample: a :class:`JetSample` (PET) or :class:`EventSample` (event model) with the checkpoint's inputs.
        out: output directory of the trained classifier.
        meta: extra fields stored in the checkpoint's ``config.json``.
        Others: see :func:`finetune`.

    Returns:
        (model with its best weights loaded, training history, wall seconds).
    """
    train = train or TrainConfig()
    if head_init not in HEAD_INITS:
        raise ValueError(f"head_init must be one of {HEAD_INITS}, not {head_init!r}")
    out = Path(out)
    ckpt_config = read_checkpoint_config(checkpoint)
    events = _is_events(ckpt_config)
    normaliser = checkpoint_normaliser(checkpoint)
    dataset = _dataset_for(ckpt_config, sample, normaliser)
    tr, va = split(len(sample), val_fraction, train.seed)

    torch.manual_seed(train.seed)
    overrides = {} if events else {"generative": False}
    if from_scratch:
        cls, cfg_cls = model_classes(ckpt_config["model"])
        model = cls(cfg_cls(**{**ckpt_config["model_config"], **overrides}))
    else:
        model, _ = load_checkpoint(checkpoint, **overrides)
    model.replace_head(len(sample.class_names))  # the same fresh head for both: only the backbone's start differs
    start = time.perf_counter()
    resuming = resume and (out / "training" / "latest.json").exists()  # the head comes back with the state
    probe_seconds = 0.0
    if head_init == "probe" and not resuming:
        probe_seconds = probe_head(model, dataset, tr, train.device, use_jet_features)
    model.train()
    head = list(model.head.parameters())
    backbone = model.backbone_parameters()
    if freeze_backbone:
        for p in backbone:
            p.requires_grad_(False)
        groups = [{"params": head, "lr_scale": 1.0}]
    elif from_scratch:
        groups = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    else:
        groups = [{"params": head, "lr_scale": 1.0}, {"params": backbone, "lr_scale": 1.0 / lr_factor}]

    meta = {"class_names": sample.class_names, "normaliser": normaliser.to_dict() if normaliser else None,
            "task": "finetune",
            "pretrained": None if from_scratch else str(checkpoint), "train_config": asdict(train),
            "lr_factor": lr_factor, "freeze_backbone": freeze_backbone, "use_jet_features": use_jet_features,
            "head_init": head_init, **(meta or {})}

    def on_best(_model, weights, epoch):
        save_checkpoint(out, model, ckpt_config["model"], {**meta, "epoch": epoch}, state_dict=weights)

    history = fit(ClassifierObjective(model, use_jet_features), Subset(dataset, tr), Subset(dataset, va), train,
                  out, param_groups=groups, resume=resume, on_best=on_best)
    wall = time.perf_counter() - start
    for record in history.epochs:  # wall time from the start, the probe included
        record["wall_seconds"] += probe_seconds
    load_into(model, load_weights(out / "model.safetensors"), out / "model.safetensors")
    return model.eval(), history, wall


def finetune(
    checkpoint: str | Path,
    train_data: str | Path | JetSample,
    test_data: str | Path | JetSample,
    out: str | Path,
    *,
    from_scratch: bool = False,
    train: TrainConfig | None = None,
    lr_factor: float = 10.0,
    freeze_backbone: bool = False,
    val_fraction: float = 0.2,
    max_particles: int | None = None,
    n_train: int | None = None,
    use_jet_features: bool = False,
    head_init: str = "probe",
    signal: int | None = None,
    resume: bool = False,
) -> dict:
    """Fine-tune a pretrained model (or train the same model from scratch) and evaluate it.

    Works alike for the jet model (PET; jet data any :func:`hepfm.data.read_jets` format) and the event
    model (event data any :func:`hepfm.data.read_events` object format); the checkpoint decides.

    Args:
        checkpoint: pretrained checkpoint directory (its architecture and normalisation are used
            also with ``from_scratch``, so both start from the same recipe).
        train_data, test_data: files or directories the readers read, or samples.
        out: output directory (checkpoint of the fine-tuned model and ``metrics.json``).
        from_scratch: random initial weights instead of the pretrained backbone.
        train: optimisation recipe; ``train.lr`` is the head's learning rate.
        lr_factor: backbone learning rate = head learning rate / lr_factor (pretrained only).
        freeze_backbone: train only the new head (linear probing).
        val_fraction: part of the training sample held out for early stopping.
        max_particles: constituents kept per jet (default 128); for the event model objects per event
            (default all).
        n_train: use a random subset of this many training jets (events) (fixed by ``train.seed``).
        use_jet_features: condition the classifier on the jet features too.
        head_init: ``"probe"`` (the new head starts as a linear probe of the backbone) or ``"zero"``.
        signal: class treated as signal for AUC and rejections (default: the last class).
        resume: continue an interrupted run in ``out``.

    Returns:
        The metrics written to ``out/metrics.json``: ``auc, accuracy, rej30, rej50``, epochs, wall time,
        and the per-epoch history.
    """
    train = train or TrainConfig()
    ckpt_config = read_checkpoint_config(checkpoint)
    events = _is_events(ckpt_config)
    if max_particles is None:
        max_particles = 700 if events else 128  # objects: every object the reader gives
    sample = _read_for(ckpt_config, train_data, max_particles)
    test = _read_for(ckpt_config, test_data, max_particles)
    if test.class_names != sample.class_names:
        raise DataError(f"{test.source}: class names {test.class_names} differ from the training sample's "
                        f"{sample.class_names} ({sample.source})")
    if n_train is not None:
        if n_train > len(sample):
            raise DataError(f"{sample.source}: {len(sample)} jets, fewer than n_train={n_train}")
        sample = sample[np.sort(np.random.default_rng(train.seed).permutation(len(sample))[:n_train])]
    signal = len(sample.class_names) - 1 if signal is None else signal
    model, history, wall = fit_classifier(
        checkpoint, sample, out, from_scratch=from_scratch, train=train, lr_factor=lr_factor,
        freeze_backbone=freeze_backbone, val_fraction=val_fraction, use_jet_features=use_jet_features,
        head_init=head_init, resume=resume, meta={"max_particles": max_particles})
    test_set = _dataset_for(ckpt_config, test, checkpoint_normaliser(checkpoint))
    probabilities = predict(model, test_set, device=train.device, use_jet_features=use_jet_features)
    n_val = len(split(len(sample), val_fraction, train.seed)[1])
    metrics = {
        **classifier_metrics(test.labels, probabilities, signal=signal),
        "signal": sample.class_names[signal], "class_names": sample.class_names,
        "from_scratch": from_scratch, "freeze_backbone": freeze_backbone, "head_init": head_init, "seed": train.seed,
        "world_size": _world_size(),
        "n_train": len(sample) - n_val, "n_val": n_val, "n_test": len(test), "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch, "best_val_loss": history.best_val_loss,
        "stopped_early": history.stopped_early, "wall_seconds": wall, "history": history.epochs,
        "train_config": asdict(train),
    }
    write_metrics(out, metrics)
    return metrics


def evaluate_checkpoint(checkpoint: str | Path, data, device: str = "auto",
                        max_particles: int = 128) -> tuple[np.ndarray, JetSample | EventSample, dict]:
    """Class probabilities of a checkpoint's classifier on a sample with the checkpoint's classes.

    For an event checkpoint, a sample with other class names (a NanoAOD file, say) is accepted: the
    probabilities are over the checkpoint's classes.

    Returns:
        (probabilities (N, C), the sample, the checkpoint's config.json).
    """
    config = read_checkpoint_config(checkpoint)
    events = _is_events(config)
    if events:
        if config["model_config"]["task"] != "multiclass":
            raise DataError(f"{checkpoint}: a {config['model_config']['task']} checkpoint has no class probabilities")
        model, config = load_checkpoint(checkpoint)
    else:
        model, config = load_checkpoint(checkpoint, generative=False)
    sample = _read_for(config, data, 700 if events else max_particles)
    if not events and sample.class_names != config["class_names"]:
        raise DataError(f"{sample.source}: classes {sample.class_names} differ from the checkpoint's "
                        f"{config['class_names']} ({checkpoint})")
    dataset = _dataset_for(config, sample, checkpoint_normaliser(checkpoint))
    return predict(model, dataset, device=device), sample, config


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
) -> dict:
    """Pretrain the event model on a multi-process event sample (``hepfm pretrain --model event_gnn``).

    Args:
        data: a hepfm event dataset directory (or any object-level :func:`hepfm.data.read_events` input).
        out: checkpoint directory.
        config: event-model size name (``default``, ``small``, ``tiny``) or config.
        task: ``"multiclass"`` (which process) or ``"multilabel"`` (hard-process truth labels and
            kinematic targets, :data:`hepfm.data.events.TRUTH_LABELS` / ``TRUTH_TARGETS``).
        train: optimisation recipe.
        val_fraction: held-out fraction for validation and early stopping.
        max_events: read at most this many events per shard-ordered read (for quick runs).
        resume: continue an interrupted run in ``out``.

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    from hepfm.data.graphs import EventGraphDataset
    from hepfm.models.event_gnn import EventGNN, EventGNNConfig

    train = train or TrainConfig()
    out = Path(out)
    sample = data if isinstance(data, EventSample) else read_events(data, max_events=max_events)
    if task == "multilabel" and sample.truth is None:
        raise DataError(f"{sample.source}: multilabel pretraining needs generator truth (fields 'truth_*')")
    cfg = config if isinstance(config, EventGNNConfig) else EventGNNConfig.named(config)
    n_outputs = len(sample.class_names) if task == "multiclass" else len(sample.truth_names) + len(sample.target_names)
    n_labels = 0 if task == "multiclass" else len(sample.truth_names)
    cfg = replace(cfg, task=task, n_outputs=n_outputs, n_labels=n_labels)
    dataset = EventGraphDataset(sample)
    tr, va = split(len(sample), val_fraction, train.seed)
    torch.manual_seed(train.seed)
    model = EventGNN(cfg)
    meta = {"class_names": sample.class_names, "task": f"pretrain-{task}", "data": str(sample.source),
            "truth_names": list(sample.truth_names), "target_names": list(sample.target_names),
            "n_train": len(tr), "n_val": len(va), "train_config": asdict(train)}

    def on_best(_model, weights, epoch):
        save_checkpoint(out, model, "event_gnn", {**meta, "epoch": epoch}, state_dict=weights)

    start = time.perf_counter()
    history = fit(EventPretrainObjective(model, task), Subset(dataset, tr), Subset(dataset, va), train, out,
                  resume=resume, on_best=on_best)
    best = history.epochs[history.best_epoch]
    metrics = {"task": f"pretrain-{task}", "config": asdict(cfg), "world_size": _world_size(),
               "n_parameters": model.num_parameters(), "n_train": len(tr), "n_val": len(va),
               "epochs_run": len(history.epochs), "best_epoch": history.best_epoch,
               "best_val_loss": history.best_val_loss, "val_accuracy": best.get("val_accuracy"),
               "stopped_early": history.stopped_early, "wall_seconds": time.perf_counter() - start,
               "history": history.epochs}
    write_metrics(out, metrics)
    return metrics


@torch.no_grad()
def evaluate_truth(checkpoint: str | Path, data, device: str = "auto", batch_size: int = 512) -> dict:
    """How well a multilabel event checkpoint predicts the hard-process truth of events it has not seen.

    Returns:
        ``{"auc_per_label", "label_accuracy", "target_correlation", "mean_predicted", "truth_fraction"}``:
        one-vs-rest AUC of every truth label present with both values, the fraction of labels predicted
        right, the Pearson correlation of predicted and true log(1 + target / 10 GeV) (targets that vary),
        and per label the mean predicted probability next to the fraction of events that have it.
    """
    from hepfm.analysis.metrics import roc_auc
    from hepfm.data.graphs import EventGraphDataset

    model, config = load_checkpoint(checkpoint)
    if config["model_config"]["task"] != "multilabel":
        raise DataError(f"{checkpoint}: not a multilabel checkpoint (task {config['model_config']['task']!r})")
    sample = data if isinstance(data, EventSample) else read_events(data)
    if sample.truth is None:
        raise DataError(f"{sample.source}: no generator truth to compare with")
    dataset = EventGraphDataset(sample)
    out = model_outputs(model, dataset, batch_size, device)
    n_labels = len(sample.truth_names)
    scores, truth = out[:, :n_labels], sample.truth
    aucs = {name: roc_auc(truth[:, k], scores[:, k]) for k, name in enumerate(sample.truth_names)
            if 0 < truth[:, k].sum() < len(truth)}
    targets = dataset.targets.numpy()
    corr = {name: float(np.corrcoef(out[:, n_labels + k], targets[:, k])[0, 1])
            for k, name in enumerate(sample.target_names) if targets[:, k].std() > 0}
    mean_predicted = dict(zip(sample.truth_names, (1 / (1 + np.exp(-scores))).mean(0).tolist(), strict=True))
    return {"auc_per_label": aucs, "label_accuracy": float(((scores > 0) == (truth > 0.5)).mean()),
            "target_correlation": corr, "mean_predicted": mean_predicted,
            "truth_fraction": dict(zip(sample.truth_names, truth.mean(0).tolist(), strict=True))}
