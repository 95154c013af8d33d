"""Running a model over a dataset: raw head outputs and class probabilities, in the input order.

Examples are batched by length (jets of similar multiplicity together, where the dataset records lengths), so
a batch carries little padding; the results come back in the order of the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hepfm.models.families import family_of
from hepfm.train.device import resolve_device

__all__ = ["model_outputs", "predict", "eval_batches", "by_length"]


def by_length(dataset, indices) -> np.ndarray:
    """``indices`` sorted by the examples' lengths (particles per jet) where the dataset knows them, so that
    batches of them carry little padding; unchanged otherwise."""
    indices = np.asarray(indices)
    lengths = getattr(dataset, "lengths", None)
    if lengths is None:
        return indices
    return indices[np.argsort(np.asarray(lengths)[indices], kind="stable")]


def eval_batches(dataset, indices, batch_size: int, device: torch.device) -> Iterator:
    """Batches of ``dataset[indices]`` (jets or event graphs), in the order of ``indices``, on ``device``."""
    for start in range(0, len(indices), batch_size):
        yield dataset.collate([dataset[int(i)] for i in indices[start : start + batch_size]]).to(device)


@torch.no_grad()
def model_outputs(
    model: Any,
    dataset,
    batch_size: int = 512,
    device: str = "auto",
    use_jet_features: bool = False,
    across_ranks: bool = False,
) -> np.ndarray:
    """The head's raw outputs (N, K) over a dataset (jets or event graphs), in order.

    With ``across_ranks`` under DDP (torchrun) each rank runs a share of the examples and every rank gets
    them all back: a collective, which every rank must call.
    """
    dev = resolve_device(device)
    model = model.to(dev).eval()
    family = family_of(model)
    order = by_length(dataset, np.arange(len(dataset)))
    world = dist.get_world_size() if across_ranks and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    mine = order[rank::world]  # every world-th by length: the ranks' shares cost alike
    out = [
        family.logits(model, batch, use_jet_features).float().cpu()
        for batch in eval_batches(dataset, mine, batch_size, dev)
    ]
    width = out[0].shape[1] if out else model.head.out_features
    share = torch.cat(out).numpy() if out else np.zeros((0, width), dtype=np.float32)
    shares: list[Any] = [share]
    if world > 1:
        shares = [None] * world
        dist.all_gather_object(shares, share)
    result = np.empty((len(order), width), dtype=np.float32)
    for r, part in enumerate(shares):
        result[order[r::world]] = part
    return result


def predict(
    model: Any,
    dataset,
    batch_size: int = 512,
    device: str = "auto",
    use_jet_features: bool = False,
    across_ranks: bool = False,
) -> np.ndarray:
    """Class probabilities (N, C) of a dataset (jets or event graphs), in order (``across_ranks``: as
    :func:`model_outputs`)."""
    logits = torch.from_numpy(model_outputs(model, dataset, batch_size, device, use_jet_features, across_ranks))
    return torch.softmax(logits, -1).numpy()
