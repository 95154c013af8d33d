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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hepfm.sim.dijets import Dijets
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
