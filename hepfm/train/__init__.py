"""Training: the one loop, its objectives, checkpoints, and the pretrain/finetune recipes."""

from __future__ import annotations

from hepfm.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hepfm.train.loop import History, TrainConfig, fit, resolve_device
from hepfm.train.objectives import ClassifierObjective, EventPretrainObjective, PretrainObjective

__all__ = [
    "CheckpointError",
    "ClassifierObjective",
    "EventPretrainObjective",
    "History",
    "PretrainObjective",
    "TrainConfig",
    "fit",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
]
