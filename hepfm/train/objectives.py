"""Task objectives for :func:`hepfm.train.loop.fit`: thin modules, one loss each.

* :class:`PretrainObjective` — OmniLearn pretraining: classification of clean jets, classification of
  noised jets, diffusion (v-prediction) of the particles given class and jet features, and regression
  of the jet features.
* :class:`ClassifierObjective` — fine-tuning (and training from scratch): cross entropy on clean jets,
  or on events for the event model.
* :class:`EventPretrainObjective` — event-model pretraining: multiclass cross entropy over the processes,
  or multilabel truth (binary cross entropy over the hard-process content plus regression of the
  kinematic targets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from hepfm.core.errors import DataError, OptionError
from hepfm.data.datasets import JetBatch
from hepfm.models.families import family_of
from hepfm.train.diffusion import noise, velocity_loss

if TYPE_CHECKING:
    from hepfm.data.graphs import EventBatch

__all__ = ["PretrainObjective", "ClassifierObjective", "EventPretrainObjective", "EVENT_TASKS"]

#: The event model's pretraining tasks.
EVENT_TASKS = ("multiclass", "multilabel")


class PretrainObjective(nn.Module):
    """Loss = CE(clean) + CE(noised) + w_gen * diffusion + w_jet * jet-feature regression.

    Args:
        model: a :class:`hepfm.models.PET` with its generative head.
        gen_weight: weight of the diffusion loss.
        jet_weight: weight of the jet-feature regression.
    """

    model: Any  # a PET

    def __init__(self, model: nn.Module, gen_weight: float = 1.0, jet_weight: float = 0.1):
        super().__init__()
        self.model, self.gen_weight, self.jet_weight = model, gen_weight, jet_weight

    def forward(self, batch: JetBatch):
        x, mask, jet, label = batch.x, batch.mask, batch.jet, batch.y
        model = self.model
        h, temb = model.body(x, mask)
        logits, jet_pred = model.classify(h, mask, None, temb)
        ce = F.cross_entropy(logits, label)
        loss_jet = F.mse_loss(jet_pred, jet)

        t = torch.rand(x.shape[0], device=x.device, dtype=x.dtype)
        z, v = noise(x, mask, t)
        h_t, temb_t = model.body(z, mask, t)
        logits_t, _ = model.classify(h_t, mask, None, temb_t)
        ce_t = F.cross_entropy(logits_t, label)
        drop = torch.rand(label.shape, device=label.device) < model.config.label_dropout
        cond = torch.where(drop, torch.full_like(label, model.config.n_classes), label)
        loss_gen = velocity_loss(model.velocity(h_t, mask, jet, temb_t, cond), v, mask)

        loss = ce + ce_t + self.gen_weight * loss_gen + self.jet_weight * loss_jet
        acc = (logits.argmax(-1) == label).float().mean()
        parts = {"ce": ce, "ce_noised": ce_t, "diffusion": loss_gen, "jet": loss_jet, "accuracy": acc}
        return loss, {k: v.item() for k, v in parts.items()}


class ClassifierObjective(nn.Module):
    """Cross entropy of the classifier on clean jets (PET) or on events (event model); a weighted mean over
    the batch when its examples carry weights."""

    model: Any  # of any family

    def __init__(self, model: nn.Module, use_jet_features: bool = False):
        super().__init__()
        self.model, self.use_jet_features = model, use_jet_features
        self.family = family_of(model)

    def forward(self, batch):
        logits, label = self.family.logits(self.model, batch, self.use_jet_features), batch.y
        correct = (logits.argmax(-1) == label).float()
        if batch.weight is not None:
            w = batch.weight
            norm = w.sum().clamp_min(1e-12)
            loss = (w * F.cross_entropy(logits, label, reduction="none")).sum() / norm
            return loss, {"accuracy": ((w * correct).sum() / norm).item()}
        return F.cross_entropy(logits, label), {"accuracy": correct.mean().item()}


class EventPretrainObjective(nn.Module):
    """Event-model pretraining.

    ``multiclass``: cross entropy over the pretraining processes. ``multilabel``: binary cross entropy of
    the hard-process truth labels plus ``target_weight`` times the mean squared error of the kinematic
    targets (log(1 + x / 10 GeV)); its "accuracy" is the fraction of correctly predicted labels.
    """

    model: Any  # an EventGNN

    def __init__(self, model: nn.Module, task: str, target_weight: float = 1.0):
        super().__init__()
        if task not in EVENT_TASKS:
            raise OptionError("task", f"unknown event pretraining task {task!r}; use one of {', '.join(EVENT_TASKS)}")
        self.model, self.task, self.target_weight = model, task, target_weight

    def forward(self, batch: EventBatch):
        out = self.model(batch.graph)
        if self.task == "multiclass":
            loss = F.cross_entropy(out, batch.y)
            return loss, {"accuracy": (out.argmax(-1) == batch.y).float().mean().item()}
        if batch.truth is None or batch.targets is None:
            raise DataError("multilabel pretraining needs events with generator truth ('truth_*', 'target_*')")
        n_labels = batch.truth.shape[1]
        bce = F.binary_cross_entropy_with_logits(out[:, :n_labels], batch.truth)
        mse = F.mse_loss(out[:, n_labels:], batch.targets)
        acc = ((out[:, :n_labels] > 0).float() == batch.truth).float().mean()
        return bce + self.target_weight * mse, {"bce": bce.item(), "mse": mse.item(), "accuracy": acc.item()}
