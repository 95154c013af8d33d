"""OmniFold: unbinned, iterative unfolding by classifier reweighting.

Andreassen, Komiske, Metodiev, Nachman, Thaler, PRL 124 (2020) 182001. Given simulated events at particle
level ("truth") and detector level ("reco"), and data at detector level, each iteration

1. **pulls** the simulation towards the data at detector level: a classifier separates data from the
   simulation weighted by the current particle-level weights ``nu``; its likelihood ratio f / (1 - f)
   on the simulated events gives the detector-level weights ``omega = nu * f / (1 - f)``;
2. **pushes** those weights to particle level: a classifier separates the simulated particle-level
   events weighted by ``omega`` from the same events weighted by ``nu``; its likelihood ratio gives the
   new ``nu``.

The unfolded particle-level distribution of any observable is the simulated truth histogrammed with
``nu``. Weights are per event, so every observable is unfolded at once, and can be bootstrapped.

The classifier is pluggable: any ``fit_predict(x0, w0, x1, w1, x_eval) -> p(1 | x_eval)``. The module
ships :class:`LogisticClassifier` (logistic regression on polynomial features, exact for Gaussian
toys) and :class:`PETClassifier` (a jet model, pretrained or from scratch); :func:`unfold` runs OmniFold
on jets with a pair of PET classifiers.

For jets, :func:`paired_jets` makes simulated jets at both levels, :func:`w1_table` measures every
iteration's unfolded observables (:mod:`hepfm.analysis.observables`) against a truth by their
1-Wasserstein distance, :func:`closure_summary` records the closure test (data = the simulation), and
:func:`unfolded_figure` and :func:`w1_figure` draw them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hist
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
import torch

from hepfm.analysis.generation import w1
from hepfm.analysis.observables import OBSERVABLE_RANGES, OBSERVABLES
from hepfm.data.formats import read_jets
from hepfm.data.sample import JetSample
from hepfm.sim.factory import generate_jets, shard_size
from hepfm.train.checkpoint import Checkpoint, load_checkpoint
from hepfm.train.config import TrainConfig
from hepfm.train.finetune import REWEIGHTING_HEAD_INIT, fit_classifier
from hepfm.train.inference import predict

__all__ = [
    "omnifold",
    "OmniFoldResult",
    "LogisticClassifier",
    "PETClassifier",
    "likelihood_ratio",
    "bootstrap_weights",
    "paired_jets",
    "pet_classifiers",
    "unfold",
    "w1_distances",
    "w1_table",
    "w1_last_over_prior",
    "format_w1_table",
    "closure_summary",
    "unfolded_figure",
    "w1_figure",
]

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class OmniFoldResult:
    """Weights of every iteration: ``push[i]`` at particle level (the unfolded weights after iteration
    i + 1) and ``pull[i]`` at detector level, both over the simulated events."""

    push: list[np.ndarray] = field(default_factory=list)
    pull: list[np.ndarray] = field(default_factory=list)

    @property
    def weights(self) -> np.ndarray:
        """The unfolded particle-level weights of the last iteration."""
        return self.push[-1]


def likelihood_ratio(p: np.ndarray, clip: float = 1e-6) -> np.ndarray:
    """f / (1 - f) of classifier outputs, with f clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), clip, 1 - clip)
    return p / (1 - p)


def _normalised(w: np.ndarray, total: float) -> np.ndarray:
    return w * (total / w.sum())


def omnifold(
    sim_truth: Any,
    sim_reco: Any,
    data_reco: Any,
    fit_predict: FitPredict | tuple[FitPredict, FitPredict],
    iterations: int = 3,
    sim_weights: np.ndarray | None = None,
    data_weights: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
) -> OmniFoldResult:
    """Unfold ``data_reco`` with the simulated pairs (``sim_truth``, ``sim_reco``).

    Args:
        sim_truth: particle-level features of the simulated events, (N, ...).
        sim_reco: detector-level features of the same events, in the same order, (N, ...).
        data_reco: detector-level features of the data, (M, ...).
        fit_predict: the classifier for both steps, or a pair (step 1, step 2). It is called as
            ``fit_predict(x0, w0, x1, w1, x_eval)``, trains on class 0 = ``x0`` weighted ``w0`` against
            class 1 = ``x1`` weighted ``w1``, and returns p(class 1) for ``x_eval``.
        iterations: number of (pull, push) iterations.
        sim_weights, data_weights: initial event weights (default 1).
        progress: optional callable told about each step.

    Returns:
        :class:`OmniFoldResult`; weights are normalised to the total data weight.
    """
    if len(sim_truth) != len(sim_reco):
        raise ValueError(f"sim_truth and sim_reco must hold the same events: {len(sim_truth)} != {len(sim_reco)}")
    step1, step2 = fit_predict if isinstance(fit_predict, tuple) else (fit_predict, fit_predict)
    w_data = np.ones(len(data_reco)) if data_weights is None else np.asarray(data_weights, dtype=np.float64)
    w_sim = np.ones(len(sim_truth)) if sim_weights is None else np.asarray(sim_weights, dtype=np.float64)
    total = w_data.sum()
    nu = _normalised(w_sim, total)
    result = OmniFoldResult()
    for i in range(iterations):
        if progress:
            progress(f"iteration {i + 1}: step 1 (detector level)")
        f = step1(sim_reco, nu, data_reco, w_data, sim_reco)
        omega = _normalised(nu * likelihood_ratio(f), total)
        if progress:
            progress(f"iteration {i + 1}: step 2 (particle level)")
        g = step2(sim_truth, nu, sim_truth, omega, sim_truth)
        nu = _normalised(nu * likelihood_ratio(g), total)
        result.pull.append(omega)
        result.push.append(nu)
    return result


def bootstrap_weights(n: int, replicas: int, seed: int = 0) -> np.ndarray:
    """Poisson(1) bootstrap weights (replicas, n): multiply the data weights by a row per replica."""
    return np.random.default_rng(seed).poisson(1.0, size=(replicas, n)).astype(np.float64)


class LogisticClassifier:
    """Weighted logistic regression on polynomial features, trained to convergence with L-BFGS.

    With ``degree=2`` it represents the exact likelihood ratio of two Gaussians, so OmniFold with it
    has a known answer on Gaussian toys. Features are standardised on the training data.
    """

    def __init__(self, degree: int = 2, l2: float = 1e-6, max_iter: int = 200):
        self.degree, self.l2, self.max_iter = degree, l2, max_iter

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        cols = [x]
        if self.degree >= 2:
            iu = torch.triu_indices(x.shape[1], x.shape[1])
            cols.append((x[:, :, None] * x[:, None, :])[:, iu[0], iu[1]])
        for d in range(3, self.degree + 1):
            cols.append(x**d)
        return torch.cat(cols, 1)

    def __call__(self, x0, w0, x1, w1, x_eval) -> np.ndarray:
        def t(a):
            a = torch.as_tensor(np.asarray(a), dtype=torch.float64)
            return a.reshape(len(a), -1)

        x = torch.cat([t(x0), t(x1)])
        mean, std = x.mean(0), x.std(0).clamp_min(1e-12)
        feats = self._features((x - mean) / std)
        fmean, fstd = feats.mean(0), feats.std(0).clamp_min(1e-12)
        feats = (feats - fmean) / fstd
        y = torch.cat([torch.zeros(len(x0)), torch.ones(len(x1))]).double()
        w = torch.cat([torch.as_tensor(np.asarray(w0)), torch.as_tensor(np.asarray(w1))]).double()
        w = w / w.mean()
        coef = torch.zeros(feats.shape[1], dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([coef, bias], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = feats @ coef + bias
            loss = (w * torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")).mean()
            loss = loss + self.l2 * (coef**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            fe = (self._features((t(x_eval) - mean) / std) - fmean) / fstd
            return torch.sigmoid(fe @ coef + bias).numpy()


class PETClassifier:
    """OmniFold's classifier as a jet model: fine-tuned from a pretrained checkpoint, or the same network from
    scratch (``from_scratch=True``), with :func:`hepfm.train.finetune.fit_classifier` and per-jet weights.

    Each call trains a fresh classifier in ``out/step-<k>`` (k counts the calls) and returns p(class 1) of
    ``x_eval``. Inputs are :class:`~hepfm.data.sample.JetSample` objects.
    """

    def __init__(
        self,
        checkpoint: str | Path | Checkpoint,
        out: str | Path,
        *,
        from_scratch: bool = False,
        train: TrainConfig | None = None,
        lr_factor: float = 10.0,
    ):
        self.checkpoint, self.out = load_checkpoint(checkpoint), Path(out)
        self.from_scratch, self.train, self.lr_factor = from_scratch, train, lr_factor
        self.calls = 0

    def __call__(self, x0, w0, x1, w1, x_eval) -> np.ndarray:
        names = ["class 0", "class 1"]
        parts = [
            replace(x, labels=np.full(len(x), k, dtype=np.int64), class_names=names, weights=None)
            for k, x in enumerate((x0, x1))
        ]
        sample = JetSample.concatenate(parts)
        w = np.concatenate([np.asarray(w0, dtype=np.float64), np.asarray(w1, dtype=np.float64)])
        sample.weights = w / w.mean()
        self.calls += 1
        model, _, _ = fit_classifier(
            self.checkpoint,
            sample,
            self.out / f"step-{self.calls}",
            train=self.train,
            overwrite=True,
            from_scratch=self.from_scratch,
            lr_factor=self.lr_factor,
            head_init=REWEIGHTING_HEAD_INIT,
        )
        device = self.train.device if self.train is not None else "auto"
        return predict(model, self.checkpoint.dataset(x_eval), device=device)[:, 1]


# ------------------------------------------------------------------------------------------------ jets


def paired_jets(
    out: str | Path,
    n_jets: int,
    *,
    seed: int,
    settings: list[str] | tuple[str, ...] = (),
    process: str = "QCD",
    max_particles: int = 64,
    workers: int = 1,
    progress: bool = True,
) -> tuple[JetSample, JetSample]:
    """Generate (or complete) ``n_jets`` jets of ``process`` at particle and detector level, paired jet by jet,
    into ``out`` (in shards of
    :func:`~hepfm.sim.factory.shard_size`: the same jets whatever the worker count), and read both levels.

    Args:
        out: the dataset directory.
        n_jets: jets to generate.
        seed: the production's seed.
        settings: Pythia8 settings on top of the process's (``"TimeShower:alphaSvalue 0.118"``).
        process: a jet class of :data:`hepfm.sim.JET_RECIPES`.
        max_particles: constituents kept per jet (the hardest).
        workers: Dask worker processes.
        progress: show the production's progress bar.

    Returns:
        (particle-level jets, detector-level jets), the same jets in the same order.
    """
    path = generate_jets(
        [process],
        n_jets,
        out,
        seed=seed,
        settings=list(settings),
        paired=True,
        jets_per_shard=shard_size(n_jets),
        workers=workers,
        progress=progress,
    )
    return read_jets(path, level="particle", max_particles=max_particles), read_jets(path, max_particles=max_particles)


def pet_classifiers(
    checkpoint: str | Path | Checkpoint,
    out: str | Path,
    *,
    from_scratch: bool = False,
    train: TrainConfig | None = None,
) -> tuple[PETClassifier, PETClassifier]:
    """OmniFold's two classifiers as :class:`PETClassifier` objects, trained into ``out/step1`` (detector level)
    and ``out/step2`` (particle level)."""
    step1, step2 = (
        PETClassifier(checkpoint, Path(out) / f"step{k}", from_scratch=from_scratch, train=train) for k in (1, 2)
    )
    return step1, step2


def unfold(
    checkpoint: str | Path | Checkpoint,
    sim_truth: JetSample,
    sim_reco: JetSample,
    data_reco: JetSample,
    out: str | Path,
    *,
    from_scratch: bool = False,
    iterations: int = 3,
    train: TrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> OmniFoldResult:
    """Unfold jets with OmniFold and the PET classifiers of :func:`pet_classifiers`.

    Args:
        checkpoint: the pretrained jet model (also the architecture with ``from_scratch``).
        sim_truth, sim_reco: the simulated jets at particle and detector level, paired (N each).
        data_reco: the data's detector-level jets (M).
        out: the classifiers go here (see :func:`pet_classifiers`).
        from_scratch: train the classifiers from random weights.
        iterations: OmniFold iterations.
        train: the optimisation recipe of every classifier.
        progress: told about each step.

    Returns:
        :class:`OmniFoldResult` with (N,) weights per iteration.
    """
    classifiers = pet_classifiers(checkpoint, out, from_scratch=from_scratch, train=train)
    return omnifold(sim_truth, sim_reco, data_reco, classifiers, iterations=iterations, progress=progress)


def w1_distances(
    observables: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    weights: np.ndarray | None = None,
    keys: list[str] | None = None,
) -> dict[str, float]:
    """1-Wasserstein distance of each observable (``observables`` weighted by ``weights``) to ``reference``.

    Args:
        observables: name -> (N,) values, e.g. :func:`~hepfm.analysis.observables.jet_observables`.
        reference: name -> (M,) values.
        weights: (N,) weights of ``observables`` (default 1).
        keys: the observables (default :data:`~hepfm.analysis.observables.OBSERVABLES`).
    """
    return {k: w1(observables[k], reference[k], weights) for k in keys or OBSERVABLES}


def w1_table(
    sim_truth: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    results: dict[str, OmniFoldResult],
    keys: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """W1 to the truth of the simulation (``"prior"``) and of every iteration of every unfolding.

    Args:
        sim_truth: the simulated particle-level observables, name -> (N,).
        truth: the observables of the data's particle-level truth, name -> (M,).
        results: unfolding name -> :class:`OmniFoldResult` over the simulated jets.
        keys: the observables (default :data:`~hepfm.analysis.observables.OBSERVABLES`).

    Returns:
        ``"prior"`` and ``"<name> iteration <i>"`` (i from 1) -> observable -> W1.
    """
    table = {"prior": w1_distances(sim_truth, truth, None, keys)}
    for name, result in results.items():
        for i, weights in enumerate(result.push):
            table[f"{name} iteration {i + 1}"] = w1_distances(sim_truth, truth, weights, keys)
    return table


def w1_last_over_prior(
    table: dict[str, dict[str, float]], results: dict[str, OmniFoldResult]
) -> dict[str, dict[str, float]]:
    """Per unfolding, the W1 of its last iteration over the prior's, per observable (< 1: closer to the truth;
    NaN where the prior's W1 is 0)."""
    prior = table["prior"]
    return {
        name: {k: _over(v, prior[k]) for k, v in table[f"{name} iteration {len(result.push)}"].items()}
        for name, result in results.items()
    }


def _over(a: float, b: float) -> float:
    return a / b if b else float("nan")


def format_w1_table(table: dict[str, dict[str, float]], title: str = "W1 to the truth") -> str:
    """The rows of :func:`w1_table` as a text table, one column per observable."""
    keys = list(next(iter(table.values())))
    lines = [f"{title:28s}" + "".join(f"{k:>14s}" for k in keys)]
    lines += [f"{row:28s}" + "".join(f"{d[k]:14.4g}" for k in keys) for row, d in table.items()]
    return "\n".join(lines)


def closure_summary(
    weights: np.ndarray, sim_truth: dict[str, np.ndarray], prior: dict[str, float], keys: list[str] | None = None
) -> dict:
    """The closure test's record: the unfolded weights of the simulation onto its own detector-level jets
    should stay at 1, and the unfolded observables at the simulation's truth.

    Args:
        weights: (N,) unfolded weights of the closure test.
        sim_truth: the simulated particle-level observables, name -> (N,).
        prior: the W1 of the simulation to the data's truth (the ``"prior"`` row of :func:`w1_table`), the
            scale a closure W1 is small against.
        keys: the observables (default :data:`~hepfm.analysis.observables.OBSERVABLES`).

    Returns:
        ``weight_mean``, ``weight_std``, ``w1_to_sim_truth`` (observable -> W1 of the unfolded simulation to
        its truth) and ``w1_sim_vs_data_truth`` (``prior``).
    """
    weights = np.asarray(weights, dtype=np.float64)
    return {
        "weight_mean": float(weights.mean()),
        "weight_std": float(weights.std()),
        "w1_to_sim_truth": w1_distances(sim_truth, sim_truth, weights, keys),
        "w1_sim_vs_data_truth": prior,
    }


_CURVE_COLOURS = ("tab:grey", "tab:orange", "tab:red", "tab:blue", "tab:green", "tab:purple")


def unfolded_figure(
    truth: dict[str, np.ndarray],
    sim_truth: dict[str, np.ndarray],
    results: dict[str, OmniFoldResult],
    *,
    ranges: dict[str, tuple[float, float]] | None = None,
    bins: int = 25,
    iterations_of: str | None = "pretrained",
):
    """One column per observable: the data's truth (filled), the simulation (prior) and each unfolding's last
    iteration (normalised), with the ratio to the truth below; the earlier iterations of ``iterations_of``
    dashed.

    Args:
        truth: observables of the data's particle-level truth, name -> (M,).
        sim_truth: observables of the simulated particle-level jets, name -> (N,).
        results: unfolding name -> :class:`OmniFoldResult`.
        ranges: histogram range per observable (default
            :data:`~hepfm.analysis.observables.OBSERVABLE_RANGES`); its keys are the columns.
        bins: bins per histogram.
        iterations_of: the unfolding whose earlier iterations are drawn (None: none).

    Returns:
        The matplotlib figure (2 rows of axes, one column per observable).
    """
    ranges = ranges or OBSERVABLE_RANGES
    fig, axes = plt.subplots(
        2,
        len(ranges),
        figsize=(6 * len(ranges), 8.5),
        constrained_layout=True,
        gridspec_kw={"height_ratios": [3, 1]},
        sharex="col",
        squeeze=False,
    )

    def histogram(axis, values, weights=None):
        return hist.Hist(axis, storage=hist.storage.Weight()).fill(values, weight=weights)

    for j, (key, (lo, hi)) in enumerate(ranges.items()):
        label = OBSERVABLES.get(key, key)
        axis = hist.axis.Regular(bins, lo, hi, name=key, label=label)
        reference = histogram(axis, truth[key])
        curves = {"data truth": reference, "simulation (prior)": histogram(axis, sim_truth[key])}
        for name, result in results.items():
            curves[f"unfolded, {name}"] = histogram(axis, sim_truth[key], result.weights)
        ax, rax = axes[0, j], axes[1, j]
        reference_density = reference.values() / reference.sum().value
        for k, (name, h) in enumerate(curves.items()):
            colour = _CURVE_COLOURS[k % len(_CURVE_COLOURS)]
            norm = h.sum().value
            fill = name == "data truth"
            hep.histplot(
                h / norm,
                ax=ax,
                histtype="fill" if fill else "step",
                alpha=0.35 if fill else 1.0,
                color=colour,
                label=name,
                yerr=False,
            )
            if not fill:
                ratio = np.divide(
                    h.values() / norm,
                    reference_density,
                    out=np.full(len(h.values()), np.nan),
                    where=reference.values() > 0,
                )
                rax.step(axis.edges[:-1], ratio, where="post", color=colour, label=name)
        if iterations_of in results:
            for i, weights in enumerate(results[iterations_of].push[:-1]):
                h = histogram(axis, sim_truth[key], weights)
                hep.histplot(
                    h / h.sum().value,
                    ax=ax,
                    histtype="step",
                    color="tab:red",
                    alpha=0.4,
                    ls="--",
                    yerr=False,
                    label=f"{iterations_of}, iteration {i + 1}",
                )
        ax.set_ylabel("Fraction of jets")
        ax.set_xlabel("")
        rax.axhline(1.0, color="grey", ls=":")
        rax.set_ylim(0.5, 1.5)
        rax.set_ylabel("/ truth")
        rax.set_xlabel(label)
    axes[0, 0].legend(fontsize=12)
    return fig


def w1_figure(table: dict[str, dict[str, float]]):
    """Bars of every row of :func:`w1_table` over the prior's W1, per observable (the prior's bars are 1).

    Returns:
        The matplotlib figure.
    """
    prior = table["prior"]
    keys = list(prior)
    fig, ax = plt.subplots(figsize=(10, 6.5))
    x = np.arange(len(keys))
    width = 0.8 / len(table)
    for k, (name, row) in enumerate(table.items()):
        ax.bar(x + k * width, [_over(row[o], prior[o]) for o in keys], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, keys)
    ax.set_ylabel("W1 to truth / W1 of the prior")
    ax.legend(fontsize=12)
    return fig
