"""Accuracy on the same data: hepfm's PET against the peer (OmniLearned PET v2 ``small``), from scratch.

Both models are trained by hepfm's one training loop with the same recipe (AdamW, warm-up + cosine, EMA,
the same batches in the same order, the same number of epochs) on the same top-tagging jets, and tested
on the same held-out jets; the table gives test AUC, accuracy, rejection at 30 % signal efficiency and the
training wall time. Rows: the peer on its 4 features (deta, dphi, log pT, log E); hepfm ``small`` widened
to the peer's parameter count on the same 4 features; hepfm ``small`` on its 13 features.

Usage (benchmark-only dependencies: ``make bench-model`` builds .venv-bench)::

    python benchmarks/bench_accuracy.py --train DIR --test DIR [--n-train 4000] [--epochs 4] [--particles 64]

``--train``/``--test`` take any format ``read_jets`` reads, e.g. the generated ``top``/``qcd`` samples of
notebook 02 (``hepfm generate jets --recipe qcd,top --jets-per-class 5500 --seed 1 --out DIR``).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from bench_model import PEER, matched_dim, peer_model, require_bench_dependencies
from torch import nn
from torch.utils.data import Subset

from hepfm.core.metrics import classifier_metrics
from hepfm.data import FeatureNormaliser, JetDataset, read_jets
from hepfm.models.pet import PET, PETConfig
from hepfm.train import TrainConfig, fit
from hepfm.train.splits import split


class Objective(nn.Module):
    """Cross entropy of a classifier reading the first ``n_features`` particle features."""

    def __init__(self, model: nn.Module, n_features: int, peer: bool):
        super().__init__()
        self.model, self.n_features, self.peer = model, n_features, peer

    def logits(self, x, mask):
        x = x[..., : self.n_features] * mask[..., None]
        if self.peer:  # the peer derives its mask from log pT != 0 and ignores the label in classifier mode
            return self.model(x, None)["y_pred"]
        return self.model(x, mask)

    def forward(self, batch):
        label = batch.y
        logits = self.logits(batch.x, batch.mask)
        loss = nn.functional.cross_entropy(logits, label)
        return loss, {"accuracy": (logits.argmax(-1) == label).float().mean().item()}


@torch.no_grad()
def probabilities(objective: Objective, dataset: JetDataset, batch_size: int = 256) -> np.ndarray:
    objective.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        batch = dataset.collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        out.append(torch.softmax(objective.logits(batch.x, batch.mask), -1).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--n-train", type=int, default=4000, help="training jets (validation taken out of them)")
    parser.add_argument("--n-test", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--particles", type=int, default=64, help="constituents kept per jet")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    require_bench_dependencies()

    train = read_jets(args.train, max_particles=args.particles)
    test = read_jets(args.test, max_particles=args.particles)
    rng = np.random.default_rng(args.seed)
    train = train[np.sort(rng.permutation(len(train))[: args.n_train])]
    test = test[np.sort(rng.permutation(len(test))[: args.n_test])]
    normaliser = FeatureNormaliser.fit(train)
    data, test_set = JetDataset(train, normaliser), JetDataset(test, normaliser)
    tr, va = split(len(train), 0.2, args.seed)
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=args.lr, patience=0, seed=args.seed, bucket_batches=0)

    torch.manual_seed(args.seed)
    peer = peer_model()
    n_peer = sum(p.numel() for p in peer.parameters())
    dim = matched_dim(n_peer, 4)
    rows = {
        f"peer {PEER} small, 4 features": (peer, 4, True),
        f"hepfm small dim {dim}, 4 features": (
            PET(PETConfig.named("small", generative=False, n_classes=2, n_features=4, pid_dropout=0.0, dim=dim)),
            4,
            False,
        ),
        "hepfm small, 13 features": (PET(PETConfig.named("small", generative=False, n_classes=2)), 13, False),
    }
    print(
        f"{len(tr)} training, {len(va)} validation, {len(test)} test jets ({args.test}); "
        f"{args.particles} particles, {args.epochs} epochs, AdamW lr {args.lr}, batch 128, seed {args.seed}\n"
    )
    print("| model | parameters | test AUC | accuracy | rej30 | training wall time [s] |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (model, n_features, is_peer) in rows.items():
        torch.manual_seed(args.seed)
        objective = Objective(model, n_features, is_peer)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            fit(objective, Subset(data, tr), Subset(data, va), cfg, run_dir)
        wall = time.perf_counter() - start
        m = classifier_metrics(test.labels, probabilities(objective, test_set), signal=1)
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"| {name} | {n_params:,} | {m['auc']:.4f} | {m['accuracy']:.4f} | {m['rej30']:.1f} | {wall:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
