"""Run by the tests under ``torchrun``: ``fit`` a tiny PET classifier on two CPU ranks, with rank ``SIGNAL_RANK``
sending itself SIGTERM in training step ``SIGNAL_STEP`` (counted from 0 over the run; -1: never), saving the
state every ``SAVE_MINUTES`` too. Each rank writes ``OUT/result-RANK.json``: how its run ended and a hash of
its final weights.

    torchrun --nproc_per_node=2 tests/ddp_fit.py OUT SIGNAL_STEP SIGNAL_RANK SAVE_MINUTES [resume]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import torch
from conftest import synthetic_jets
from torch.utils.data import Subset

from hepfm.core.errors import Stopped
from hepfm.data import JetDataset
from hepfm.models import PET, PETConfig
from hepfm.train import ClassifierObjective, TrainConfig, fit


class SignalAt(torch.nn.Module):
    def __init__(self, objective, step):
        super().__init__()
        self.inner, self.model, self.step, self.seen = objective, objective.model, step, 0

    def forward(self, batch):
        if self.training:
            if self.seen == self.step:
                os.kill(os.getpid(), signal.SIGTERM)
            self.seen += 1
        self.inner.model = self.model  # validation swaps in the EMA weights here
        return self.inner(batch)


def main(out: str, step: int, signal_rank: int, save_minutes: float, resume: bool = False) -> None:
    rank = int(os.environ["RANK"])
    ds = JetDataset(synthetic_jets(96))
    train, val = Subset(ds, range(64)), Subset(ds, range(64, 96))  # 4 training batches a rank and epoch
    cfg = TrainConfig(epochs=2, patience=0, batch_size=8, progress=False, lr=1e-3, warmup_epochs=0.5, device="cpu")
    cfg = dataclasses.replace(cfg, save_minutes=save_minutes)
    torch.manual_seed(0)
    objective = ClassifierObjective(PET(PETConfig.named("tiny", n_classes=2, generative=False, dropout=0.1)))
    result: dict = {}
    try:
        history = fit(SignalAt(objective, step if rank == signal_rank else -1), train, val, cfg, out, resume=resume)
        result["train_loss"] = [e["train_loss"] for e in history.epochs]
    except Stopped as stopped:
        result |= {"stopped": str(stopped), "signum": stopped.signum}
    weights = hashlib.sha256()
    for tensor in objective.model.state_dict().values():
        weights.update(tensor.numpy().tobytes())
    result["weights"] = weights.hexdigest()
    Path(out, f"result-{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), resume=sys.argv[5:] == ["resume"])
