"""Training: the one loop, its objectives and recipe, checkpoints, pretraining, fine-tuning and evaluation.

``loop`` (:func:`fit` only) <- ``state`` (a run's directory and per-epoch state) <- ``pretrain``, ``finetune``;
``checkpoint`` (the :class:`Checkpoint` object) <- ``evaluate``; ``inference`` runs models over datasets.
"""

from __future__ import annotations

from hepfm.core.errors import CheckpointError
from hepfm.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from hepfm.train.config import History, TrainConfig
from hepfm.train.device import resolve_device
from hepfm.train.evaluate import evaluate_checkpoint, evaluate_truth
from hepfm.train.finetune import FinetuneConfig, finetune, fit_classifier
from hepfm.train.inference import model_outputs, predict
from hepfm.train.loop import fit
from hepfm.train.objectives import ClassifierObjective, EventPretrainObjective, PretrainObjective
from hepfm.train.pretrain import in_label_space, pretrain, pretrain_events

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ClassifierObjective",
    "EventPretrainObjective",
    "FinetuneConfig",
    "History",
    "PretrainObjective",
    "TrainConfig",
    "evaluate_checkpoint",
    "evaluate_truth",
    "finetune",
    "fit",
    "fit_classifier",
    "in_label_space",
    "load_checkpoint",
    "model_outputs",
    "predict",
    "pretrain",
    "pretrain_events",
    "resolve_device",
    "save_checkpoint",
]
