"""Centered kernel alignment (CKA) between layer representations.

* Linear CKA (Kornblith, Norouzi, Lee, Hinton, ICML 2019): for activations X (n, p) and Y (n, q) of the
  same n examples, CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels K = X X^T, L = Y Y^T;
  with centred features it equals ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
* Minibatch CKA (Nguyen, Raghu, Kornblith, ICLR 2021): the unbiased HSIC estimator (Song et al., 2012)
  averaged over minibatches, so that representations of many examples never have to be held at once.

:func:`layer_activations` collects per-example activations of chosen modules with forward hooks;
:func:`cka_matrix` compares every layer of one model with every layer of another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

__all__ = ["linear_cka", "hsic_unbiased", "MinibatchCKA", "layer_activations", "cka_matrix"]


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
        if self.cross is None:
            self.cross, self.self_x, self.self_y = cross, sx, sy
        else:
            self.cross, self.self_x, self.self_y = self.cross + cross, self.self_x + sx, self.self_y + sy
        self.batches += 1

    def compute(self) -> np.ndarray:
        if self.cross is None:
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
    store: dict[str, torch.Tensor] = {}

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

    def default(out):
        out = out[0] if isinstance(out, tuple | list) else out
        return out.reshape(out.shape[0], -1)

    return {n: (pool or default)(store[n]).detach().double() for n in layers}


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
