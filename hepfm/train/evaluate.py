"""Evaluating checkpoints on samples they have not seen: class probabilities, and for a multilabel event model
how well it predicts the hard-process truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hepfm.core.errors import CheckpointError, DataError
from hepfm.core.metrics import roc_auc
from hepfm.data.sample import EventSample, JetSample
from hepfm.train.checkpoint import Checkpoint, load_checkpoint
from hepfm.train.inference import model_outputs

__all__ = ["evaluate_checkpoint", "evaluate_truth"]


def evaluate_checkpoint(
    checkpoint: str | Path | Checkpoint, data: Any, device: str = "auto"
) -> tuple[np.ndarray, JetSample | EventSample, Checkpoint]:
    """Class probabilities of a checkpoint's classifier on a sample with the checkpoint's classes.

    For an event checkpoint, a sample with other class names (a NanoAOD file, say) is accepted: the
    probabilities are over the checkpoint's classes.

    Returns:
        (probabilities (N, C), the sample, the checkpoint).
    """
    ckpt = load_checkpoint(checkpoint)
    sample = ckpt.read(data)
    if ckpt.family.name == "jets":
        ckpt.check_classes(sample)
    return ckpt.predict(sample, device=device), sample, ckpt


def evaluate_truth(checkpoint: str | Path | Checkpoint, data: Any, device: str = "auto", batch_size: int = 512) -> dict:
    """How well a multilabel event checkpoint predicts the hard-process truth of events it has not seen.

    Returns:
        ``{"auc_per_label", "label_accuracy", "target_correlation", "mean_predicted", "truth_fraction"}``:
        one-vs-rest AUC of every truth label present with both values, the fraction of labels predicted
        right, the Pearson correlation of predicted and true log(1 + target / 10 GeV) (targets that vary),
        and per label the mean predicted probability next to the fraction of events that have it.
    """
    ckpt = load_checkpoint(checkpoint)
    if ckpt.model_config.get("task") != "multilabel":
        raise CheckpointError(f"{ckpt.path}: not a multilabel checkpoint (task {ckpt.model_config.get('task')!r})")
    sample = ckpt.read(data)
    if sample.truth is None:
        raise DataError(f"{sample.source}: no generator truth to compare with")
    dataset = ckpt.dataset(sample)
    out = model_outputs(ckpt.model(), dataset, batch_size, device)
    n_labels = len(sample.truth_names)
    scores, truth = out[:, :n_labels], sample.truth
    aucs = {
        name: roc_auc(truth[:, k], scores[:, k])
        for k, name in enumerate(sample.truth_names)
        if 0 < truth[:, k].sum() < len(truth)
    }
    targets = dataset.targets.numpy()
    corr = {
        name: float(np.corrcoef(out[:, n_labels + k], targets[:, k])[0, 1])
        for k, name in enumerate(sample.target_names)
        if targets[:, k].std() > 0
    }
    mean_predicted = dict(zip(sample.truth_names, (1 / (1 + np.exp(-scores))).mean(0).tolist(), strict=True))
    return {
        "auc_per_label": aucs,
        "label_accuracy": float(((scores > 0) == (truth > 0.5)).mean()),
        "target_correlation": corr,
        "mean_predicted": mean_predicted,
        "truth_fraction": dict(zip(sample.truth_names, truth.mean(0).tolist(), strict=True)),
    }
