"""Events as torch-geometric graphs: one fully connected graph of reconstructed objects per event.

:class:`EventGraphDataset` turns an object-level :class:`~hepfm.data.sample.EventSample` into model
inputs once, and its ``collate`` builds a ``torch_geometric.data.Batch`` for a list of events directly
(nodes, every ordered pair of distinct nodes of an event as an edge, edge and global features) with
tensor operations, without a Python loop over events. :class:`ShardedEventDataset` streams a hepfm event
dataset shard by shard into the same batches (:func:`event_batch` builds both).

Features (fixed transformations, so checkpoints need no fitted normaliser):

* nodes (:data:`NODE_FEATURES`): log pT, eta, sin phi, cos phi, log E, b-tag, charge, one-hot object type;
* edges (:data:`EDGE_FEATURES`): Delta eta, Delta phi (wrapped), Delta R between the two objects;
* globals (:data:`GLOBAL_FEATURES`): log(1 + count) of objects, jets, b-tagged jets, leptons, photons,
  and log(1 + MET / GeV), log(1 + HT / GeV).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset
from torch_geometric.data import Batch

from hepfm.core.errors import DataError
from hepfm.data.datasets import ShardedDataset
from hepfm.data.sample import EventSample
from hepfm.data.schema import MAX_EVENT_PARTICLES, OBJECT_COLUMNS, OBJECT_TYPES
from hepfm.data.storage import read_event_shards

__all__ = ["EventBatch", "EventGraphDataset", "ShardedEventDataset", "event_batch", "event_features"]

_LOG_PT_SHIFT = 3.5  # log(33 GeV): centres the node momenta near 0
_TARGET_SCALE = 10.0  # GeV; kinematic targets are learnt as log(1 + x / 10 GeV)


def event_features(sample: EventSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node features (N, P, F), the mask (N, P) and global features (N, G) of an object-level sample."""
    if tuple(sample.particle_features) != OBJECT_COLUMNS:
        raise DataError(
            f"{sample.source}: event graphs need objects with columns {OBJECT_COLUMNS}, got "
            f"{tuple(sample.particle_features)} (particle-level events such as LHCO are not objects)"
        )
    obj, mask = sample.particles.astype(np.float32), sample.mask
    pt, eta, phi, energy, btag, charge, kind = (obj[..., i] for i in range(7))
    kind = np.where(mask, kind, -1).astype(np.int64)
    if ((kind >= len(OBJECT_TYPES)) | ((kind < 0) & mask)).any():
        raise DataError(f"{sample.source}: field 'type' holds codes outside 0..{len(OBJECT_TYPES) - 1}")
    onehot = (kind[..., None] == np.arange(len(OBJECT_TYPES))).astype(np.float32)
    nodes = (
        np.concatenate(
            [
                np.stack(
                    [
                        np.log(np.maximum(pt, 1e-3)) - _LOG_PT_SHIFT,
                        eta,
                        np.sin(phi),
                        np.cos(phi),
                        np.log(np.maximum(energy, 1e-3)) - _LOG_PT_SHIFT,
                        btag,
                        charge,
                    ],
                    -1,
                ),
                onehot,
            ],
            -1,
        )
        * mask[..., None]
    )
    is_type = onehot.transpose(2, 0, 1)  # (T, N, P)
    code = {t: i for i, t in enumerate(OBJECT_TYPES)}
    met = (pt * is_type[code["met"]]).sum(1)
    ht = (pt * is_type[code["jet"]]).sum(1)
    counts = [
        mask.sum(1),
        is_type[code["jet"]].sum(1),
        (btag * is_type[code["jet"]]).sum(1),
        is_type[code["electron"]].sum(1) + is_type[code["muon"]].sum(1),
        is_type[code["photon"]].sum(1),
    ]
    glob = np.stack([np.log1p(c) for c in counts] + [np.log1p(met), np.log1p(ht)], -1)
    return nodes.astype(np.float32), mask, glob.astype(np.float32)


class EventGraphDataset(Dataset):
    """Graphs of an object-level :class:`EventSample`; items are event indices, ``collate`` builds batches.

    Batches are :class:`EventBatch` objects: the graphs, labels, truth and weights of the events.
    """

    def __init__(self, sample: EventSample):
        nodes, mask, glob = event_features(sample)
        self.sample = sample
        self.nodes = torch.from_numpy(nodes)
        self.mask = torch.from_numpy(mask)
        self.eta = torch.from_numpy(sample.feature("eta").astype(np.float32))
        self.phi = torch.from_numpy(sample.feature("phi").astype(np.float32))
        self.globals = torch.from_numpy(glob)
        self.labels = torch.from_numpy(sample.labels.astype(np.int64))
        self.weights = None if sample.weights is None else torch.as_tensor(sample.weights, dtype=torch.float32)
        self.truth = None if sample.truth is None else torch.from_numpy(sample.truth.astype(np.float32))
        self.targets = None if sample.targets is None else torch.from_numpy(_scaled_targets(sample.targets))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, items) -> EventBatch:
        idx = torch.as_tensor(items, dtype=torch.long)
        return event_batch(
            self.nodes[idx],
            self.mask[idx],
            self.eta[idx],
            self.phi[idx],
            self.globals[idx],
            self.labels[idx],
            None if self.truth is None else self.truth[idx],
            None if self.targets is None else self.targets[idx],
            None if self.weights is None else self.weights[idx],
        )


class ShardedEventDataset(ShardedDataset):
    """Streams a hepfm event dataset shard by shard (:class:`~hepfm.data.datasets.ShardedDataset`), for event
    pretraining on more events than memory holds; batches are :class:`EventBatch` objects, as in memory.

    Every shard must hold the same classes and fields: generator truth (for multilabel pretraining) and weights
    in all of them or in none.

    Args:
        path: dataset directory.
        max_particles: objects per event kept (the hardest); a buffer is padded to its largest event.
        seed, shuffle_shards, rank, world_size, shards: see :class:`~hepfm.data.datasets.ShardedDataset`.
    """

    def __init__(self, path: str | Path, *, max_particles: int = MAX_EVENT_PARTICLES, **options):
        super().__init__(path, **options)
        self.max_particles = max_particles
        first = self._sample(self.shards[0]) if self.shards else None
        self.class_names = [] if first is None else first.class_names
        self.truth_names = () if first is None else first.truth_names
        self.target_names = () if first is None else first.target_names
        self.weighted = first is not None and first.weights is not None

    @property
    def layout(self) -> tuple:
        """(class names, truth names, target names, weighted): what every shard of this dataset holds."""
        return (self.class_names, self.truth_names, self.target_names, self.weighted)

    def _sample(self, shard: Path) -> EventSample:
        return read_event_shards(shard, max_particles=self.max_particles)

    def _columns(self, shard: Path) -> list[np.ndarray]:
        sample = self._sample(shard)
        if sample.class_names != self.class_names:
            raise DataError(
                f"{shard}: field 'class_names' {sample.class_names} differs from {self.class_names} in {self.shards[0]}"
            )
        if (sample.truth_names, sample.target_names, sample.weights is not None) != (
            self.truth_names,
            self.target_names,
            self.weighted,
        ):
            raise DataError(
                f"{shard}: holds other fields than {self.shards[0]} (truth {list(sample.truth_names)}, "
                f"weights {sample.weights is not None}); every shard of a streamed production needs the same"
            )
        nodes, mask, glob = event_features(sample)
        columns = [
            nodes,
            mask,
            sample.feature("eta").astype(np.float32),
            sample.feature("phi").astype(np.float32),
            glob,
            sample.labels.astype(np.int64),
        ]
        if sample.truth is not None:
            columns.append(sample.truth.astype(np.float32))
        if sample.targets is not None:
            columns.append(_scaled_targets(sample.targets))
        if sample.weights is not None:
            columns.append(sample.weights.astype(np.float32))
        return columns

    def _concatenate(self, parts: list[list[np.ndarray]]) -> list[np.ndarray]:
        width = max(part[1].shape[1] for part in parts)  # shards pad to their own largest event
        return [
            np.concatenate([_pad_objects(c, width) if k < 4 else c for c in column])
            for k, column in enumerate(zip(*parts, strict=True))
        ]

    def collate(self, items) -> EventBatch:
        columns = list(zip(*items, strict=True))
        # per object: padded to the batch's largest event; per event: stacked
        nodes, mask, eta, phi = (pad_sequence(list(c), batch_first=True) for c in columns[:4])
        glob, labels, *optional = (torch.stack(c) for c in columns[4:])
        truth = optional.pop(0) if self.truth_names else None
        targets = optional.pop(0) if self.target_names else None
        weights = optional.pop(0) if self.weighted else None
        return event_batch(nodes, mask, eta, phi, glob, labels, truth, targets, weights)


def _scaled_targets(targets: np.ndarray) -> np.ndarray:
    """Kinematic targets as the model learns them: log(1 + target / 10 GeV)."""
    return np.log1p(np.maximum(targets, 0) / _TARGET_SCALE).astype(np.float32)


def _pad_objects(column: np.ndarray, width: int) -> np.ndarray:
    """A per-object column (N, P, ...) zero-padded to ``width`` objects."""
    pad = [(0, 0), (0, width - column.shape[1])] + [(0, 0)] * (column.ndim - 2)
    return np.pad(column, pad) if width > column.shape[1] else column


def event_batch(nodes, mask, eta, phi, glob, labels, truth=None, targets=None, weights=None) -> EventBatch:
    """The :class:`EventBatch` of events given as padded tensors: node features (B, P, F), mask (B, P), eta
    and phi (B, P), globals (B, G), labels (B,), and truth, scaled targets and weights or None: every ordered
    pair of distinct objects of an event is an edge."""
    keep = mask.sum(0) > 0
    mask = mask[:, keep]
    nodes, eta, phi = nodes[:, keep], eta[:, keep], phi[:, keep]
    b, p = mask.shape
    flat = torch.cumsum(mask.reshape(-1).long(), 0).reshape(b, p) - 1  # node number of each real slot
    pair = mask[:, :, None] & mask[:, None, :] & ~torch.eye(p, dtype=torch.bool)[None]
    g, i, j = pair.nonzero(as_tuple=True)  # edges j -> i within event g
    deta = eta[g, i] - eta[g, j]
    dphi = torch.remainder(phi[g, i] - phi[g, j] + torch.pi, 2 * torch.pi) - torch.pi
    counts = mask.sum(1)
    graph = Batch(
        x=nodes[mask],
        edge_index=torch.stack([flat[g, j], flat[g, i]]),
        edge_attr=torch.stack([deta, dphi, torch.hypot(deta, dphi)], -1),
        u=glob,
        batch=torch.repeat_interleave(torch.arange(b), counts),
        ptr=torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)]),
    )
    return EventBatch(graph, labels, truth, targets, weights)


@dataclass
class EventBatch:
    """A batch of events, the event family's model input.

    Attributes:
        graph: the ``torch_geometric.data.Batch`` of the events' graphs: ``x`` (nodes, F), ``edge_index``
            (2, edges), ``edge_attr`` (edges, 3), ``u`` (graphs, G), ``batch`` and ``ptr``.
        y: (B,) int64 labels.
        truth: (B, L) hard-process truth labels, or None when the sample has no generator truth.
        targets: (B, K) kinematic targets log(1 + target / 10 GeV), or None.
        weight: (B,) float32 per-event weights, or None (all 1).
    """

    graph: Batch
    y: torch.Tensor
    truth: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    weight: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device, non_blocking: bool = True) -> EventBatch:
        def move(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return EventBatch(move(self.graph), move(self.y), move(self.truth), move(self.targets), move(self.weight))
