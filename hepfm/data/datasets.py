"""Torch datasets over jet samples: in memory, or streamed shard by shard (:class:`ShardedDataset`, which
the streamed event dataset of :mod:`hepfm.data.graphs` shares).

Both jet datasets yield ``(x, mask, jet, label)`` with ``x: (N, F)`` normalised particle features,
``mask: (N,)`` bool (True = real particle), ``jet: (J,)`` normalised jet features, ``label`` int64;
their ``collate`` stacks them into a :class:`JetBatch` of ``(B, N, F)``, ``(B, N)``, ``(B, J)``, ``(B,)``.

Normalisation is fixed per dataset (:class:`FeatureNormaliser`), stored in ``dataset.json`` by the
factory and in every checkpoint, so a model sees the same scale at training and inference time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from hepfm.core.errors import DataError
from hepfm.data.normaliser import FeatureNormaliser
from hepfm.data.sample import JetSample
from hepfm.data.schema import MAX_PARTICLES
from hepfm.data.storage import read_jet_shard, read_manifest, shard_class, shard_paths, shard_to_sample

__all__ = ["FeatureNormaliser", "JetBatch", "JetDataset", "ShardedDataset", "ShardedJetDataset"]


class JetDataset(Dataset):
    """A :class:`JetSample` in memory as a map-style torch dataset.

    Items are ``(x, mask, jet, label)``, and ``(x, mask, jet, label, weight)`` when the sample has weights.

    Args:
        sample: the jets.
        normaliser: fixed normalisation; fitted on ``sample`` when None (training data only!).
    """

    def __init__(self, sample: JetSample, normaliser: FeatureNormaliser | None = None):
        self.sample = sample
        self.normaliser = normaliser or FeatureNormaliser.fit(sample)
        x, jets = self.normaliser.transform(sample)
        self.x = torch.from_numpy(x)
        self.mask = torch.from_numpy(sample.mask)
        self.jets = torch.from_numpy(jets)
        self.labels = torch.from_numpy(sample.labels)
        self.weights = None if sample.weights is None else torch.as_tensor(sample.weights, dtype=torch.float32)
        self.lengths = self.mask.sum(1)  # particles per jet, for batching jets of similar size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        if self.weights is None:
            return self.x[i], self.mask[i], self.jets[i], self.labels[i]
        return self.x[i], self.mask[i], self.jets[i], self.labels[i], self.weights[i]

    @staticmethod
    def collate(items) -> JetBatch:
        """Stack items into a :class:`JetBatch`, cutting the padding no jet of the batch uses."""
        columns = [torch.stack(column) for column in zip(*items, strict=True)]
        return JetBatch(*columns).trimmed()


@dataclass
class JetBatch:
    """A batch of jets, the jet family's model input.

    Attributes:
        x: (B, N, F) normalised particle features, zero on padding.
        mask: (B, N) bool, True = real particle.
        jet: (B, J) normalised jet features.
        y: (B,) int64 labels.
        weight: (B,) float32 per-jet weights, or None (all 1).
    """

    x: torch.Tensor
    mask: torch.Tensor
    jet: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device, non_blocking: bool = True) -> JetBatch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        weight = None if self.weight is None else move(self.weight)
        return JetBatch(move(self.x), move(self.mask), move(self.jet), move(self.y), weight)

    def trimmed(self) -> JetBatch:
        """The batch without trailing particle slots that are padding in every jet (particles are sorted by pt)."""
        n = int(self.mask.any(0).nonzero().max()) + 1 if self.mask.any() else 1
        return JetBatch(self.x[:, :n], self.mask[:, :n], self.jet, self.y, self.weight)


class ShardedDataset(IterableDataset):
    """Streams a hepfm dataset directory one shard at a time, so it need not fit in memory.

    Shards are split between DataLoader workers and (with ``rank``/``world_size``) DDP processes;
    examples are shuffled within a buffer of ``shuffle_shards`` shards when ``seed`` is given. A factory shard
    holds one class, so the shards are streamed in rounds of one shard of every class (each class's shards and
    each round in random order): a buffer of as many shards as there are classes, the default, mixes them all
    in equal measure, as shuffling in memory does, instead of a few classes for thousands of steps. A family's
    dataset (:class:`ShardedJetDataset`, :class:`hepfm.data.graphs.ShardedEventDataset`) says how a shard
    becomes columns of arrays (``_columns``, the per-particle mask second) and how items become a batch
    (``collate``); items are the columns' rows as tensors.

    Args:
        path: dataset directory.
        seed: shuffling seed (None = file order); call :meth:`set_epoch` to reshuffle per epoch.
        shuffle_shards: how many shards are mixed in memory at once; None: as many as there are classes
            (at least 4).
        rank, world_size: this process's share of the shards under DDP.
        shards: a subset of the dataset's shard files (e.g. to hold some out for validation).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        seed: int | None = None,
        shuffle_shards: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        shards: list[Path] | None = None,
    ):
        self.path = Path(path)
        self.shards = list(shards) if shards is not None else shard_paths(self.path)
        self.seed, self.epoch = seed, 0
        self.shuffle_shards = shuffle_shards or max(4, len(set(self._classes)))
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.bucket_batches = 0, 0  # set_buckets

    @functools.cached_property
    def _classes(self) -> list[str | None]:
        """The class of each shard (None where a shard does not say)."""
        return [shard_class(shard) for shard in self.shards]

    def _columns(self, shard: Path) -> list[np.ndarray]:
        """One shard as arrays of equal length: the examples' rows, the per-particle mask (N, P) second."""
        raise NotImplementedError

    def _concatenate(self, parts: list[list[np.ndarray]]) -> list[np.ndarray]:
        """The columns of several shards (or a buffer and a carried remainder) as one set of columns."""
        return [np.concatenate(column) for column in zip(*parts, strict=True)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_shards(self) -> list[Path]:
        shards = list(self.shards)
        if self.seed is not None:
            shards = _class_rounds(shards, self._classes, np.random.default_rng([self.seed, self.epoch]))
        info = get_worker_info()
        n_workers, worker = (info.num_workers, info.id) if info else (1, 0)
        stride, start = self.world_size * n_workers, self.rank * n_workers + worker
        return shards[start::stride]

    @functools.cached_property
    def n_examples(self) -> int:
        """Examples in all the shards (every rank's share together)."""
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(shard).metadata.num_rows for shard in self.shards)

    def __len__(self) -> int:
        """About this process's share of the examples."""
        return math.ceil(self.n_examples / self.world_size)

    def set_buckets(self, batch_size: int, bucket_batches: int) -> None:
        """Batch examples of similar multiplicity, as in-memory training does (``BucketBatchSampler``).

        Each shuffled buffer is cut into chunks of ``bucket_batches`` batches, sorted by multiplicity within a
        chunk and split into batches of ``batch_size``, whose order is shuffled; a buffer of fewer than four
        chunks stays in random order. A buffer's last, partial batch is carried into the next buffer, so that
        every batch a DataLoader of ``batch_size`` forms is one of these. ``bucket_batches`` 0 turns it off.
        """
        self.batch_size, self.bucket_batches = batch_size, bucket_batches

    def __iter__(self):
        mine = self._my_shards()
        rng = np.random.default_rng([self.seed or 0, self.epoch, self.rank])
        bucketed = self.seed is not None and self.batch_size > 0 and self.bucket_batches > 0
        carry: list[np.ndarray] = []
        for start in range(0, len(mine), self.shuffle_shards):
            columns = self._concatenate([self._columns(shard) for shard in mine[start : start + self.shuffle_shards]])
            if carry:
                columns = self._concatenate([carry, columns])
            n = len(columns[0])
            if bucketed:
                if n >= 4 * self.batch_size * self.bucket_batches:  # as in memory: a small buffer stays random
                    order, rest = _bucket_order(columns[1].sum(1), self.batch_size, self.bucket_batches, rng)
                else:
                    perm = rng.permutation(n)
                    order, rest = perm[: n - n % self.batch_size], perm[n - n % self.batch_size :]
                carry = [c[rest] for c in columns]
            else:
                order = rng.permutation(n) if self.seed is not None else np.arange(n)
            yield from _items(columns, order)
        if carry:
            yield from _items(carry, np.arange(len(carry[0])))


class ShardedJetDataset(ShardedDataset):
    """Streams a hepfm jet dataset shard by shard (:class:`ShardedDataset`) as :class:`JetDataset` items.

    Args:
        path: dataset directory.
        max_particles: P, the padded length.
        normaliser: fixed normalisation; defaults to the one stored in ``dataset.json``.
        seed, shuffle_shards, rank, world_size, shards: see :class:`ShardedDataset`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_particles: int = MAX_PARTICLES,
        normaliser: FeatureNormaliser | None = None,
        **options,
    ):
        super().__init__(path, **options)
        self.max_particles = max_particles
        if normaliser is None:
            stored = read_manifest(self.path).get("normalisation")
            if stored is None:
                raise DataError(f"{self.path / 'dataset.json'}: field 'normalisation' missing; pass a normaliser")
            normaliser = FeatureNormaliser.from_dict(stored, str(self.path / "dataset.json"))
        self.normaliser = normaliser

    collate = staticmethod(JetDataset.collate)

    @property
    def n_jets(self) -> int:
        """Jets in all the shards (every rank's share together): :attr:`n_examples`."""
        return self.n_examples

    def _columns(self, shard: Path) -> list[np.ndarray]:
        array, attrs = read_jet_shard(shard)
        sample = shard_to_sample(array, attrs, max_particles=self.max_particles, source=str(shard))
        x, jets = self.normaliser.transform(sample)
        return [x, sample.mask, jets, sample.labels]


def _class_rounds(shards: list[Path], classes: list[str | None], rng: np.random.Generator) -> list[Path]:
    """The shards in rounds of one shard of every class: each class's shards shuffled, then round k holds the
    k-th shard of every class that has one, in random order. Shards of no known class form one class."""
    groups: dict[str | None, list[Path]] = {}
    for shard, name in zip(shards, classes, strict=True):
        groups.setdefault(name, []).append(shard)
    for group in groups.values():
        rng.shuffle(group)
    order: list[Path] = []
    for k in range(max((len(g) for g in groups.values()), default=0)):
        round_ = [group[k] for group in groups.values() if k < len(group)]
        order += [round_[i] for i in rng.permutation(len(round_))]
    return order


def _items(columns: list[np.ndarray], order: np.ndarray):
    for i in order:
        yield tuple(torch.from_numpy(np.asarray(c[i])) for c in columns)


def length_sorted_batches(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, bucket_batches: int
) -> list[np.ndarray]:
    """Cut shuffled indices ``order`` into chunks of ``bucket_batches`` batches, sort each chunk by ``lengths``
    and split it into batches of ``batch_size``: batches of similar length, in chunk order (the last may be
    partial). Shared by in-memory (``BucketBatchSampler``) and streamed training."""
    batches = []
    for start in range(0, len(order), batch_size * bucket_batches):
        chunk = order[start : start + batch_size * bucket_batches]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return batches


def _bucket_order(lengths: np.ndarray, batch_size: int, bucket_batches: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Indices in full batches of similar ``lengths``, in shuffled batch order, and those of the partial batch."""
    batches = length_sorted_batches(rng.permutation(len(lengths)), lengths, batch_size, bucket_batches)
    rest = batches.pop() if batches and len(batches[-1]) < batch_size else np.empty(0, dtype=np.int64)
    full = [batches[i] for i in rng.permutation(len(batches))]
    return (np.concatenate(full) if full else np.empty(0, dtype=np.int64)), rest
