"""Centered kernel alignment (CKA) between layer representations.

* Linear CKA (Kornblith, Norouzi, Lee, Hinton, ICML 2019): for activations X (n, p) and Y (n, q) of the
  same n examples, CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels K = X X^T, L = Y Y^T;
  with centred features it equals ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
* Minibatch CKA (Nguyen, Raghu, Kornblith, ICLR 2021): the unbiased HSIC estimator (Song et al., 2012)
  averaged over minibatches, so that representations of many examples never have to be held at once.

:func:`layer_activations` collects per-example activations of chosen modules with forward hooks;
:func:`cka_matrix` compares every layer of one model with every layer of another. Over hepfm's models,
:func:`cka_between` compares two models over their own named representation layers
(``model.representation_layers()``, one vector per example from ``model.pool_representation``), and
:func:`train_cka_models`, :func:`cka_grids`, :func:`cka_summary` and :func:`cka_figure` make the comparison
of a fine-tuned model, two models trained from scratch and the pretrained one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from hepfm.core.errors import OptionError
from hepfm.models.families import family_of
from hepfm.train.checkpoint import Checkpoint, load_checkpoint
from hepfm.train.config import TrainConfig
from hepfm.train.finetune import finetune, finished_run, run_sources

__all__ = [
    "linear_cka",
    "hsic_unbiased",
    "MinibatchCKA",
    "layer_activations",
    "cka_matrix",
    "representations",
    "cka_between",
    "probe_batches",
    "CKA_RUNS",
    "CKA_PAIRS",
    "train_cka_models",
    "cka_grids",
    "cka_summary",
    "cka_figure",
]

#: The models :func:`train_cka_models` trains: name -> (seed, fine-tuning options).
CKA_RUNS: dict[str, tuple[int, dict]] = {
    "finetuned": (0, {}),
    "scratch": (0, {"from_scratch": True}),
    "scratch_1": (1, {"from_scratch": True}),
}
#: The comparisons :func:`cka_grids` makes: title -> (model of the rows, model of the columns).
CKA_PAIRS: dict[str, tuple[str, str]] = {
    "fine-tuned vs scratch": ("finetuned", "scratch"),
    "scratch vs scratch (seeds 0, 1)": ("scratch", "scratch_1"),
    "pretrained vs fine-tuned": ("pretrained", "finetuned"),
}


def _as_2d(x) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    return x.reshape(x.shape[0], -1)


def _gram(x) -> torch.Tensor:
    x = _as_2d(x)
    return x @ x.T


def linear_cka(x, y) -> float:
    """Linear CKA of two representations of the same examples, (n, p) and (n, q) (any trailing shape).

    >>> round(linear_cka(np.eye(4)[:, :3], np.eye(4)[:, :3] * 5), 6)
    1.0
    """
    x, y = _as_2d(x), _as_2d(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same examples: {x.shape[0]} and {y.shape[0]} rows")
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    denom = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / denom) if denom > 0 else float("nan")


def hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741 (the paper's name)
    """Unbiased HSIC estimator of two n x n kernel matrices (n > 3), Song et al. (2012), eq. 5."""
    n = k.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 examples, got {n}")
    k = k - torch.diag(torch.diag(k))
    l = l - torch.diag(torch.diag(l))  # noqa: E741
    ones = torch.ones(n, 1, dtype=k.dtype, device=k.device)
    term = (
        (k * l).sum()
        + (ones.T @ k @ ones) * (ones.T @ l @ ones) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (ones.T @ k @ l @ ones)
    )
    return term.squeeze() / (n * (n - 3))


class MinibatchCKA:
    """Accumulates unbiased HSIC terms over minibatches for a grid of layer pairs.

    ``update(xs, ys)`` takes the activations of one minibatch for every layer of model A (``xs``) and of
    model B (``ys``); :meth:`compute` returns the (len(xs), len(ys)) CKA matrix averaged over batches.
    """

    def __init__(self):
        self.cross: torch.Tensor | None = None
        self.self_x: torch.Tensor | None = None
        self.self_y: torch.Tensor | None = None
        self.batches = 0

    def update(self, xs: list, ys: list) -> None:
        kx = [_gram(x) for x in xs]
        ky = [_gram(y) for y in ys]
        cross = torch.stack([torch.stack([hsic_unbiased(a, b) for b in ky]) for a in kx])
        sx = torch.stack([hsic_unbiased(a, a) for a in kx])
        sy = torch.stack([hsic_unbiased(b, b) for b in ky])
        if self.cross is None or self.self_x is None or self.self_y is None:
            self.cross, self.self_x, self.self_y = cross, sx, sy
        else:
            self.cross, self.self_x, self.self_y = self.cross + cross, self.self_x + sx, self.self_y + sy
        self.batches += 1

    def compute(self) -> np.ndarray:
        if self.cross is None or self.self_x is None or self.self_y is None:
            raise ValueError("no minibatch seen")
        denom = torch.sqrt(torch.clamp(self.self_x[:, None] * self.self_y[None, :], min=0))
        return (self.cross / denom).numpy()


@torch.no_grad()
def layer_activations(
    model: nn.Module, layers: dict[str, nn.Module], batch, call: Callable | None = None, pool: Callable | None = None
) -> dict[str, torch.Tensor]:
    """Per-example activations (n, features) of ``layers`` for one batch, collected with forward hooks.

    Args:
        model: the model to run.
        layers: ``{name: submodule}`` whose outputs to record (the first tensor when a module returns a tuple).
        batch: the model's input.
        call: ``call(model, batch)`` runs the model (default ``model(batch)``; for PET pass a lambda that
            unpacks the jet tensors).
        pool: maps a recorded output (as the module returned it) to per-example rows, e.g. a masked mean
            over particles, or the global vector of a graph block; the default takes the output (the first
            element of a tuple) and flattens everything after the first dimension.
    """
    store = _layer_outputs(model, layers, batch, call)

    def default(out):
        out = out[0] if isinstance(out, tuple | list) else out
        return out.reshape(out.shape[0], -1)

    return {n: (pool or default)(store[n]).detach().double() for n in layers}


def _layer_outputs(model: nn.Module, layers: dict[str, nn.Module], batch, call: Callable | None) -> dict:
    """The outputs of ``layers`` (as the modules return them) in one forward pass of ``model`` in eval mode."""
    store: dict = {}

    def hook(name):
        def fn(_module, _inputs, output):
            store[name] = output

        return fn

    handles = [module.register_forward_hook(hook(name)) for name, module in layers.items()]
    try:
        model.eval()
        call(model, batch) if call is not None else model(batch)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in layers if n not in store]
    if missing:
        raise ValueError(f"layers {missing} did not run in the forward pass")
    return store


def cka_matrix(
    model_a: nn.Module,
    layers_a: dict[str, nn.Module],
    model_b: nn.Module,
    layers_b: dict[str, nn.Module],
    batches: Iterable,
    call: Callable | None = None,
    pool: Callable | None = None,
) -> np.ndarray:
    """Minibatch CKA of every layer of ``model_a`` against every layer of ``model_b`` over ``batches``."""
    acc = MinibatchCKA()
    for batch in batches:
        xa = layer_activations(model_a, layers_a, batch, call, pool)
        xb = layer_activations(model_b, layers_b, batch, call, pool)
        acc.update(list(xa.values()), list(xb.values()))
    return acc.compute()


def _run_family(model: nn.Module, batch):
    return family_of(model).logits(model, batch)


@torch.no_grad()
def representations(model: Any, batch, call: Callable | None = None) -> dict[str, torch.Tensor]:
    """One vector per example, (B, features) float64, from each of the model's own representation layers.

    Args:
        model: a model with ``representation_layers()`` (ordered name -> module) and
            ``pool_representation(name, output, batch)``, e.g. :class:`~hepfm.models.PET` or
            :class:`~hepfm.models.EventGNN`.
        batch: the model's batch (a :class:`~hepfm.data.JetBatch` or an :class:`~hepfm.data.graphs.EventBatch`).
        call: ``call(model, batch)`` runs the model; default: its family's classifier forward pass.

    Returns:
        ``{layer name: (B, features)}`` in the order of ``representation_layers()``.
    """
    layers = model.representation_layers()
    outputs = _layer_outputs(model, layers, batch, call or _run_family)
    return {name: model.pool_representation(name, outputs[name], batch).detach().double() for name in layers}


def cka_between(model_a: nn.Module, model_b: nn.Module, batches: Iterable, call: Callable | None = None) -> np.ndarray:
    """Minibatch CKA of every representation layer of ``model_a`` against every one of ``model_b``.

    Args:
        model_a, model_b: models with named representation layers (see :func:`representations`).
        batches: batches of the same examples for both models (at least 4 examples each).
        call: runs a model on a batch (default: the family's classifier forward pass).

    Returns:
        (len(layers of a), len(layers of b)) CKA grid, rows in ``model_a.representation_layers()`` order.
    """
    acc = MinibatchCKA()
    for batch in batches:
        xa = representations(model_a, batch, call)
        xb = representations(model_b, batch, call)
        acc.update(list(xa.values()), list(xb.values()))
    return acc.compute()


def probe_batches(dataset, batch_size: int, seed: int = 0) -> list:
    """Full batches of ``batch_size`` examples of ``dataset`` in an order fixed by ``seed`` (a remainder is dropped).

    Args:
        dataset: a dataset whose ``collate([dataset[i], ...])`` builds a batch (jets or event graphs).
        batch_size: examples per batch, at least 4 (the unbiased HSIC needs them).
        seed: seeds the order of the examples.

    Raises:
        OptionError: ``batch_size`` is below 4 or larger than the dataset.
    """
    if batch_size < 4:
        raise OptionError("batch_size", f"CKA minibatches need at least 4 examples, got {batch_size}")
    if batch_size > len(dataset):
        raise OptionError("batch_size", f"{batch_size} is more than the {len(dataset)} examples to compare")
    order = np.random.default_rng(seed).permutation(len(dataset))
    return [
        dataset.collate([dataset[int(i)] for i in order[s : s + batch_size]])
        for s in range(0, len(order) - batch_size + 1, batch_size)
    ]


def train_cka_models(
    checkpoint: str | Path | Checkpoint,
    train,
    test,
    out: str | Path,
    train_config: TrainConfig,
    resume: bool = True,
) -> dict[str, nn.Module]:
    """The models CKA compares: the pretrained one and the :data:`CKA_RUNS` trained on ``train``.

    ``finetuned`` is fine-tuned from ``checkpoint`` (seed 0), ``scratch`` and ``scratch_1`` are the same model
    trained from random weights (seeds 0 and 1), each with :func:`hepfm.train.finetune` into ``out/<name>``.

    Args:
        checkpoint: the pretrained checkpoint (jet or event model).
        train, test: labelled samples (or paths) to train and evaluate on.
        out: where the runs go.
        train_config: the recipe of every run (its seed is replaced by the run's).
        resume: reuse a run already finished in ``out`` with this recipe (otherwise it is trained afresh).

    Returns:
        ``{"pretrained": ..., "finetuned": ..., "scratch": ..., "scratch_1": ...}``, models in eval mode.
    """
    out = Path(out)
    models = {"pretrained": load_checkpoint(checkpoint).model()}
    sources = functools.cache(lambda: run_sources(checkpoint, train, test))  # read only to check a finished run
    for name, (seed, options) in CKA_RUNS.items():
        run, cfg = out / name, replace(train_config, seed=seed)
        finished = resume and (run / "metrics.json").exists() and finished_run(run, cfg, options, sources())
        if not finished:
            finetune(checkpoint, train, test, run, train=cfg, overwrite=True, **options)
        models[name] = load_checkpoint(run).model()
    return models


def cka_grids(
    models: dict[str, nn.Module], batches: list, pairs: dict[str, tuple[str, str]] = CKA_PAIRS
) -> dict[str, np.ndarray]:
    """The CKA grid (:func:`cka_between`) of each pair of ``models``: ``{title: (layers, layers)}``."""
    return {title: cka_between(models[a], models[b], batches) for title, (a, b) in pairs.items()}


def cka_summary(grids: dict[str, np.ndarray], layer_names: list[str]) -> dict:
    """Per grid, the CKA of each layer with the same layer of the other model and its mean.

    Returns:
        ``{title: {"diagonal": {layer: CKA rounded to 4 digits}, "mean_diagonal": mean}}``.
    """
    return {
        title: {
            "diagonal": dict(zip(layer_names, np.diag(grid).round(4).tolist(), strict=True)),
            "mean_diagonal": float(np.mean(np.diag(grid))),
        }
        for title, grid in grids.items()
    }


def cka_figure(
    grids: dict[str, np.ndarray],
    layer_names: list[str],
    title: str,
    pairs: dict[str, tuple[str, str]] = CKA_PAIRS,
) -> Figure:
    """The grids side by side (rows: the first model's layers, columns: the second's), CKA from 0 to 1."""
    fig, axes = plt.subplots(1, len(grids), figsize=(7 * len(grids), 6.5), constrained_layout=True, squeeze=False)
    ticks = np.arange(len(layer_names))
    image = None
    for ax, (name, grid) in zip(axes[0], grids.items(), strict=True):
        image = ax.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="magma")
        ax.set_xticks(ticks, layer_names, rotation=90, fontsize=9)
        ax.set_yticks(ticks, layer_names, fontsize=9)
        a, b = pairs.get(name, ("", ""))
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        ax.set_title(f"{title}: {name}", fontsize=12)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="linear CKA")
    return fig
