"""Weakly supervised resonant anomaly detection: CWoLa hunting with jet classifiers.

Classification Without Labels (Metodiev, Nachman, Thaler, JHEP 10 (2017) 174) applied to a bump hunt
(Collins, Howe, Nachman, PRL 121 (2018) 241803): a classifier is trained to tell events of a signal region
in the dijet mass from events of its sidebands. Without signal the two are indistinguishable (the
classifier's inputs must not depend on ``mjj``); a localised signal makes the signal region different,
and the optimal classifier of the two mixed samples is a monotonic function of the signal-vs-background
likelihood ratio. The idealised anomaly detector (IAD) replaces the sidebands by a perfectly modelled
background sample in the signal region: the best any weakly supervised method can do with this classifier.

Here the classifier reads the two leading jets of an event (:class:`hepfm.sim.dijets.Dijets`) with one
jet model applied to each jet: it is trained on jets labelled by their event's region, and an event's
score is the sum of the two jets' log-likelihood ratios. The figure of merit is the significance
improvement characteristic SIC = eps_S / sqrt(eps_B) on labelled test events of the signal region.

A hunt (:func:`cwola_hunt`) splits the generated events (:func:`cwola_splits`), injects a number of signal
events into the data, trains the pretrained, the from-scratch and the idealised classifier for every
injection and seed, and scores them on the test events; :func:`sic_summary` and :func:`sic_figure` show the
largest SIC against the injected signal.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import hist
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
import torch

from hepfm.core.errors import OptionError
from hepfm.core.metrics import roc_auc
from hepfm.data.formats import read_events
from hepfm.sim.dijets import Dijets, dijets
from hepfm.sim.factory import generate_events, shard_size
from hepfm.sim.processes import LHCO_TRIGGER_PT
from hepfm.train.checkpoint import Checkpoint, load_checkpoint
from hepfm.train.config import TrainConfig
from hepfm.train.finetune import REWEIGHTING_HEAD_INIT, fit_classifier
from hepfm.train.inference import model_outputs

__all__ = [
    "SIGNAL_REGION",
    "SIDEBAND_WIDTH",
    "regions",
    "balanced_weights",
    "sic_curve",
    "max_sic",
    "train_dijet_classifier",
    "dijet_scores",
    "generate_dijets",
    "CWoLaSplits",
    "cwola_splits",
    "CWoLaHunt",
    "cwola_hunt",
    "SICSummary",
    "sic_summary",
    "sic_limit",
    "hunt_metrics",
    "sic_figure",
    "splits_figure",
    "dijet_medians",
    "dijet_comparison_figure",
    "real_data_aucs",
]

#: Signal region in m_jj (GeV) around the 3.5 TeV resonance of the LHCO R&D set.
SIGNAL_REGION = (3300.0, 3700.0)
#: Width (GeV) of each sideband, on both sides of the signal region.
SIDEBAND_WIDTH = 400.0


def regions(
    mjj: np.ndarray, signal_region: tuple[float, float] = SIGNAL_REGION, sideband_width: float = SIDEBAND_WIDTH
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (signal region, sidebands) of ``mjj``."""
    lo, hi = signal_region
    sr = (mjj >= lo) & (mjj < hi)
    sb = ((mjj >= lo - sideband_width) & (mjj < lo)) | ((mjj >= hi) & (mjj < hi + sideband_width))
    return sr, sb


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-example weights giving each class the same total weight (mean weight 1)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"every class needs examples, got counts {counts.tolist()}")
    return (len(labels) / (len(counts) * counts))[labels]


def sic_curve(labels: np.ndarray, scores: np.ndarray, min_background: int = 25) -> dict[str, np.ndarray]:
    """Signal efficiency, background efficiency and SIC = eps_S / sqrt(eps_B) over all score thresholds.

    Thresholds that keep fewer than ``min_background`` background events are dropped: there eps_B, and with
    it the SIC, is a statistical fluctuation (20% relative uncertainty at 25 events).
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sig = np.cumsum(labels[order] == 1)
    bkg = np.cumsum(labels[order] == 0)
    n_s, n_b = sig[-1], bkg[-1]
    if n_s == 0 or n_b == 0:
        raise ValueError("sic_curve needs signal (label 1) and background (label 0) events")
    keep = bkg >= min_background
    eff_s, eff_b = sig[keep] / n_s, bkg[keep] / n_b
    return {"eff_s": eff_s, "eff_b": eff_b, "sic": eff_s / np.sqrt(eff_b)}


def max_sic(labels: np.ndarray, scores: np.ndarray, min_background: int = 25) -> float:
    """The largest SIC of :func:`sic_curve` (1.0 for a random classifier)."""
    curve = sic_curve(labels, scores, min_background)
    return float(curve["sic"].max()) if len(curve["sic"]) else float("nan")


def train_dijet_classifier(
    checkpoint: str | Path | Checkpoint,
    dijets: Dijets,
    labels: np.ndarray,
    out: str | Path,
    *,
    from_scratch: bool = False,
    train: TrainConfig | None = None,
    lr_factor: float = 10.0,
    balance: bool = True,
) -> torch.nn.Module:
    """Train one jet classifier on both jets of every event, each jet labelled by its event's ``labels``
    (0/1: e.g. sidebands / signal region), from the pretrained ``checkpoint`` or from scratch.

    ``balance`` weights the two classes to equal total weight. Returns the model with its best weights; a
    classifier trained into ``out`` before is replaced.
    """
    labels = np.asarray(labels, dtype=np.int64)
    sample = dijets.as_jets(labels, ["class 0", "class 1"])
    if balance:
        sample.weights = np.concatenate([balanced_weights(labels)] * 2)
    model, _, _ = fit_classifier(
        checkpoint,
        sample,
        out,
        train=train,
        overwrite=True,
        from_scratch=from_scratch,
        lr_factor=lr_factor,
        head_init=REWEIGHTING_HEAD_INIT,
    )
    return model


@torch.no_grad()
def dijet_scores(
    model: torch.nn.Module, dijets: Dijets, checkpoint: str | Path | Checkpoint, device: str = "auto"
) -> np.ndarray:
    """Event scores: the sum over the two jets of log p(1 | jet) / p(0 | jet) (N,).

    ``checkpoint``: the pretrained checkpoint whose feature normalisation the model was trained with.
    """
    dataset = load_checkpoint(checkpoint).dataset(dijets.as_jets())
    logits = model_outputs(model, dataset, device=device)
    llr = logits[:, 1] - logits[:, 0]
    n = len(dijets)
    return llr[:n] + llr[n:]


def generate_dijets(
    process: str,
    n_events: int,
    out: str | Path,
    *,
    seed: int,
    max_particles: int = 128,
    trigger_pt: float = LHCO_TRIGGER_PT,
    workers: int = 1,
    progress: bool = True,
) -> Dijets:
    """Generate (or complete) ``n_events`` particle-level events of ``process`` that pass the single-jet
    trigger into ``out`` (in shards of :func:`~hepfm.sim.factory.shard_size`: the
    same events whatever the worker count), and cluster them into their two leading jets.

    Args:
        process: a process of :data:`hepfm.sim.PROCESSES` (``qcd_dijet``, ``Wprime_XY``).
        n_events: triggered events.
        out: the dataset directory.
        seed: the production's seed.
        max_particles: constituents kept per jet (the hardest).
        trigger_pt: leading anti-kT R = 1.0 jet pT threshold (GeV), the LHCO trigger by default.
        workers: Dask worker processes.
        progress: show the production's progress bar.
    """
    path = generate_events(
        [process],
        n_events,
        out,
        seed=seed,
        content="particles",
        trigger_pt=trigger_pt,
        events_per_shard=shard_size(n_events),
        workers=workers,
        progress=progress,
    )
    return dijets(read_events(path), max_particles=max_particles)


@dataclass
class CWoLaSplits:
    """The samples of a hunt, drawn from the events of the signal region and the sidebands only.

    Attributes:
        data_background: half of the background, signal region and sidebands: the data before injection.
        reference: a quarter of the background, signal region only: the idealised detector's perfectly
            modelled background.
        pool: half of the signal, signal region and sidebands: the events injected into the data.
        test: the rest of the background (a quarter) and the other half of the signal, signal region only:
            the labelled test events.
        signal_region, sideband_width: the regions in m_jj (GeV).
    """

    data_background: Dijets
    reference: Dijets
    pool: Dijets
    test: Dijets
    signal_region: tuple[float, float] = SIGNAL_REGION
    sideband_width: float = SIDEBAND_WIDTH

    def regions(self, sample: Dijets) -> tuple[np.ndarray, np.ndarray]:
        """Masks (signal region, sidebands) of ``sample``'s events, (N,) each."""
        return regions(sample.mjj, self.signal_region, self.sideband_width)

    def inject(self, n: int, seed: int) -> Dijets:
        """The data: the background of :attr:`data_background` and ``n`` signal events drawn at random (with
        ``seed``, without replacement) from the pool, in pool order."""
        if n > len(self.pool):
            raise OptionError(
                "n_inject", f"{n} injected signal events need a larger signal pool: it holds {len(self.pool)}"
            )
        pick = np.sort(np.random.default_rng(seed).choice(len(self.pool), n, replace=False))
        return Dijets.concatenate([self.data_background, self.pool[pick]])

    def __str__(self) -> str:
        sr, sb = self.regions(self.data_background)
        counts = np.bincount(self.test.labels, minlength=2)
        return "\n".join(
            [
                f"data background: {sr.sum()} in the signal region, {sb.sum()} in the sidebands",
                f"IAD reference background (signal region): {len(self.reference)}",
                f"signal pool: {len(self.pool)} ({self.regions(self.pool)[0].mean():.0%} in the signal region)",
                f"test (signal region): {counts} background / signal",
            ]
        )


def cwola_splits(
    background: Dijets,
    signal: Dijets,
    seed: int = 0,
    signal_region: tuple[float, float] = SIGNAL_REGION,
    sideband_width: float = SIDEBAND_WIDTH,
) -> CWoLaSplits:
    """Split background and signal events at random into the samples of a hunt (see :class:`CWoLaSplits`).

    Only events of the signal region and the sidebands are kept. The background is shuffled and cut into
    halves and quarters: the first half is the data, the next quarter the reference (its signal-region
    events) and the rest, with the second half of the shuffled signal, the test sample (its signal-region
    events); the first half of the signal is the pool. Each sample keeps its events in input
    order.

    Args:
        background: background events (label 0), (N,).
        signal: signal events (label 1), (M,).
        seed: seed of the shuffling.
        signal_region, sideband_width: the regions in m_jj (GeV), see :func:`regions`.
    """
    rng = np.random.default_rng(seed)
    bkg = background[np.logical_or(*regions(background.mjj, signal_region, sideband_width))]
    sig = signal[np.logical_or(*regions(signal.mjj, signal_region, sideband_width))]
    order, s_order = rng.permutation(len(bkg)), rng.permutation(len(sig))
    half, quarter = len(bkg) // 2, len(bkg) // 4
    reference = bkg[np.sort(order[half : half + quarter])]
    test = Dijets.concatenate([bkg[np.sort(order[half + quarter :])], sig[np.sort(s_order[len(sig) // 2 :])]])
    return CWoLaSplits(
        data_background=bkg[np.sort(order[:half])],
        reference=reference[regions(reference.mjj, signal_region, sideband_width)[0]],
        pool=sig[np.sort(s_order[: len(sig) // 2])],
        test=test[regions(test.mjj, signal_region, sideband_width)[0]],
        signal_region=signal_region,
        sideband_width=sideband_width,
    )


@dataclass
class CWoLaHunt:
    """What a hunt trained and measured.

    Attributes:
        rows: one dict per trained classifier: ``method``, ``n_inject``, ``seed``, ``signal_in_sr`` and
            ``background_in_sr`` (events of the data in the signal region), ``max_sic`` and ``auc`` on the
            test events.
        curves: (method, n_inject, seed) -> :func:`sic_curve` of the test events.
        models: (method, n_inject, seed) -> the trained classifier.
    """

    rows: list[dict] = field(default_factory=list)
    curves: dict[tuple[str, int, int], dict[str, np.ndarray]] = field(default_factory=dict)
    models: dict[tuple[str, int, int], torch.nn.Module] = field(default_factory=dict, repr=False)

    @property
    def methods(self) -> list[str]:
        """The classifiers, in training order."""
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def n_inject(self) -> list[int]:
        """The injections, in training order."""
        return list(dict.fromkeys(r["n_inject"] for r in self.rows))

    @property
    def seeds(self) -> list[int]:
        """The seeds, in training order."""
        return list(dict.fromkeys(r["seed"] for r in self.rows))

    def models_at(self, n_inject: int, seed: int) -> dict[str, torch.nn.Module]:
        """method -> classifier trained with ``n_inject`` injected signal events and ``seed``."""
        return {m: self.models[m, n_inject, seed] for m in self.methods if (m, n_inject, seed) in self.models}


def cwola_hunt(
    checkpoint: str | Path | Checkpoint,
    splits: CWoLaSplits,
    n_inject: Sequence[int],
    seeds: Sequence[int],
    out: str | Path,
    *,
    train: TrainConfig | None = None,
    iad: bool = True,
    progress: Callable[[str], None] | None = None,
) -> CWoLaHunt:
    """CWoLa hunting for every injection and seed: the pretrained, the from-scratch and the idealised classifier.

    For each ``n`` in ``n_inject`` and each seed, ``n`` signal events of the pool are injected into the data
    (:meth:`CWoLaSplits.inject`, drawn with the seed) and three classifiers are trained with
    :func:`train_dijet_classifier` (training seed = the seed):

    * ``pretrained``: signal region (1) against sidebands (0) of the data, fine-tuned from ``checkpoint``;
    * ``scratch``: the same from random weights;
    * ``IAD`` (with ``iad``): the data's signal-region events (1) against the reference (0), pretrained start.

    Each is scored on the test events with :func:`dijet_scores`.

    Args:
        checkpoint: the pretrained jet model.
        splits: the samples (:func:`cwola_splits`).
        n_inject: numbers of injected signal events.
        seeds: seeds of the injected-signal draw and of the training.
        out: the classifiers go into ``out/<method>-n<n>-seed<seed>`` (runs there are replaced).
        train: the optimisation recipe (its seed is replaced by each seed; its device scores the test events).
        iad: also train the idealised anomaly detector.
        progress: told one line per trained classifier.

    Raises:
        OptionError: an injection needs more signal than the pool holds.
    """
    train = train or TrainConfig(progress=False)
    if max(n_inject) > len(splits.pool):
        raise OptionError(
            "n_inject",
            f"up to {max(n_inject)} injected signal events need a larger signal pool: it holds {len(splits.pool)}",
        )
    checkpoint = load_checkpoint(checkpoint)
    test = splits.test
    hunt = CWoLaHunt()
    for n in n_inject:
        for seed in seeds:
            data = splits.inject(n, seed)
            in_sr = splits.regions(data)[0]
            s_sr, b_sr = int((data.labels[in_sr] == 1).sum()), int((data.labels[in_sr] == 0).sum())
            runs = {
                "pretrained": (data, in_sr.astype(np.int64), False),
                "scratch": (data, in_sr.astype(np.int64), True),
            }
            if iad:
                reference = splits.reference
                runs["IAD"] = (
                    Dijets.concatenate([reference, data[in_sr]]),
                    np.r_[np.zeros(len(reference), np.int64), np.ones(int(in_sr.sum()), np.int64)],
                    False,
                )
            for method, (sample, labels, scratch) in runs.items():
                model = train_dijet_classifier(
                    checkpoint,
                    sample,
                    labels,
                    Path(out) / f"{method}-n{n}-seed{seed}",
                    from_scratch=scratch,
                    train=replace(train, seed=seed),
                )
                scores = dijet_scores(model, test, checkpoint, device=train.device)
                hunt.curves[method, n, seed] = sic_curve(test.labels, scores)
                hunt.models[method, n, seed] = model
                row = {
                    "method": method,
                    "n_inject": n,
                    "seed": seed,
                    "signal_in_sr": s_sr,
                    "background_in_sr": b_sr,
                    "max_sic": max_sic(test.labels, scores),
                    "auc": roc_auc(test.labels, scores),
                }
                hunt.rows.append(row)
                if progress:
                    progress(
                        f"n={n:4d} seed={seed} S/B(SR)={s_sr / b_sr:.3f} {method:10s} max SIC {row['max_sic']:.2f} "
                        f"AUC {row['auc']:.3f}"
                    )
    return hunt


def sic_limit(n_background: int, min_background: int = 25) -> float:
    """The largest SIC a test sample of ``n_background`` background events allows: every signal event kept at
    the smallest background efficiency :func:`sic_curve` reaches, ``min_background / n_background``.

    >>> sic_limit(1000)
    6.324555320336758
    """
    return float(1 / np.sqrt(min_background / n_background))


@dataclass
class SICSummary:
    """The largest SIC per classifier and injection, over seeds.

    Attributes:
        max_sic: method -> n_inject -> ``max_sic_mean``, ``max_sic_std`` (over seeds), ``max_sic`` (per seed)
            and ``auc_mean``.
        s_over_b: n_inject -> signal over background of the data in the signal region (mean over seeds).
        sic_limit: the largest SIC the test sample allows (:func:`sic_limit`).
    """

    max_sic: dict[str, dict[int, dict]]
    s_over_b: dict[int, float]
    sic_limit: float

    @property
    def methods(self) -> list[str]:
        return list(self.max_sic)

    @property
    def n_inject(self) -> list[int]:
        return list(next(iter(self.max_sic.values()), {}))

    def __str__(self) -> str:
        return "\n".join(
            f"{method:10s} "
            + "  ".join(f"n={n}: {e['max_sic_mean']:.2f} ± {e['max_sic_std']:.2f}" for n, e in per_n.items())
            for method, per_n in self.max_sic.items()
        )


def sic_summary(rows: list[dict], n_test_background: int, min_background: int = 25) -> SICSummary:
    """Mean and standard deviation over seeds of the largest SIC, per classifier and injection.

    Args:
        rows: the rows of :func:`cwola_hunt` (``method``, ``n_inject``, ``max_sic``, ``auc``, ``signal_in_sr``,
            ``background_in_sr``).
        n_test_background: background events of the test sample, for :func:`sic_limit`.
        min_background: as in :func:`sic_curve`.
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    injections = list(dict.fromkeys(r["n_inject"] for r in rows))
    summary: dict[str, dict[int, dict]] = {}
    for method in methods:
        summary[method] = {}
        for n in injections:
            values = [r["max_sic"] for r in rows if r["method"] == method and r["n_inject"] == n]
            aucs = [r["auc"] for r in rows if r["method"] == method and r["n_inject"] == n]
            summary[method][n] = {
                "max_sic_mean": float(np.mean(values)),
                "max_sic_std": float(np.std(values)),
                "max_sic": values,
                "auc_mean": float(np.mean(aucs)),
            }
    s_over_b = {
        n: float(
            np.mean(
                [
                    r["signal_in_sr"] / r["background_in_sr"]
                    for r in rows
                    if r["n_inject"] == n and r["method"] == methods[0]
                ]
            )
        )
        for n in injections
    }
    return SICSummary(summary, s_over_b, sic_limit(n_test_background, min_background))


def hunt_metrics(splits: CWoLaSplits, hunt: CWoLaHunt, summary: SICSummary) -> dict:
    """The record of a hunt for ``metrics.json``: the regions, the summary, every run and the sample sizes."""
    counts = np.bincount(splits.test.labels, minlength=2)
    return {
        "signal_region": list(splits.signal_region),
        "sideband_width": splits.sideband_width,
        "max_sic": summary.max_sic,
        "max_sic_limit": summary.sic_limit,
        "s_over_b_signal_region": summary.s_over_b,
        "runs": hunt.rows,
        "n_test": {"background": int(counts[0]), "signal": int(counts[1])},
        "n_data_background": len(splits.data_background),
        "n_reference": len(splits.reference),
    }


def sic_figure(hunt: CWoLaHunt, summary: SICSummary, n_inject: int | None = None):
    """Left: the largest SIC against the injected signal, mean over seeds with a +-1 std band, with the
    random classifier (1) and the limit of the test sample. Right: SIC against the signal efficiency at
    ``n_inject`` injected events (default the largest), mean and std over seeds.

    Returns:
        The matplotlib figure (two axes).
    """
    n_show = max(summary.n_inject) if n_inject is None else n_inject
    fig, axes = plt.subplots(1, 2, figsize=(18, 6.5), constrained_layout=True)
    x = summary.n_inject
    for method, per_n in summary.max_sic.items():
        mean = np.array([per_n[n]["max_sic_mean"] for n in x])
        std = np.array([per_n[n]["max_sic_std"] for n in x])
        (line,) = axes[0].plot(x, mean, marker="o", label=method)
        axes[0].fill_between(x, mean - std, mean + std, alpha=0.25, facecolor=line.get_color())
    axes[0].axhline(1.0, color="grey", ls=":", label="random")
    axes[0].axhline(summary.sic_limit, color="grey", ls="--", label="limit of the test sample")
    axes[0].set_xlabel("Injected signal events")
    axes[0].set_ylabel("max SIC")
    axes[0].legend(fontsize=14)
    grid = np.linspace(0.02, 1.0, 99)
    for method in summary.methods:
        sics = []
        for seed in hunt.seeds:
            c = hunt.curves[method, n_show, seed]
            order = np.argsort(c["eff_s"])
            sics.append(np.interp(grid, c["eff_s"][order], c["sic"][order], left=np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # below the smallest efficiency of every seed
            mean, std = np.nanmean(sics, 0), np.nanstd(sics, 0)
        (line,) = axes[1].plot(grid, mean, label=method)
        axes[1].fill_between(grid, mean - std, mean + std, alpha=0.25, facecolor=line.get_color())
    axes[1].axhline(1.0, color="grey", ls=":")
    axes[1].set_xlabel(r"Signal efficiency $\varepsilon_S$")
    axes[1].set_ylabel(r"SIC $= \varepsilon_S/\sqrt{\varepsilon_B}$")
    axes[1].set_title(f"{n_show} injected, S/B in SR = {summary.s_over_b[n_show]:.3f}", fontsize=16)
    axes[1].legend(fontsize=14)
    return fig


def splits_figure(splits: CWoLaSplits, n_show: int, labels: tuple[str, str] = ("QCD dijets", "W' → XY")):
    """Left: m_jj of the data with ``n_show`` pool events stacked on top, the sidebands shaded grey and the
    signal region red. Right: the heavier and the lighter jet's mass of the test events, per class.

    Args:
        splits: the samples of the hunt.
        n_show: signal events of the pool shown (the first ones).
        labels: names of the background and the signal in the legend.

    Returns:
        The matplotlib figure (two axes).
    """
    (lo, hi), width = splits.signal_region, splits.sideband_width
    axis = hist.axis.Regular(36, lo - width - 200, hi + width + 200, name="mjj", label=r"$m_{jj}$ [GeV]")
    fig, axes = plt.subplots(1, 2, figsize=(18, 6.5), constrained_layout=True)
    hep.histplot(
        [hist.Hist(axis).fill(splits.data_background.mjj), hist.Hist(axis).fill(splits.pool.mjj[:n_show])],
        ax=axes[0],
        stack=True,
        histtype="fill",
        label=[labels[0], f"{labels[1]} ({n_show} injected)"],
    )
    for a, b in ((lo - width, lo), (hi, hi + width)):
        axes[0].axvspan(a, b, color="grey", alpha=0.15)
    axes[0].axvspan(lo, hi, color="tab:red", alpha=0.1)
    axes[0].set_ylabel("Events")
    axes[0].legend(fontsize=14)
    m_axis = hist.axis.Regular(40, 0, 800, name="m", label="Jet mass [GeV]")
    test = splits.test
    for k, name in enumerate(("heavier", "lighter")):
        for label, style in ((0, "-"), (1, "--")):
            masses = np.sort(test.jet_mass[test.labels == label], axis=1)[:, ::-1][:, k]
            hep.histplot(
                hist.Hist(m_axis).fill(masses),
                ax=axes[1],
                density=True,
                ls=style,
                yerr=False,
                label=f"{name} jet, {test.class_names[label]}",
            )
    axes[1].legend(fontsize=13)
    axes[1].set_ylabel("Density")
    return fig


def dijet_medians(samples: dict[str, Dijets], class_names: Sequence[str] | None = None) -> dict[str, dict]:
    """Median m_jj and heavier-jet mass (GeV) and the event count of every class of every sample.

    Args:
        samples: name -> events, e.g. ``{"hepfm": generated, "LHCO R&D": real}``.
        class_names: the classes by label (default: those of the first sample).

    Returns:
        ``"<sample> <class>"`` -> ``mjj``, ``heavier_jet_mass``, ``events``, class by class, sample by sample.
    """
    class_names = list(class_names or next(iter(samples.values())).class_names)
    medians = {}
    for label, class_name in enumerate(class_names):
        for name, sample in samples.items():
            sel = sample.labels == label
            medians[f"{name} {class_name}"] = {
                "mjj": float(np.median(sample.mjj[sel])),
                "heavier_jet_mass": float(np.median(sample.jet_mass[sel].max(1))),
                "events": int(sel.sum()),
            }
    return medians


def dijet_comparison_figure(samples: dict[str, Dijets], class_names: Sequence[str] | None = None):
    """Density of m_jj (left) and of the heavier jet's mass (right) per class and sample (solid: the first
    sample, dashed: the second, ...).

    Returns:
        The matplotlib figure (two axes).
    """
    class_names = list(class_names or next(iter(samples.values())).class_names)
    fig, axes = plt.subplots(1, 2, figsize=(18, 6.5), constrained_layout=True)
    m_axis = hist.axis.Regular(30, 0, 800, name="m", label="Heavier jet mass [GeV]")
    mjj_axis = hist.axis.Regular(30, 2000, 5000, name="mjj", label=r"$m_{jj}$ [GeV]")
    for label, class_name in enumerate(class_names):
        for (name, sample), style in zip(samples.items(), ("-", "--", ":", "-."), strict=False):
            sel = sample.labels == label
            for ax, axis, values in (
                (axes[0], mjj_axis, sample.mjj[sel]),
                (axes[1], m_axis, sample.jet_mass[sel].max(1)),
            ):
                hep.histplot(
                    hist.Hist(axis).fill(values),
                    ax=ax,
                    density=True,
                    ls=style,
                    yerr=False,
                    label=f"{name} {class_name}",
                )
    for ax in axes:
        ax.legend(fontsize=13)
        ax.set_ylabel("Density")
    return fig


def real_data_aucs(
    models: dict[str, torch.nn.Module],
    events: Dijets,
    checkpoint: str | Path | Checkpoint,
    *,
    device: str = "auto",
    min_events: int = 5,
    signal_region: tuple[float, float] = SIGNAL_REGION,
    sideband_width: float = SIDEBAND_WIDTH,
) -> dict[str, float]:
    """AUC of signal against background of labelled events (e.g. the real LHCO R&D events) in the signal
    region, for each classifier.

    Args:
        models: name -> classifier of :func:`train_dijet_classifier`.
        events: labelled events (0 background, 1 signal); only those of the signal region are scored.
        checkpoint: the pretrained checkpoint the classifiers were trained from.
        device: where to score.
        min_events: fewer signal-region events of either class than this give no AUC (an empty dict).
    """
    in_sr = events[regions(events.mjj, signal_region, sideband_width)[0]]
    if np.bincount(in_sr.labels, minlength=2).min() < min_events:
        return {}
    return {
        name: roc_auc(in_sr.labels, dijet_scores(model, in_sr, checkpoint, device=device))
        for name, model in models.items()
    }
