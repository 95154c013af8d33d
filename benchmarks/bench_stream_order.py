"""Streamed pretraining speed against batch order: shuffled jets against jets batched by multiplicity.

``hepfm pretrain --stream`` reads a hepfm dataset shard by shard; with ``bucket_batches`` > 0 (the default) each
shuffled buffer is batched by multiplicity (``ShardedJetDataset.set_buckets``), so a batch is padded only to
its own longest jet. This prints, for both orders in one run, the padded particle slots per real particle over
the shards read and the time of PET's pretraining step (classifier + diffusion, the OmniLearn objective) on
the first batches, with the thread count given.

Usage::

    python benchmarks/bench_stream_order.py --data DIR [--shards 8] [--steps 40] [--config tiny] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hepfm.data import FeatureNormaliser, ShardedJetDataset
from hepfm.data.storage import read_jet_shard, shard_paths, shard_to_sample
from hepfm.models import PET, PETConfig
from hepfm.train.objectives import PretrainObjective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a hepfm jet dataset directory (may be unfinished)")
    parser.add_argument("--shards", type=int, default=8, help="shards read")
    parser.add_argument("--steps", type=int, default=40, help="training steps timed per order")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shards = shard_paths(args.data, allow_incomplete=True)[: args.shards]
    array, attrs = read_jet_shard(shards[0])
    first = shard_to_sample(array, attrs, max_particles=128, source=str(shards[0]))
    normaliser = FeatureNormaliser.fit(first)
    print(
        f"{len(shards)} shards of {args.data}, batch {args.batch_size}, PET {args.config}, {args.threads} thread(s)\n"
    )
    print("| batch order | batches | padded slots per particle | seconds per step | jets/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, buckets in (("shuffled", 0), ("by multiplicity", 16)):
        data = ShardedJetDataset(args.data, seed=0, shards=shards, normaliser=normaliser)
        data.set_buckets(args.batch_size, buckets)
        batches = list(DataLoader(data, batch_size=args.batch_size, collate_fn=data.collate))
        slots = sum(b.mask.numel() for b in batches) / sum(int(b.mask.sum()) for b in batches)
        torch.manual_seed(0)
        model = PET(PETConfig.named(args.config, n_classes=len(attrs["class_names"])))
        objective = PretrainObjective(model)
        optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
        timed = batches[: args.steps + 2]
        for k, batch in enumerate(timed):
            if k == 2:  # after two warm-up steps
                start = time.perf_counter()
            loss, _ = objective(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        step = (time.perf_counter() - start) / max(1, len(timed) - 2)
        print(f"| {name} | {len(batches)} | {slots:.3f} | {step:.3f} | {args.batch_size / step:.0f} |")


if __name__ == "__main__":
    main()
