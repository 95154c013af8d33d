"""Fine-tuning a pretrained model on a new task (``hepfm finetune``), or training the same model from scratch.

:func:`finetune` loads the checkpoint once, puts a new classification layer on its backbone — started as a
copy of the pretrained classifier's rows for the task's classes where the checkpoint knows them all, as a
linear probe of the backbone's features (:func:`probe_head`) otherwise, or at zero — trains everything with the
backbone's learning rate divided by ``lr_factor``, evaluates on a test sample and writes ``metrics.json``.
:func:`fit_classifier` is its training step, shared with OmniFold's and weak supervision's classifiers.
The recipe is a :class:`FinetuneConfig` beside the optimisation's :class:`~hepfm.train.config.TrainConfig`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from hepfm.core.errors import DataError, OptionError
from hepfm.core.io import read_json_object
from hepfm.core.metrics import classifier_metrics
from hepfm.data.schema import CLASS_ALIASES
from hepfm.models.families import family_of
from hepfm.train.checkpoint import Checkpoint, load_checkpoint, load_into, load_weights, save_checkpoint
from hepfm.train.config import History, TrainConfig, check_fields, option
from hepfm.train.device import resolve_device
from hepfm.train.inference import by_length, eval_batches, predict
from hepfm.train.loop import fit
from hepfm.train.objectives import ClassifierObjective
from hepfm.train.pretrain import check_classes
from hepfm.train.splits import split, world_size
from hepfm.train.state import (
    best_dir,
    data_fingerprint,
    finish_run,
    prepare_run,
    recipe_changes,
    record_data,
    write_run_metrics,
)

__all__ = [
    "FinetuneConfig",
    "HEAD_INITS",
    "REWEIGHTING_HEAD_INIT",
    "class_rows",
    "probe_head",
    "recipe_differences",
    "finished_run",
    "run_sources",
    "fit_classifier",
    "finetune",
]

HeadInit = Literal["auto", "classes", "probe", "zero"]
#: How a fine-tuned model's new head may start: ``classes`` takes the pretrained classifier's rows of the task's
#: classes (every one must be a class of the checkpoint), ``probe`` fits a linear probe (:func:`probe_head`),
#: ``zero`` starts at zero, ``auto`` is ``classes`` where the checkpoint's classifier knows every class, else ``probe``.
HEAD_INITS: tuple[str, ...] = get_args(HeadInit)
# OmniFold's and CWoLa's classifiers read their outputs as likelihood ratios of samples that may not differ at
# all (a closure test, a background-only region): a probe fitted to that noise would start them away from 1,
# so they start from the zero head (every ratio 1) and let early stopping on validation decide.
REWEIGHTING_HEAD_INIT: HeadInit = "zero"


@dataclass
class FinetuneConfig:
    """How a pretrained model is adapted to a new task (the optimisation itself is a :class:`TrainConfig`)."""

    from_scratch: bool = option(False, "Same model and recipe from random weights (the baseline).")
    freeze_backbone: bool = option(False, "Train only the new head (linear probing).")
    lr_factor: float = option(10.0, "Backbone learning rate = head learning rate / this.", exclusive_minimum=0)
    head_init: HeadInit = option(
        "auto",
        "New head's start: classes (the pretrained classifier's rows of the task's classes), probe (a linear "
        "probe of the backbone), zero, or auto (classes where the checkpoint knows them all, else probe).",
        choices=HEAD_INITS,
    )
    val_fraction: float = option(
        0.2, "Part of the training sample held out for early stopping.", exclusive_minimum=0, exclusive_maximum=1
    )
    n_train: int | None = option(
        None, "Use this many training examples (a random subset fixed by the seed).", minimum=1
    )
    max_particles: int | None = option(
        None, "Constituents (objects) per example; default: the checkpoint's.", minimum=1
    )
    use_jet_features: bool = option(False, "Condition the classifier on the jet features too.")
    signal: int | None = option(None, "Class counted as signal for AUC and rejections (default: the last).", minimum=0)

    def __post_init__(self) -> None:
        check_fields(self)


def _with_options(config: FinetuneConfig | None, options: dict) -> FinetuneConfig:
    names = {f.name for f in fields(FinetuneConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise OptionError(unknown[0], f"not a fine-tuning option; known: {', '.join(sorted(names))}")
    return replace(config or FinetuneConfig(), **options)


@torch.no_grad()
def _head_inputs(
    model: Any, dataset, indices: np.ndarray, device: torch.device, use_jet_features: bool, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features the head reads, labels, per-example weights) of ``dataset[indices]``, by a hook on the head."""
    family = family_of(model)
    features: list[torch.Tensor] = []
    hook = model.head.register_forward_pre_hook(lambda _m, args: features.append(args[0].float().cpu()))
    labels, weights = [], []
    try:
        model.to(device).eval()
        for batch in eval_batches(dataset, by_length(dataset, indices), batch_size, device):  # any order fits
            family.logits(model, batch, use_jet_features)
            labels.append(batch.y.cpu())
            weights.append(torch.ones(len(batch)) if batch.weight is None else batch.weight.float().cpu())
    finally:
        hook.remove()
        model.train()
    return torch.cat(features), torch.cat(labels), torch.cat(weights)


def probe_head(
    model: Any,
    dataset,
    indices: np.ndarray,
    device: str = "auto",
    use_jet_features: bool = False,
    max_iter: int = 100,
) -> float:
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


def class_rows(ckpt: Checkpoint, class_names: list[str]) -> list[int] | None:
    """Rows of the checkpoint's classification layer for ``class_names``, matched by name; None where the
    checkpoint has no class-probability head (a multilabel model) or does not know every one of the classes.

    A class the checkpoint does not know by name is matched through :data:`~hepfm.data.schema.CLASS_ALIASES`
    (``qcd`` and ``top`` are JetClass's ``QCD`` and ``Tbqq``, PFNano's ``W`` and ``Z`` its ``Wqq`` and ``Zqq``);
    two classes matching the same row count as unknown. Two rows of a pretrained multiclass head are the
    pretrained classifier of those two classes: their logit difference is its log-likelihood ratio between
    them, before any fine-tuning.
    """
    if ckpt.model_config.get("task", "multiclass") != "multiclass":
        return None
    known = list(ckpt.class_names)
    names = [_pretrained_name(name, known) for name in class_names]
    if not all(name in known for name in names) or len(set(names)) < len(names):
        return None
    return [known.index(name) for name in names]


def _pretrained_name(name: str, known: list[str]) -> str:
    """The checkpoint's class that fine-tuning class ``name`` is: itself where the checkpoint knows it, else
    its :data:`~hepfm.data.schema.CLASS_ALIASES` entry."""
    return name if name in known else CLASS_ALIASES.get(name, name)


def _head_start(head_init: str, from_scratch: bool, rows: list[int] | None) -> str:
    """The head's start, ``classes``, ``probe`` or ``zero``, given the checkpoint's rows of the task's classes
    (:func:`class_rows`). A model trained from scratch has no pretrained classifier: ``auto`` and ``classes``
    probe its features."""
    if head_init == "zero":
        return "zero"
    if head_init == "probe" or from_scratch:
        return "probe"
    return "classes" if rows is not None else "probe"


def _head_rows(config: FinetuneConfig, ckpt: Checkpoint, class_names: list[str]) -> tuple[str, list[int] | None]:
    """The head's start and, for ``classes``, the pretrained rows it takes; ``head_init="classes"`` where the
    checkpoint's classifier does not have the task's classes is refused."""
    rows = class_rows(ckpt, class_names)
    if config.head_init == "classes" and rows is None and not config.from_scratch:
        known = list(ckpt.class_names)
        names = [_pretrained_name(c, known) for c in class_names]
        missing = [c for c, name in zip(class_names, names, strict=True) if name not in known]
        if ckpt.model_config.get("task", "multiclass") != "multiclass":
            why = f"is a {ckpt.model_config.get('task')} model"
        elif missing:
            why = f"does not know {missing}"
        else:
            why = f"has one row for several of {class_names} ({names})"
        raise OptionError(
            "head_init",
            f"classes needs a multiclass checkpoint that knows every class of the data; {ckpt.path} {why}"
            " (use probe or zero)",
        )
    start = _head_start(config.head_init, config.from_scratch, rows)
    return start, rows if start == "classes" else None


def fit_classifier(
    checkpoint: str | Path | Checkpoint,
    sample,
    out: str | Path,
    config: FinetuneConfig | None = None,
    *,
    train: TrainConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    meta: dict | None = None,
    **options,
) -> tuple[nn.Module, History, float]:
    """Train a classifier on ``sample`` from a pretrained model (or the same model from scratch).

    The one fine-tuning step behind :func:`finetune`, OmniFold's and weak supervision's classifiers: a fresh
    head of ``len(sample.class_names)`` outputs on the checkpoint's backbone, the backbone at the head's
    learning rate / ``lr_factor``, early stopping on a random ``val_fraction`` of ``sample``. Per-example
    weights (``sample.weights``) weight the loss. The best weights are written to ``out`` as a checkpoint.
    The fresh head starts as the pretrained classifier's rows of the sample's classes where the checkpoint
    knows them all (``head_init="auto"``, the default, or ``"classes"``; see :func:`class_rows`), else as a
    linear probe of the backbone's features (``"probe"``, see :func:`probe_head`; the from-scratch model
    probes its random features alike), or at zero (``"zero"``).
    The wall seconds returned, and those of every epoch in the history, include the probe.

    Args:
        checkpoint: pretrained checkpoint (its architecture is used also with ``from_scratch``).
        sample: a :class:`~hepfm.data.JetSample` (PET) or :class:`~hepfm.data.EventSample` (event model).
        out: output directory of the trained classifier.
        config: the fine-tuning recipe; ``options`` override its fields (``from_scratch=True``, ...).
        train: the optimisation recipe.
        resume, overwrite: continue, or replace, a run in ``out`` (else a run there is refused).
        meta: extra fields stored in the checkpoint's ``config.json``.

    Returns:
        (model with its best weights loaded, training history, wall seconds).
    """
    train = train or TrainConfig()
    config = _with_options(config, options)
    ckpt = load_checkpoint(checkpoint)
    head_start, rows = _head_rows(config, ckpt, list(sample.class_names))
    out = prepare_run(out, resume=resume, overwrite=overwrite, starts_from=ckpt.path)
    check_classes(sample)
    record_data(
        out,
        data_fingerprint(sample.particles, sample.mask, sample.labels, sample.weights, config.val_fraction),
        {"data": str(sample.source)},
    )
    dataset = ckpt.dataset(sample)
    tr, va = split(len(sample), config.val_fraction, train.seed)

    torch.manual_seed(train.seed)
    overrides: dict[str, Any] = {"generative": False} if ckpt.family.name == "jets" else {}
    model: Any = ckpt.build(**overrides) if config.from_scratch else ckpt.model(**overrides)
    pretrained_head = [p.detach()[rows].clone() for p in (model.head.weight, model.head.bias)] if rows else None
    model.replace_head(len(sample.class_names))  # the same fresh head for both: only the backbone's start differs
    resuming = resume and (out / "training" / "latest.json").exists()  # the head comes back with the state
    probe_seconds = 0.0
    if pretrained_head is not None and not resuming:
        with torch.no_grad():
            model.head.weight.copy_(pretrained_head[0])
            model.head.bias.copy_(pretrained_head[1])
    if head_start == "probe" and not resuming:
        probe_seconds = probe_head(model, dataset, tr, train.device, config.use_jet_features)
    model.train()
    head = list(model.head.parameters())
    backbone = model.backbone_parameters()
    if config.freeze_backbone:
        for p in backbone:
            p.requires_grad_(False)
        groups = [{"params": head, "lr_scale": 1.0}]
    elif config.from_scratch:
        groups = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    else:
        groups = [{"params": head, "lr_scale": 1.0}, {"params": backbone, "lr_scale": 1.0 / config.lr_factor}]

    meta = {
        "class_names": sample.class_names,
        "normaliser": ckpt.normaliser.to_dict() if ckpt.normaliser else None,
        "task": "finetune",
        "pretrained": None if config.from_scratch else str(ckpt.path),
        "train_config": asdict(train),
        "lr_factor": config.lr_factor,
        "freeze_backbone": config.freeze_backbone,
        "use_jet_features": config.use_jet_features,
        "head_init": config.head_init,
        "head_start": head_start,
        "max_particles": config.max_particles or ckpt.max_particles,
        **(meta or {}),
    }

    def on_best(_model, weights, epoch):
        save_checkpoint(best_dir(out), model, {**meta, "epoch": epoch}, state_dict=weights)

    objective = ClassifierObjective(model, config.use_jet_features)
    history = fit(
        objective,
        Subset(dataset, tr.tolist()),
        Subset(dataset, va.tolist()),
        train,
        out,
        param_groups=groups,
        resume=resume,
        on_best=on_best,
    )
    for record in history.epochs:  # wall time from the start, the probe included
        record["wall_seconds"] += probe_seconds
    wall = history.wall_seconds  # over every process of a resumed run
    finish_run(out)
    load_into(model, load_weights(out / "model.safetensors"), out / "model.safetensors")
    return model.eval(), history, wall


# The fine-tuning options a run's metrics.json records, which a reused run must share with the one asked for.
_RECORDED_OPTIONS = ("from_scratch", "freeze_backbone", "head_init")
# What a run starts from and sees, as its metrics.json records it (see run_sources).
_SOURCES = {"start_sha256": "checkpoint weights", "train_fingerprint": "training data", "test_fingerprint": "test data"}


def _sample_fingerprint(sample) -> str:
    jets = getattr(sample, "jets", None)  # a jet sample's jet features, which use_jet_features trains on
    names = list(sample.class_names)
    return data_fingerprint(sample.particles, sample.mask, jets, sample.labels, sample.weights, names)


def _sources(ckpt: Checkpoint, sample, test) -> dict:
    return {
        "start_sha256": ckpt.config.get("weights_sha256"),
        "train_fingerprint": _sample_fingerprint(sample),
        "test_fingerprint": _sample_fingerprint(test),
        "pretrained_rows": class_rows(ckpt, list(sample.class_names)),
    }


def run_sources(checkpoint: str | Path | Checkpoint, train_data, test_data, max_particles: int | None = None) -> dict:
    """What a :func:`finetune` run starts from and sees, as its ``metrics.json`` records it: the sha256 of the
    checkpoint's weights, fingerprints of the whole training and test samples (before ``n_train`` is drawn) and
    the rows of the checkpoint's classifier that the data's classes match (:func:`class_rows`).
    :func:`recipe_differences` compares them, so that a finished run is not reused for another checkpoint,
    other data or another start of the head."""
    ckpt = load_checkpoint(checkpoint)
    return _sources(ckpt, ckpt.read(train_data, max_particles), ckpt.read(test_data, max_particles))


def recipe_differences(
    metrics: dict, train: TrainConfig, options: dict | None = None, sources: dict | None = None
) -> str | None:
    """How a finished fine-tuning (its ``metrics.json``) differs from the run asked for: the optimisation
    ``train``, the :class:`FinetuneConfig` fields in ``options`` (defaults elsewhere) and, given ``sources``
    (:func:`run_sources`), the checkpoint and data it started from. Fields a run did not record (runs from before
    they were) count as equal. None where nothing differs, else ``"key=old -> new, ..."``.
    """
    stored = metrics.get("train_config")
    found = [recipe_changes(stored, train)] if isinstance(stored, dict) else []
    defaults = FinetuneConfig()
    for key in _RECORDED_OPTIONS:
        wanted = (options or {}).get(key, getattr(defaults, key))
        if key in metrics and metrics[key] != wanted:
            found.append(f"{key}={metrics[key]!r} -> {wanted!r}")
    asked = sources or {}
    for key, what in _SOURCES.items():
        if key in metrics and key in asked and metrics[key] != asked[key]:
            found.append(f"other {what} ({key} {str(metrics[key])[:12]}... -> {str(asked[key])[:12]}...)")
    if "head_start" in metrics and "pretrained_rows" in asked:  # the same head_init may start the head elsewhere
        wanted = {k: (options or {}).get(k, getattr(defaults, k)) for k in ("head_init", "from_scratch")}
        start = _head_start(wanted["head_init"], wanted["from_scratch"], asked["pretrained_rows"])
        if metrics["head_start"] != start and metrics.get("head_init") in (None, wanted["head_init"]):
            found.append(f"head_start={metrics['head_start']!r} -> {start!r}")
    return ", ".join(c for c in found if c) or None


def finished_run(run: str | Path, train: TrainConfig, options: dict, sources: dict) -> dict | None:
    """The ``metrics.json`` of a fine-tuning finished in ``run`` with the recipe ``train`` and ``options``, from
    the checkpoint and on the data of ``sources`` (:func:`run_sources`); None if there is none to reuse."""
    run = Path(run)
    if not (run / "metrics.json").exists() or not (run / "model.safetensors").exists():
        return None
    metrics = read_json_object(run / "metrics.json")
    if not isinstance(metrics.get("train_config"), dict) or recipe_differences(metrics, train, options, sources):
        return None
    return metrics


def finetune(
    checkpoint: str | Path | Checkpoint,
    train_data,
    test_data,
    out: str | Path,
    config: FinetuneConfig | None = None,
    *,
    train: TrainConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **options,
) -> dict:
    """Fine-tune a pretrained model (or train the same model from scratch) and evaluate it.

    Works alike for the jet model (PET; jet data any :func:`hepfm.data.read_jets` format) and the event
    model (event data any :func:`hepfm.data.read_events` object format); the checkpoint decides.

    Args:
        checkpoint: pretrained checkpoint (its architecture and normalisation are used also with
            ``from_scratch``, so both start from the same recipe).
        train_data, test_data: files or directories the readers read, or samples.
        out: output directory (checkpoint of the fine-tuned model and ``metrics.json``).
        config: the fine-tuning recipe (:class:`FinetuneConfig`); ``options`` override its fields.
        train: optimisation recipe; ``train.lr`` is the head's learning rate.
        resume: continue an interrupted run in ``out`` (the same data and recipe).
        overwrite: replace a run already in ``out``.

    Returns:
        The metrics written to ``out/metrics.json``: ``auc, accuracy, rej30, rej50``, epochs, wall time,
        and the per-epoch history.
    """
    train = train or TrainConfig()
    config = _with_options(config, options)
    ckpt = load_checkpoint(checkpoint)
    prepare_run(out, resume=resume, overwrite=overwrite, starts_from=ckpt.path)
    sample = ckpt.read(train_data, config.max_particles)
    test = ckpt.read(test_data, config.max_particles)
    if test.class_names != sample.class_names:
        raise DataError(
            f"{test.source}: class names {test.class_names} differ from the training sample's "
            f"{sample.class_names} ({sample.source})"
        )
    sources = _sources(ckpt, sample, test)  # before n_train is drawn: what run_sources gives for these data
    if config.n_train is not None:
        if config.n_train > len(sample):
            raise DataError(f"{sample.source}: {len(sample)} examples, fewer than n_train={config.n_train}")
        sample = sample[np.sort(np.random.default_rng(train.seed).permutation(len(sample))[: config.n_train])]
    check_classes(sample)
    check_classes(test, "test")
    head_start = _head_rows(config, ckpt, list(sample.class_names))[0]
    signal = len(sample.class_names) - 1 if config.signal is None else config.signal
    if signal >= len(sample.class_names):
        raise OptionError("signal", f"class {signal} does not exist; the classes are {sample.class_names}")
    model, history, wall = fit_classifier(
        ckpt, sample, out, config, train=train, resume=resume, overwrite=False if resume else True
    )
    probabilities = predict(
        model, ckpt.dataset(test), device=train.device, use_jet_features=config.use_jet_features, across_ranks=True
    )
    n_val = len(split(len(sample), config.val_fraction, train.seed)[1])
    metrics = {
        **classifier_metrics(test.labels, probabilities, signal=signal),
        "signal": sample.class_names[signal],
        "class_names": sample.class_names,
        "from_scratch": config.from_scratch,
        "freeze_backbone": config.freeze_backbone,
        "head_init": config.head_init,
        "head_start": head_start,
        "seed": train.seed,
        "world_size": world_size(),
        "n_train": len(sample) - n_val,
        "n_val": n_val,
        "n_test": len(test),
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "best_val_loss": history.best_val_loss,
        "stopped_early": history.stopped_early,
        "wall_seconds": wall,
        "history": history.epochs,
        "train_config": asdict(train),
        **sources,
    }
    write_run_metrics(out, metrics)
    return metrics
