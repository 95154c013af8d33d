"""Pretrained jet checkpoints side by side on the same fresh jets: 10-class accuracy and one-vs-rest AUCs.

The jets are made by the factory with a seed no pretraining production uses (1001 by default, as notebook 01's
evaluation), the checkpoints' classes and the CMS-like detector, so each checkpoint is tested on jets it has never
seen; the table gives, per checkpoint, the accuracy, the mean one-vs-rest AUC and the AUC of each class.

Usage::

    python benchmarks/eval_checkpoints.py pet-tiny-jetclass PATH ... [--jets-per-class 1000] [--seed 1001] \\
        [--data runs/eval-jets]

Names load shipped checkpoints (``load_checkpoint``); the fresh jets are kept in ``--data`` and reused by a
later call with the same size and seed.
"""

from __future__ import annotations

import argparse

from hepfm.core.metrics import multiclass_metrics
from hepfm.sim import generate_jets
from hepfm.train import evaluate_checkpoint, load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint names or directories (the same classes)")
    parser.add_argument("--jets-per-class", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default="runs/eval-jets", help="where the fresh jets are made (or reused)")
    args = parser.parse_args()
    first = load_checkpoint(args.checkpoints[0])
    classes = first.class_names
    data = generate_jets(classes, args.jets_per_class, args.data, seed=args.seed, workers=args.workers)
    rows = []
    for name in args.checkpoints:
        probabilities, sample, ckpt = evaluate_checkpoint(name, data)
        result = multiclass_metrics(sample.labels, probabilities, sample.class_names)
        rows.append((name, ckpt.config["weights_sha256"][:12], len(sample), result))
    print(f"{len(classes)} classes, {args.jets_per_class} fresh jets each (seed {args.seed}, {data}):\n")
    print("| checkpoint | sha256 | jets | accuracy | mean AUC | " + " | ".join(classes) + " |")
    print("| --- " * (5 + len(classes)) + "|")
    for name, sha, n, r in rows:
        aucs = " | ".join(f"{r['auc_per_class'][c]:.3f}" for c in classes)
        print(f"| {name} | {sha} | {n} | {r['accuracy']:.3f} | {r['mean_auc']:.3f} | {aucs} |")


if __name__ == "__main__":
    main()
