"""The optimisation recipe every task trains with, and the history a run leaves.

Each field of :class:`TrainConfig` carries its help text (``field(metadata={"help": ...})``): the command line
builds its options from these dataclasses, so a default lives here and nowhere else. Values are checked when
the recipe is made, before any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from hepfm.core.errors import OptionError
from hepfm.train.device import check_device

__all__ = ["TrainConfig", "History", "OPTIMIZERS", "check_fields", "option"]

Optimizer = Literal["adamw", "lion"]
#: The optimizers :class:`TrainConfig` knows.
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)


def option(default: Any, help: str, **check: Any) -> Any:
    """A dataclass field with its help text and the checks :func:`check_fields` applies.

    ``check``: ``minimum`` / ``exclusive_minimum`` / ``maximum`` / ``exclusive_maximum`` bounds, ``choices``.
    """
    return field(default=default, metadata={"help": help, **check})


def check_fields(obj: Any) -> None:
    """Apply every field's checks (see :func:`option`); the first violation raises an OptionError."""
    for f in fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if value is None and "None" in str(f.type):
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise OptionError(f.name, f"must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        numeric = {k: meta[k] for k in ("minimum", "exclusive_minimum", "maximum", "exclusive_maximum") if k in meta}
        if not numeric:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise OptionError(f.name, f"must be a finite number, got {value!r}")
        if str(f.type).startswith("int") and not isinstance(value, int):
            raise OptionError(f.name, f"must be an integer, got {value!r}")
        bounds = (
            ("minimum", value < meta.get("minimum", -math.inf), ">="),
            ("exclusive_minimum", value <= meta.get("exclusive_minimum", -math.inf), ">"),
            ("maximum", value > meta.get("maximum", math.inf), "<="),
            ("exclusive_maximum", value >= meta.get("exclusive_maximum", math.inf), "<"),
        )
        for key, bad, sign in bounds:
            if key in numeric and bad:
                raise OptionError(f.name, f"must be {sign} {numeric[key]}, got {value!r}")


@dataclass
class TrainConfig:
    """Optimisation recipe; stored with every checkpoint."""

    epochs: int = option(20, "Maximum epochs (early stopping may end sooner).", minimum=1)
    batch_size: int = option(128, "Examples per batch (per process under torchrun).", minimum=1)
    lr: float = option(5e-4, "Peak learning rate (of the new head when fine-tuning).", exclusive_minimum=0)
    weight_decay: float = option(0.01, "Decoupled weight decay.", minimum=0)
    # Lion takes ~3-10x lower learning rates than AdamW
    optimizer: Optimizer = option("adamw", "Optimizer: adamw or lion.", choices=OPTIMIZERS)
    warmup_epochs: float = option(1.0, "Epochs of linear learning-rate warm-up.", minimum=0)
    min_lr_ratio: float = option(0.01, "The cosine decays to lr * this.", minimum=0, maximum=1)
    grad_clip: float = option(1.0, "Gradient-norm clipping (0: none).", minimum=0)
    ema_decay: float = option(
        0.999, "Decay of the weights' moving average (0: no EMA).", minimum=0, exclusive_maximum=1
    )
    patience: int = option(5, "Early-stopping patience in epochs (0: never stop).", minimum=0)
    seed: int = option(0, "Seed of initialisation, split and shuffling.", minimum=0)
    device: str = option("auto", "Device: auto, cpu, cuda, cuda:1, mps.")
    amp: bool = option(True, "Mixed precision on CUDA (bf16 where supported); ignored on CPU.")
    num_workers: int = option(0, "DataLoader worker processes.", minimum=0)
    # Batches of similar multiplicity cut padding work; a chunk of this many batches is sorted by length.
    # Used only for datasets of at least 4 chunks (0 disables), so small samples keep fully random batches.
    bucket_batches: int = option(16, "Batches sorted by length together (0: random batches).", minimum=0)
    keep_epochs: int = option(2, "Training-state checkpoints kept on disk.", minimum=1)
    # An epoch over 10^6 streamed jets takes an hour on a laptop: a killed run loses at most this much of it.
    save_minutes: float = option(
        20.0,
        "Also save the training state every this many minutes inside an epoch (0: at epoch ends only).",
        minimum=0,
    )
    progress: bool = option(True, "Show progress bars.")

    def __post_init__(self) -> None:
        check_fields(self)
        check_device(self.device)


@dataclass
class History:
    """Per-epoch records of a run (losses, validation metrics, learning rate, wall time) and its best epoch."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False

    @property
    def wall_seconds(self) -> float:
        """The run's wall time to the end of its last epoch, over every process that trained it (resumed runs)."""
        return self.epochs[-1]["wall_seconds"] if self.epochs else 0.0
