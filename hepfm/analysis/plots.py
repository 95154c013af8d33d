"""Plots in the field's style: mplhep (CMS style) over ``hist`` histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hist
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from hepfm.data.sample import JetSample

__all__ = ["use_style", "compare_classes", "save", "SavedFigure", "scan_plot", "convergence_plot", "training_curves"]

_AXES = {
    "mass": ("Jet mass [GeV]", 40, 0.0, 300.0),
    "n_particles": ("Constituents", 40, 0.0, 160.0),
    "pt": ("Jet $p_T$ [GeV]", 40, 400.0, 1100.0),
}


def use_style() -> None:
    """Apply the CMS mplhep style to every later figure."""
    hep.style.use("CMS")


def compare_classes(samples: dict[str, JetSample], feature: str, classes: list[str] | None = None, ncols: int = 5):
    """Density histograms of one jet feature, one panel per class, one line per sample.

    Args:
        samples: label -> sample, e.g. ``{"hepfm": generated, "JetClass": reference}``.
        feature: ``"mass"``, ``"n_particles"`` or ``"pt"``.
        classes: classes to show (default: those of the first sample).
    """
    title, bins, lo, hi = _AXES[feature]
    first = next(iter(samples.values()))
    classes = classes or list(first.class_names)
    nrows = -(-len(classes) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), squeeze=False, constrained_layout=True)
    for ax, name in zip(axes.flat, classes, strict=False):
        for label, sample in samples.items():
            if name not in sample.class_names:
                continue
            sel = sample.labels == sample.class_names.index(name)
            h: hist.Hist = hist.Hist(hist.axis.Regular(bins, lo, hi, name=feature, label=title))
            h.fill(np.clip(sample.jet(feature)[sel], lo, hi - 1e-6))
            if h.sum() > 0:
                hep.histplot(h, ax=ax, density=True, label=f"{label} ({int(sel.sum())})")
        ax.set_title(name, fontsize=14)
        ax.set_xlabel(title, fontsize=12)
        ax.tick_params(labelsize=10)
        ax.legend(fontsize=9)
    for ax in list(axes.flat)[len(classes) :]:
        ax.set_visible(False)
    return fig


class SavedFigure(type(Path())):  # type: ignore[misc]
    """The path of a saved PNG that a notebook displays as the image itself: ``display(save(fig, ...))``
    shows the file, so each figure is drawn once (drawing it again inline costs as much as saving it)."""

    def _repr_png_(self) -> bytes:
        return self.read_bytes()


def save(fig, output_dir: str | Path, name: str) -> SavedFigure:
    """Save a figure as PNG into ``output_dir`` and close it; returns the file, which displays as the image."""
    path = SavedFigure(output_dir, f"{name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


_LABELS = {
    "pretrained": "fine-tuned from pretrained",
    "scratch": "from scratch",
    "multiclass": "fine-tuned, multiclass-pretrained",
    "multilabel": "fine-tuned, multilabel-pretrained",
    "frozen": "frozen multiclass backbone (linear probe)",
    "auc": "AUC",
    "accuracy": "Accuracy",
    "rej30": r"Rejection $1/\epsilon_B$ at $\epsilon_S=0.3$",
    "rej50": r"Rejection $1/\epsilon_B$ at $\epsilon_S=0.5$",
}


def scan_plot(summary: dict, metric: str, ax=None, title: str = "", xlabel: str = "Labelled training jets"):
    """Metric against the number of labelled examples, mean over seeds with a +-1 std band, per mode.

    Open triangles mark rejections that are lower bounds (see :func:`hepfm.analysis.scan.summarise`)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5.5))
    for mode, per_size in summary.items():
        sizes = np.array(sorted(per_size, key=int))
        mean = np.array([np.nan if per_size[n][metric][0] is None else per_size[n][metric][0] for n in sizes])
        std = np.array([np.nan if per_size[n][metric][1] is None else per_size[n][metric][1] for n in sizes])
        ok = np.isfinite(mean)  # a rejection is infinite (not shown) when no background passes the cut
        if not ok.any():
            continue
        x = sizes.astype(float)[ok]
        (line,) = ax.plot(x, mean[ok], marker="o", label=_LABELS.get(mode, mode))
        ax.fill_between(x, mean[ok] - std[ok], mean[ok] + std[ok], alpha=0.25, color=line.get_color())
        bound = np.array([bool(per_size[n].get(f"{metric}_lower_bound")) for n in sizes])[ok]
        if bound.any():  # some seeds had no background passing: the mean is a lower bound
            ax.plot(x[bound], mean[ok][bound], "^", markersize=11, color=line.get_color(), fillstyle="none")
    if ax.lines:
        ax.set_xscale("log")
        ax.legend(fontsize=12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_LABELS.get(metric, metric))
    if title:
        ax.set_title(title, fontsize=14)
    return ax.figure


def convergence_plot(rows: list[dict], size: int, seed: int | None = None, unit: str = "jets"):
    """Validation loss against epoch and against wall time, pretrained vs scratch, for one size."""
    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(13, 5.5), constrained_layout=True)
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    for r in rows:
        if r["size"] != size or (seed is not None and r["seed"] != seed):
            continue
        epochs = [e["epoch"] + 1 for e in r["history"]]
        loss = [e["val_loss"] for e in r["history"]]
        wall = [e["wall_seconds"] for e in r["history"]]
        style = "--" if r["mode"] == "scratch" else "-"
        color = f"C{modes.index(r['mode'])}"
        label = f"{_LABELS.get(r['mode'], r['mode'])} (seed {r['seed']})"
        ax_e.plot(epochs, loss, style, color=color, alpha=0.8, label=label)
        ax_t.plot(wall, loss, style, color=color, alpha=0.8, label=label)
    ax_e.set_xlabel("Epoch")
    ax_t.set_xlabel("Wall time [s]")
    for ax in (ax_e, ax_t):
        ax.set_ylabel("Validation loss")
        ax.legend(fontsize=9)
    fig.suptitle(f"{size} labelled {unit}", fontsize=14)
    return fig


def training_curves(history: list[dict], keys: tuple[str, ...] = ("train_loss", "val_loss")):
    """Losses (and any other recorded keys) against epoch."""
    fig, ax = plt.subplots(figsize=(7, 5.5))
    epochs = [e["epoch"] + 1 for e in history]
    for k in keys:
        ax.plot(epochs, [e[k] for e in history], marker="o", label=k)
    ax.set_xlabel("Epoch")
    ax.legend(fontsize=12)
    return fig


# -- classifier and event-content figures ----------------------------------------------------------------------

__all__ += ["confusion_plot", "multiplicity_plot", "label_auc_plot", "class_fraction_plot"]

_COUNTS = {"jets": "Jets", "btag": "b-tagged jets", "leptons": "Isolated leptons"}


def confusion_plot(
    confusion, class_names: list[str], *, what: str = "class", normalised: bool = True, figsize=(9.0, 8.0)
):
    """The confusion matrix as a 2D histogram: true class along x, predicted class along y.

    Args:
        confusion: (C, C) matrix, ``confusion[true, predicted]`` (as
            :func:`hepfm.core.metrics.multiclass_metrics` returns it, each row normalised to 1).
        class_names: the C classes, in label order.
        what: what the classes are, for the axis titles (``class``, ``process``).
        normalised: the rows are fractions of the true class (said on the y axis).
        figsize: figure size in inches.
    """
    confusion = np.asarray(confusion, dtype=float)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=figsize)
    hep.hist2dplot(confusion, xbins=np.arange(n + 1), ybins=np.arange(n + 1), ax=ax, cmap="Blues")  # H[x, y]
    ticks = np.arange(n) + 0.5
    ax.set_xticks(ticks, class_names, rotation=45, fontsize=11)
    ax.set_yticks(ticks, class_names, fontsize=11)
    ax.set_xlabel(f"True {what}")
    ax.set_ylabel(f"Predicted {what}" + (f" (fraction of the true {what})" if normalised else ""))
    return fig


def multiplicity_plot(counts: dict[str, np.ndarray], labels, class_names: list[str], max_count: int = 10):
    """Normalised distributions of per-event object counts, one panel per count, one line per class.

    Args:
        counts: name -> (N,) integer counts, e.g. :func:`hepfm.analysis.validation.object_counts`.
        labels: (N,) class index of every event.
        class_names: the classes, in label order.
        max_count: counts shown from 0 to ``max_count - 1`` (higher ones are left out).
    """
    labels = np.asarray(labels)
    names = np.asarray(class_names)
    colors = plt.cm.tab20(np.linspace(0, 1, len(class_names)))
    fig, axes = plt.subplots(1, len(counts), figsize=(7 * len(counts), 6), squeeze=False, constrained_layout=True)
    for ax, (key, values) in zip(axes.flat, counts.items(), strict=True):
        h: hist.Hist = hist.Hist(
            hist.axis.StrCategory(list(class_names), name="process"),
            hist.axis.Integer(0, max_count, name="n", label=_COUNTS.get(key, key)),
        )
        h.fill(process=names[labels], n=np.asarray(values))
        per_class: list[Any] = [h[p, :] for p in class_names]
        hep.histplot([c / max(float(c.sum()), 1.0) for c in per_class], ax=ax, label=list(class_names), color=colors)
        ax.set_ylabel("Fraction of events")
    axes.flat[0].legend(fontsize=10, ncol=2)
    return fig


def label_auc_plot(auc_per_label: dict[str, float], ylabel: str = "AUC on fresh events"):
    """One bar per label with its AUC; the dashed line at 0.5 is a random guess."""
    names = list(auc_per_label)
    values = [auc_per_label[n] for n in names]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.bar(names, values)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(min([0.5, *(v - 0.05 for v in values)]), 1.0)  # bars below a random guess stay visible
    ax.tick_params(axis="x", labelsize=13)
    ax.set_ylabel(ylabel)
    return fig


def class_fraction_plot(fraction_called: dict[str, float], truth: dict | None = None):
    """What two event models make of one file: the fraction of events called each class (left), and per truth
    label the fraction of events that have it next to a multilabel model's mean probability (right, when
    ``truth`` is given).

    Args:
        fraction_called: class -> fraction, e.g. ``class_fractions(...)["fraction_called"]``.
        truth: the result of :func:`hepfm.train.evaluate_truth` on the file (``truth_fraction`` and
            ``mean_predicted`` per label).
    """
    fig, axes = plt.subplots(1, 2, figsize=(19, 5.8), constrained_layout=True)
    axes[0].bar(list(fraction_called), list(fraction_called.values()))
    axes[0].set_ylabel("Fraction of events called")
    axes[0].tick_params(axis="x", rotation=45, labelsize=11)
    if truth is not None:
        names = list(truth["truth_fraction"])
        x = np.arange(len(names))
        axes[1].bar(x - 0.2, [truth["truth_fraction"][n] for n in names], 0.4, label="generator truth of the file")
        axes[1].bar(x + 0.2, [truth["mean_predicted"][n] for n in names], 0.4, label="multilabel model, mean")
        axes[1].set_xticks(x, names, fontsize=11)
        axes[1].set_ylabel("Fraction of events with the particle")
        axes[1].legend(fontsize=11)
    else:
        axes[1].set_visible(False)
    return fig
