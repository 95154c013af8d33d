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
toys); the notebooks pass PET classifiers, pretrained or from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from hepfm.data.sample import JetSample
from hepfm.train.checkpoint import Checkpoint, load_checkpoint
from hepfm.train.config import TrainConfig
from hepfm.train.finetune import REWEIGHTING_HEAD_INIT, fit_classifier
from hepfm.train.inference import predict

__all__ = ["omnifold", "OmniFoldResult", "LogisticClassifier", "PETClassifier", "likelihood_ratio", "bootstrap_weights"]

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
    sim_truth: np.ndarray,
    sim_reco: np.ndarray,
    data_reco: np.ndarray,
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
