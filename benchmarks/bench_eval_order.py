"""Evaluation speed against batch order: jets in input order against jets batched by multiplicity.

The classifier's evaluation (``model_outputs``, validation, the linear probe's feature pass) batches jets by
their number of particles, so each batch is padded only to its own longest jet. This prints the time of one
pass over a data set both ways, in one run, one thread.

Usage::

    python benchmarks/bench_eval_order.py --checkpoint checkpoints/pet-tiny-jetclass --data DIR [--batch-size 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hepfm.data import read_jets
from hepfm.train import load_checkpoint
from hepfm.train.inference import by_length, eval_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="jets in any format read_jets reads")
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint)
    model, dataset = ckpt.classifier(), ckpt.dataset(read_jets(args.data))
    everything = np.arange(len(dataset))
    print(f"| batch order | seconds for {len(dataset)} jets |")
    print("| --- | --- |")
    for name, order in (("input order", everything), ("by multiplicity", by_length(dataset, everything))):
        start = time.perf_counter()
        with torch.no_grad():
            for batch in eval_batches(dataset, order, args.batch_size, torch.device("cpu")):
                ckpt.family.logits(model, batch)
        print(f"| {name} | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
