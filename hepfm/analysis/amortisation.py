"""Compute efficiency of pretraining: time to a target accuracy, and one pretraining shared over many tasks.

As the event foundation-model study measures it (Ho, Roberts, Han and Wang, arXiv 2412.10665): for each task,
the training time each model (fine-tuned from a pretrained backbone, or trained from scratch) needs to reach a
target validation accuracy; summed over the tasks, the pretrained models also pay for their one pretraining,
which every task shares (:func:`amortise`). The target is a fraction of the best validation accuracy a
reference model (the one trained from scratch) reaches at the largest training size (:func:`target_accuracy`).

The rows are those of :func:`hepfm.analysis.scan.size_scan`: ``mode, size, seed`` and the run's metrics with
its per-epoch ``history`` (``epoch``, ``wall_seconds``, ``val_accuracy``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from hepfm.analysis.plots import scan_plot
from hepfm.analysis.scan import time_to_accuracy
from hepfm.core.errors import CheckpointError, DataError, OptionError
from hepfm.core.io import read_json_object
from hepfm.train.checkpoint import Checkpoint, load_checkpoint

__all__ = [
    "target_accuracy",
    "time_to_target",
    "task_efficiency",
    "pretraining_seconds",
    "Amortisation",
    "amortise",
    "task_scan_figure",
    "task_auc_figure",
    "amortisation_figure",
]


def target_accuracy(rows: list[dict], size: int, fraction: float, reference: str = "scratch") -> float:
    """``fraction`` of the mean over seeds of the best validation accuracy of ``reference`` runs at ``size``.

    >>> rows = [{"mode": "scratch", "size": 100, "history": [{"val_accuracy": 0.6}, {"val_accuracy": 0.8}]}]
    >>> round(target_accuracy(rows, 100, 0.5), 6)
    0.4

    Raises:
        DataError: no ``reference`` run at ``size``.
    """
    best = [max(e["val_accuracy"] for e in r["history"]) for r in rows if r["mode"] == reference and r["size"] == size]
    if not best:
        raise DataError(f"no {reference!r} run at size {size} to set the target accuracy from")
    return fraction * float(np.mean(best))


def time_to_target(rows: list[dict], size: int, target: float) -> dict[str, dict]:
    """Per mode, how many seeds reach validation accuracy ``target`` at ``size``, and the median time to it.

    Returns:
        ``{mode: {"reached": k, "of": n, "median_seconds": s, "median_epochs": e}}``; the medians are over the
        seeds that reach the target (None if none does). Seconds are training wall seconds from the start of
        the run (a fine-tuned head's linear probe included), epochs are counted from 1.
    """
    reach = time_to_accuracy([r for r in rows if r["size"] == size], target)
    out = {}
    for mode, per_size in reach.items():
        entry = per_size[size]
        times = [s for s in entry["seconds"] if s is not None]
        out[mode] = {
            "reached": entry["reached"],
            "of": entry["of"],
            "median_seconds": float(np.median(times)) if times else None,
            "median_epochs": float(np.median([e for e in entry["epochs"] if e])) if times else None,
        }
    return out


def task_efficiency(rows: list[dict], size: int, fraction: float, reference: str = "scratch") -> dict:
    """The target (:func:`target_accuracy`) of one task's scan and each mode's time to it (:func:`time_to_target`).

    Returns:
        ``{"target_accuracy": a, mode: {"reached", "of", "median_seconds", "median_epochs"}, ...}``.
    """
    target = target_accuracy(rows, size, fraction, reference)
    return {"target_accuracy": target, **time_to_target(rows, size, target)}


def pretraining_seconds(checkpoint: str | Path | Checkpoint) -> float:
    """The wall seconds a pretrained checkpoint's training took (``wall_seconds`` of its ``metrics.json``).

    Raises:
        CheckpointError: the checkpoint has no ``metrics.json`` with ``wall_seconds``.
    """
    path = load_checkpoint(checkpoint).path / "metrics.json"
    seconds = read_json_object(path, "the pretraining writes it beside the checkpoint", CheckpointError).get(
        "wall_seconds"
    )
    if not isinstance(seconds, int | float) or seconds < 0:
        raise CheckpointError(f"{path}: field 'wall_seconds' is {seconds!r}, expected a non-negative number")
    return float(seconds)


@dataclass
class Amortisation:
    """Training time to the target summed over tasks, without and with the pretraining's cost.

    Attributes:
        pretraining_seconds: ``{mode: seconds}``: the pretraining each pretrained mode starts from, shared by
            every task.
        totals: ``{mode: seconds}`` summed over the tasks, for the modes that reach the target in every task.
        with_pretraining: ``totals`` plus the pretraining for the modes that start from it.
        from_scratch: the modes that pay no pretraining.
        efficiency: the per-task table the totals come from (``{task: task_efficiency(...)}``).
    """

    pretraining_seconds: dict[str, float]
    totals: dict[str, float]
    with_pretraining: dict[str, float]
    from_scratch: tuple[str, ...] = ("scratch",)
    efficiency: dict[str, dict] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = []
        for task, entry in self.efficiency.items():
            reach = ", ".join(
                f"{mode} {e.get('reached', '?')}/{e.get('of', '?')}"
                + ("" if e.get("median_seconds") is None else f" in {e['median_seconds']:.1f} s")
                for mode, e in entry.items()
                if isinstance(e, dict)
            )
            target = entry.get("target_accuracy")
            lines.append(f"{task}: target accuracy {target:.3f}; reached by {reach}" if target is not None else task)
        costs = set(self.pretraining_seconds.values())
        if len(costs) == 1:  # the modes start from one pretraining
            lines.append(f"one pretraining: {costs.pop():.0f} s")
        elif costs:
            lines.append("pretraining: " + ", ".join(f"{m} {s:.0f} s" for m, s in self.pretraining_seconds.items()))
        even = self.break_even()
        for mode, seconds in self.totals.items():
            line = (
                f"{mode:10s} fine-tuning to target, all tasks: {seconds:8.1f} s; "
                f"with pretraining: {self.with_pretraining[mode]:8.1f} s"
            )
            if mode in even:
                pays = even[mode]
                line += "; never pays for itself" if pays is None else f"; pays for itself after {pays:.1f} tasks"
            lines.append(line)
        return "\n".join(lines)

    def break_even(self, reference: str = "scratch") -> dict[str, float | None]:
        """Per pretrained mode, after how many tasks like these one pretraining has paid for itself.

        The pretraining's seconds over the mean time to target saved per task against ``reference``; None
        where the mode saves no time. Modes without a total (or without the reference's) are left out.

        >>> Amortisation({"ft": 100.0}, {"ft": 5.0, "scratch": 30.0}, {}, efficiency={"a": {}, "b": {}}).break_even()
        {'ft': 8.0}
        """
        if reference not in self.totals or not self.efficiency:
            return {}
        out: dict[str, float | None] = {}
        for mode, seconds in self.totals.items():
            if mode in self.from_scratch:
                continue
            saved = (self.totals[reference] - seconds) / len(self.efficiency)
            out[mode] = self.pretraining_seconds[mode] / saved if saved > 0 else None
        return out


def amortise(
    efficiency: dict[str, dict],
    pretraining_seconds: float | Mapping[str, float],
    modes: Sequence[str],
    from_scratch: Collection[str] = ("scratch",),
) -> Amortisation:
    """Sum each mode's median time to target over the tasks and add one pretraining to the pretrained modes.

    Args:
        efficiency: ``{task: task_efficiency(...)}``.
        pretraining_seconds: the cost of the one pretraining the pretrained modes share, or per pretrained mode
            ``{mode: seconds}`` where they start from different pretrainings (multiclass and multilabel).
        modes: the modes to total, in order.
        from_scratch: the modes that do not start from the pretraining (they pay nothing for it).

    Returns:
        The totals; a mode that misses the target in some task (or was not run there) has no total.

    >>> eff = {"a": {"ft": {"median_seconds": 2.0}, "scratch": {"median_seconds": 10.0}},
    ...        "b": {"ft": {"median_seconds": 3.0}, "scratch": {"median_seconds": 20.0}}}
    >>> amortise(eff, 100.0, ["ft", "scratch"]).with_pretraining
    {'ft': 105.0, 'scratch': 30.0}
    """
    totals = {}
    for mode in modes:
        per_task = [entry.get(mode, {}).get("median_seconds") for entry in efficiency.values()]
        if all(s is not None for s in per_task):
            totals[mode] = float(sum(per_task))
    pretrained = [m for m in modes if m not in from_scratch]
    if isinstance(pretraining_seconds, Mapping):
        if missing := [m for m in pretrained if m not in pretraining_seconds]:
            raise OptionError("pretraining_seconds", f"no pretraining cost for the pretrained mode(s) {missing}")
        cost = {m: float(pretraining_seconds[m]) for m in pretrained}
    else:
        cost = {m: float(pretraining_seconds) for m in pretrained}
    with_pretraining = {m: s + cost.get(m, 0.0) for m, s in totals.items()}
    return Amortisation(cost, totals, with_pretraining, tuple(from_scratch), dict(efficiency))


def task_scan_figure(
    summary: dict, title: str = "", metrics: Sequence[str] = ("auc", "accuracy"), unit: str = "events"
) -> Figure:
    """One task's scan (:func:`hepfm.analysis.scan.summarise`): each of ``metrics`` against the training size."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(7.5 * len(metrics), 5.8), constrained_layout=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        scan_plot(summary, metric, ax=ax, title=title, xlabel=f"Labelled training {unit}")
    return fig


def task_auc_figure(
    summaries: dict[str, dict], modes: Sequence[str], sizes: Sequence[int], metric: str = "auc"
) -> Figure:
    """Bars of ``metric`` (mean and standard deviation over seeds) per task and mode, one panel per size.

    Args:
        summaries: ``{task: summarise(rows)}`` (:func:`hepfm.analysis.scan.summarise`).
        modes: the modes to draw, in order.
        sizes: one panel for each of these training sizes.
    """
    tasks = list(summaries)
    fig, axes = plt.subplots(1, len(sizes), figsize=(8 * len(sizes), 6), constrained_layout=True, squeeze=False)
    width = 0.8 / len(modes)
    at = np.arange(len(tasks))
    for ax, size in zip(axes[0], sizes, strict=True):
        for k, mode in enumerate(modes):
            means = [summaries[t][mode][size][metric][0] for t in tasks]
            stds = [summaries[t][mode][size][metric][1] for t in tasks]
            ax.bar(at + k * width, means, width, yerr=stds, label=mode)
        ax.set_xticks(at + width * (len(modes) - 1) / 2, tasks, rotation=30, fontsize=11)
        ax.set_ylim(0.5, 1.0)
        ax.set_ylabel(metric.upper() if metric == "auc" else metric)
        ax.set_title(f"{size} labelled events", fontsize=14)
    axes[0][0].legend(fontsize=11)
    return fig


def amortisation_figure(amortisation: Amortisation) -> Figure:
    """Training time to target over all tasks per mode, stacked with the share of the one pretraining."""
    modes = list(amortisation.totals)
    fig, ax = plt.subplots(figsize=(9, 6), constrained_layout=True)
    tuning = [amortisation.totals[m] for m in modes]
    shared = [amortisation.with_pretraining[m] - amortisation.totals[m] for m in modes]
    ax.bar(modes, tuning, label="training to target, all tasks")
    ax.bar(modes, shared, bottom=tuning, label="one pretraining", alpha=0.6)
    ax.set_ylabel("Wall time [s]")
    ax.legend(fontsize=11)
    return fig
