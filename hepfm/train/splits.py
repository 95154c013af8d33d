"""Training and validation splits: random example splits of a sample in memory, or disjoint shards of a
dataset streamed from disk with every DDP rank reading its share."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from hepfm.core.errors import DataError, OptionError
from hepfm.data.datasets import ShardedDataset, ShardedJetDataset
from hepfm.data.normaliser import FeatureNormaliser
from hepfm.data.storage import read_manifest, read_shard, shard_paths
from hepfm.train.state import data_fingerprint

__all__ = ["split", "subsets", "streamed", "production_normaliser", "world_size", "check_fraction"]


def check_fraction(val_fraction: float, name: str = "val_fraction") -> None:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float) or not 0 < val_fraction < 1:
        raise OptionError(name, f"must be between 0 and 1 (exclusive), got {val_fraction!r}")


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, validation) index arrays, fixed by ``seed``.

    >>> [len(part) for part in split(10, 0.2, seed=0)]
    [8, 2]
    """
    check_fraction(val_fraction)
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def subsets(dataset, val_fraction: float, seed: int) -> tuple[Subset, Subset]:
    """(training, validation) subsets of a map-style dataset, split by :func:`split`."""
    tr, va = split(len(dataset), val_fraction, seed)
    return Subset(dataset, tr.tolist()), Subset(dataset, va.tolist())


def world_size() -> int:
    """Processes in the DDP group (1 outside torchrun)."""
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def streamed(
    data: str | Path,
    val_fraction: float,
    seed: int,
    dataset: type[ShardedDataset] = ShardedJetDataset,
    *,
    allow_incomplete: bool = False,
    **options,
) -> tuple[ShardedDataset, ShardedDataset, list[str], str]:
    """Train/validation streamed datasets (``dataset``: :class:`ShardedJetDataset` or
    :class:`~hepfm.data.graphs.ShardedEventDataset`) over disjoint shards of a hepfm dataset directory: every
    ``round(1 / val_fraction)``-th shard is held out; each DDP rank reads its share. ``options`` go to both.

    Returns:
        (training set, validation set, class names, a fingerprint of the shards).
    """
    check_fraction(val_fraction)
    path = Path(data)
    if not path.is_dir():
        raise DataError(f"{path}: streaming reads a hepfm dataset directory")
    shards = shard_paths(path, allow_incomplete)
    every = max(2, round(1 / val_fraction))
    val_shards = shards[every - 1 :: every]
    train_shards = [s for s in shards if s not in val_shards]
    if not val_shards or not train_shards:
        raise DataError(f"{path}: {len(shards)} shard(s) cannot be split into training and validation shards")
    class_names = read_shard(shards[0])[1]["class_names"]
    rank, world = (torch.distributed.get_rank(), world_size()) if torch.distributed.is_initialized() else (0, 1)
    share = {"rank": int(os.environ.get("RANK", rank)), "world_size": int(os.environ.get("WORLD_SIZE", world))}
    train = dataset(path, shards=train_shards, seed=seed, **share, **options)
    val = dataset(path, shards=val_shards, **share, **options)
    manifest = read_manifest(path)
    fingerprint = data_fingerprint(
        manifest.get("seed"), manifest.get("settings"), [s.name for s in shards], [s.stat().st_size for s in shards]
    )
    return train, val, class_names, fingerprint


def production_normaliser(data: str | Path, allow_incomplete: bool) -> FeatureNormaliser | None:
    """The jet normalisation of an unfinished production, fitted as the factory will fit it once it is complete;
    None where ``dataset.json`` stores it (streamed jet datasets read it from there)."""
    if allow_incomplete and Path(data).is_dir() and read_manifest(data).get("normalisation") is None:
        return FeatureNormaliser.of_production(data, allow_incomplete=True)
    return None


def normaliser_of(data, sample, train_indices) -> FeatureNormaliser:
    """The normalisation a dataset directory's ``dataset.json`` stores, else one fitted on the training jets."""
    is_dir = isinstance(data, str | Path) and Path(data).is_dir()
    stored = read_manifest(data).get("normalisation") if is_dir else None
    return FeatureNormaliser.from_dict(stored) if stored else FeatureNormaliser.fit(sample[train_indices])
