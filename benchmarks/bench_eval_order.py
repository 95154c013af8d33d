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
from hepfm.train.recipes import _by_length, _dataset_for, _eval_batches, checkpoint_normaliser

from hepfm.data import read_jets
from hepfm.train.checkpoint import load_checkpoint
from hepfm.train.objectives import logits_and_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="jets in any format read_jets reads")
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, config = load_checkpoint(args.checkpoint, generative=False)
    dataset = _dataset_for(config, read_jets(args.data), checkpoint_normaliser(args.checkpoint))
    everything = np.arange(len(dataset))
    print(f"| batch order | seconds for {len(dataset)} jets |")
    print("| --- | --- |")
    for name, order in (("input order", everything), ("by multiplicity", _by_length(dataset, everything))):
        start = time.perf_counter()
        with torch.no_grad():
            for batch in _eval_batches(dataset, order, args.batch_size, torch.device("cpu")):
                logits_and_labels(model, batch)
        print(f"| {name} | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
