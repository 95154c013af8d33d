"""Classifier metrics: ROC curve, AUC, background rejection at fixed signal efficiency, multi-class summaries.

Pure numpy, with doctests; shared by training (a fine-tune's ``metrics.json``) and every analysis."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "roc_curve",
    "roc_auc",
    "background_rejection",
    "background_passing",
    "classifier_metrics",
    "multiclass_metrics",
]


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Signal and background efficiencies for every threshold on ``scores`` (signal = label 1).

    Returns:
        (eff_b, eff_s), both increasing from 0 to 1; tied scores move together.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        raise ValueError("ROC needs both signal (1) and background (0) labels")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each group of equal scores
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (probability that a signal scores above a background).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    eff_b, eff_s = roc_curve(labels, scores)
    return float(np.trapezoid(eff_s, eff_b))


def background_rejection(labels, scores, eff_s: float) -> float:
    """1 / eff_b at signal efficiency ``eff_s`` (interpolated on the ROC curve); inf if eff_b = 0."""
    eff_b, eff_s_curve = roc_curve(labels, scores)
    b = float(np.interp(eff_s, eff_s_curve, eff_b))
    return math.inf if b <= 0 else 1.0 / b


def background_passing(labels, scores, eff_s: float) -> int:
    """Background examples that pass the cut keeping a fraction ``eff_s`` of the signal: the count a rejection
    at ``eff_s`` rests on (its relative statistical uncertainty is about one over its square root).

    >>> background_passing([0, 0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.6, 0.9, 0.5, 0.7, 0.8, 0.95], 0.5)
    1
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    cut = np.quantile(scores[labels], 1.0 - eff_s, method="lower")  # keeps at least eff_s of the signal
    return int((scores[~labels] >= cut).sum())


def classifier_metrics(labels, probabilities, signal: int = 1) -> dict[str, float | int]:
    """AUC, accuracy, rej30 and rej50 of a classifier; multi-class AUCs are signal-vs-rest.

    Also ``n_background``, the background count: where no background passes (rejection inf), the
    rejection is at least that; and ``rej30_passing``, ``rej50_passing``: the background examples that pass
    each cut (:func:`background_passing`), what each rejection rests on.

    Args:
        labels: (N,) integer labels.
        probabilities: (N, C) class probabilities.
        signal: the class counted as signal for the ROC metrics.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    is_signal = labels == signal
    score = probabilities[:, signal]
    return {
        "auc": roc_auc(is_signal, score),
        "accuracy": float((probabilities.argmax(1) == labels).mean()),
        "rej30": background_rejection(is_signal, score, 0.3),
        "rej50": background_rejection(is_signal, score, 0.5),
        "n_background": int((~is_signal).sum()),
        "rej30_passing": background_passing(is_signal, score, 0.3),
        "rej50_passing": background_passing(is_signal, score, 0.5),
    }


def multiclass_metrics(labels, probabilities, class_names: list[str]) -> dict:
    """Accuracy, one-vs-rest AUC per class and the row-normalised confusion matrix."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    pred = probabilities.argmax(1)
    n = len(class_names)
    confusion = np.zeros((n, n))
    np.add.at(confusion, (labels, pred), 1)
    confusion /= np.maximum(confusion.sum(1, keepdims=True), 1)
    aucs = {
        name: roc_auc(labels == i, probabilities[:, i])
        for i, name in enumerate(class_names)
        if 0 < (labels == i).sum() < len(labels)
    }
    return {
        "accuracy": float((pred == labels).mean()),
        "auc_per_class": aucs,
        "mean_auc": float(np.mean(list(aucs.values()))) if aucs else None,
        "confusion": confusion.tolist(),
    }
