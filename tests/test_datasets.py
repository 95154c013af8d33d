"""Torch datasets: shapes, fixed normalisation, streaming over shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hepfm.data import DataError, FeatureNormaliser, JetDataset, ShardedJetDataset, read_jets
from hepfm.data.schema import JET_FEATURES, PARTICLE_FEATURES


def test_in_memory_dataset_batches(small_dataset):
    ds = JetDataset(read_jets(small_dataset, max_particles=64))
    x, mask, jet, label = next(iter(DataLoader(ds, batch_size=16)))
    assert x.shape == (16, 64, len(PARTICLE_FEATURES)) and x.dtype == torch.float32
    assert mask.shape == (16, 64) and mask.dtype == torch.bool
    assert jet.shape == (16, len(JET_FEATURES)) and label.dtype == torch.int64
    assert torch.all(x[~mask] == 0)  # padding stays exactly zero after normalisation
    real = x[mask]
    i = PARTICLE_FEATURES.index("log_pt")
    assert abs(real[:, i].mean()) < 0.2 and 0.8 < real[:, i].std() < 1.2


def test_normaliser_round_trip_and_mismatch():
    rng = np.random.default_rng(0)
    norm = FeatureNormaliser(*(rng.normal(size=k).astype(np.float32) for k in (13, 13, 5, 5)))
    back = FeatureNormaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(back.particle_std, norm.particle_std)
    bad = {**norm.to_dict(), "particle_features": ["pt"]}
    with pytest.raises(DataError, match="particle_features"):
        FeatureNormaliser.from_dict(bad, "ckpt.json")


def test_streaming_matches_in_memory(small_dataset):
    manifest = json.loads((small_dataset / "dataset.json").read_text())
    stored = FeatureNormaliser.from_dict(manifest["normalisation"])
    memory = JetDataset(read_jets(small_dataset), stored)
    stream = ShardedJetDataset(small_dataset)
    assert len(stream) == len(memory) == 48
    xs = torch.stack([item[0] for item in stream])
    torch.testing.assert_close(xs, memory.x)  # file order without a seed


def test_streaming_splits_shards_between_workers_and_ranks(small_dataset):
    seen = []
    for rank in (0, 1):
        ds = ShardedJetDataset(small_dataset, seed=1, rank=rank, world_size=2)
        loader = DataLoader(ds, batch_size=5, num_workers=2)
        seen.append(torch.cat([b[2] for b in loader]))
    assert len(seen[0]) + len(seen[1]) == 48
    # no jet is seen twice across ranks
    all_jets = torch.cat(seen)
    assert len(torch.unique(all_jets, dim=0)) == 48


def test_shuffling_changes_with_epoch(small_dataset):
    ds = ShardedJetDataset(small_dataset, seed=3)
    first = torch.stack([item[2] for item in ds])
    ds.set_epoch(1)
    second = torch.stack([item[2] for item in ds])
    assert not torch.equal(first, second)
    assert torch.equal(torch.sort(first[:, 0]).values, torch.sort(second[:, 0]).values)


def test_every_streamed_buffer_mixes_the_classes(small_dataset):
    # a factory shard holds one class: a buffer of two shards must hold one of each, in every epoch
    for seed in range(4):
        ds = ShardedJetDataset(small_dataset, seed=seed, shuffle_shards=2)
        for epoch in range(3):
            ds.set_epoch(epoch)
            labels = torch.stack([item[3] for item in ds])
            assert [sorted(set(labels[i : i + 16].tolist())) for i in range(0, 48, 16)] == [[0, 1]] * 3
    assert ShardedJetDataset(small_dataset).shuffle_shards == 4  # the default: all classes, at least 4 shards


def _multiplicities(ds, batch_size):
    return [b.mask.sum(1) for b in DataLoader(ds, batch_size=batch_size, collate_fn=ds.collate)]


def test_streaming_batches_jets_of_similar_multiplicity(small_dataset):
    ds = ShardedJetDataset(small_dataset, seed=3, shuffle_shards=6)  # one buffer of 48 jets
    plain = _multiplicities(ds, 2)
    ds.set_buckets(2, 6)  # sorted chunks of 12 jets
    bucketed = _multiplicities(ds, 2)
    assert sorted(torch.cat(bucketed).tolist()) == sorted(torch.cat(plain).tolist())
    spread = [float(np.mean([(b.max() - b.min()).item() for b in batches])) for batches in (plain, bucketed)]
    assert spread[1] < 0.5 * spread[0], spread
    # a buffer's partial batch goes into the next: 40 + 8 jets in batches of 3 lose and repeat nothing
    ds = ShardedJetDataset(small_dataset, seed=3, shuffle_shards=5)
    ds.set_buckets(3, 2)
    jets = torch.cat([b.jet for b in DataLoader(ds, batch_size=3, collate_fn=ds.collate)])
    assert len(torch.unique(jets, dim=0)) == len(jets) == 48
