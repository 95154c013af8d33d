"""Checkpoints as safetensors + JSON, loadable anywhere, never executing pickled code; the :class:`Checkpoint`.

A model checkpoint directory::

    config.json          {"format": 1, "model": "pet", "model_config": {...}, "class_names": [...],
                          "normaliser": {...}, "max_particles": 128, "train_config": {...},
                          "weights_sha256": "...", ...}
    model.safetensors    the weights to use (EMA weights when EMA was on, at the best epoch)

:func:`load_checkpoint` reads ``config.json`` once into a :class:`Checkpoint` — the model's family, config,
normaliser, class names, padding and training recipe — checks the weights against the recorded sha256, and
hands out models (``ckpt.model()``), datasets (``ckpt.dataset(sample)``) and predictions
(``ckpt.predict(sample)``). Shipped checkpoints load by name: ``load_checkpoint("pet-tiny-jetclass")``.
Training state for ``--resume`` lives beside a run in ``training/`` (:mod:`hepfm.train.state`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from hepfm.core.errors import CheckpointError, DataError
from hepfm.core.io import atomic_write_bytes, atomic_write_json, read_json_object
from hepfm.data.normaliser import FeatureNormaliser
from hepfm.models.families import Family, family_of, family_of_model
from hepfm.train.inference import predict

__all__ = [
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "save_weights",
    "load_weights",
    "load_into",
    "check_weights",
    "checkpoint_dirs",
    "CHECKPOINTS_ENV",
]

FORMAT = 1
#: Environment variable: more directories (``:``-separated) holding checkpoints to load by name.
CHECKPOINTS_ENV = "HEPFM_CHECKPOINTS"
# The shipped checkpoints beside the package, in a source checkout (and an editable install).
_CHECKOUT = Path(__file__).resolve().parents[2] / "checkpoints"
_SHARE = ("share", "hepfm", "checkpoints")


@functools.cache
def _installed() -> tuple[Path, ...]:
    """Where a wheel put the shipped checkpoints (pyproject.toml's data-files): ``share/hepfm/checkpoints`` of
    the scheme it was installed with (an environment, ``--user``, ``--prefix``), read from its file list."""
    found = []
    try:
        files = importlib.metadata.distribution("hepfm").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        parts = file.parts
        at = next((i for i in range(len(parts) - 2) if parts[i : i + 3] == _SHARE), None)
        if at is not None:
            root = Path(file.locate())
            for _ in range(len(parts) - at - 3):  # up to .../share/hepfm/checkpoints
                root = root.parent
            found.append(root.resolve())
            break
    found.append(Path(sysconfig.get_path("data")) / Path(*_SHARE))
    return tuple(dict.fromkeys(found))


def checkpoint_dirs() -> list[Path]:
    """Where checkpoints are looked up by name: ``$HEPFM_CHECKPOINTS`` entries, then the shipped ones."""
    extra = [Path(p) for p in os.environ.get(CHECKPOINTS_ENV, "").split(":") if p]
    return [*extra, _CHECKOUT, *_installed()]


def save_weights(tensors: dict[str, torch.Tensor], path: str | Path) -> str:
    """Write tensors to a safetensors file atomically (contiguous CPU copies); returns the file's sha256."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    blob = save(data)
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_weights(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (never unpickled); with ``sha256``, the file must have that hash.

    Raises:
        CheckpointError: the file is missing, corrupt, not safetensors, or has another hash.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        tensors = load_file(str(path))  # parses a header and raw tensors: nothing in the file can run
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or not a safetensors file ({err})") from err
    if sha256 is not None and (actual := _sha256(path)) != sha256:
        raise CheckpointError(
            f"{path}: changed since it was written: sha256 {actual[:16]}... differs from the "
            f"{sha256[:16]}... that config.json records"
        )
    return tensors


def save_checkpoint(out: str | Path, model: Any, meta: dict, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model.safetensors`` then ``config.json`` (with the weights' sha256) into ``out``.

    Args:
        out: checkpoint directory.
        model: the model (its ``config`` dataclass and family are stored).
        meta: extra JSON (class names, normaliser, recipe, ...).
        state_dict: weights to store instead of ``model.state_dict()`` (e.g. EMA weights).
    """
    out = Path(out)
    sha = save_weights(state_dict if state_dict is not None else model.state_dict(), out / "model.safetensors")
    config = {
        "format": FORMAT,
        "model": family_of(model).model_name,
        "model_config": model.config.to_dict(),
        **meta,
        "weights_sha256": sha,
    }
    atomic_write_json(out / "config.json", config)
    return out


def check_weights(
    own: dict[str, torch.Tensor],
    weights: dict[str, torch.Tensor],
    source: Path | str,
    ignore=(),
    skip: tuple[str, ...] = (),
) -> None:
    """Check that ``weights`` fit a model whose state dict is ``own``; the message names the file and tensor.

    Args:
        ignore: names of tensors in ``weights`` the model does not have and may skip (e.g. those of a
            head the model was built without).
        skip: parameter-name prefixes not to load (e.g. ``("head.",)`` for a new classification layer).
    """
    missing = [k for k in own if k not in weights and not k.startswith(skip)]
    if missing:
        raise CheckpointError(f"{source}: missing tensor(s) {missing[:5]} — checkpoint and model config differ")
    unexpected = [k for k in weights if k not in own and k not in ignore]
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor(s) {unexpected[:5]} — checkpoint and model config differ")
    for k, v in weights.items():
        if k in own and not k.startswith(skip) and own[k].shape != v.shape:
            raise CheckpointError(
                f"{source}: tensor {k!r} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(own[k].shape)} — checkpoint and model config differ"
            )


def load_into(
    model: nn.Module, weights: dict[str, torch.Tensor], source: Path | str, ignore=(), skip: tuple[str, ...] = ()
) -> None:
    """Copy ``weights`` into ``model`` after :func:`check_weights`."""
    own = model.state_dict()
    check_weights(own, weights, source, ignore, skip)
    model.load_state_dict({k: v for k, v in weights.items() if k in own and not k.startswith(skip)}, strict=False)


@dataclass
class Checkpoint:
    """A model checkpoint, loaded once: what its model is, reads and predicts.

    Attributes:
        path: the checkpoint directory.
        config: ``config.json`` as read.
        family: the model family (jets or events).
        model_config: the stored model configuration (a dict of the family's config dataclass).
        class_names: the classes of the classifier head, in output order.
        normaliser: the feature normalisation the model reads its inputs with (None for the event model).
        max_particles: constituents (objects) per example the model was trained on.
        recipe: the training recipe (``train_config`` and the task's own settings).
    """

    path: Path
    config: dict
    family: Family
    model_config: dict
    class_names: list[str]
    normaliser: FeatureNormaliser | None
    max_particles: int
    recipe: dict
    _weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def task(self) -> str:
        """``pretrain``, ``finetune``, ``pretrain-multiclass`` or ``pretrain-multilabel``."""
        return str(self.config.get("task", ""))

    @property
    def model_name(self) -> str:
        return self.family.model_name

    def weights(self) -> dict[str, torch.Tensor]:
        """The stored tensors (read, and checked against the recorded sha256, on first use)."""
        if self._weights is None:
            self._weights = load_weights(self.path / "model.safetensors", self.config.get("weights_sha256"))
        return self._weights

    def build(self, **overrides) -> nn.Module:
        """The model with random weights: the checkpoint's architecture (with ``overrides``), for training from
        scratch with the same set-up."""
        cls, cfg_cls = self.family.model_classes()
        try:
            return cls(cfg_cls(**{**self.model_config, **overrides}))
        except (TypeError, ValueError) as err:
            raise CheckpointError(
                f"{self.path / 'config.json'}: field 'model_config' does not fit {cfg_cls.__name__} ({err})"
            ) from err

    def model(self, device: str | torch.device = "cpu", **overrides) -> nn.Module:
        """The model with the stored weights, in eval mode.

        Args:
            device: where to put it.
            overrides: changes to the stored model config (e.g. ``generative=False`` drops PET's generator;
                weights of dropped modules are ignored, every kept weight must be present with its shape).
        """
        model = self.build(**overrides)
        dropped: set[str] = set()
        if overrides:  # weights of modules the overrides remove may be present; nothing else may
            with torch.device("meta"):
                dropped = set(self.build().state_dict()) - set(model.state_dict())
        load_into(model, self.weights(), self.path / "model.safetensors", ignore=dropped)
        return model.to(device).eval()

    def classifier(self, device: str | torch.device = "cpu") -> nn.Module:
        """The model as a classifier (PET without its generative head)."""
        return self.model(device, **({"generative": False} if self.family.name == "jets" else {}))

    def read(self, data: Any, max_particles: int | None = None):
        """A sample of the kind the model reads (jets or events) from a path or a sample."""
        return self.family.read(data, max_particles or self.max_particles)

    def dataset(self, sample):
        """The torch dataset of ``sample`` with this model's normalisation."""
        return self.family.dataset(sample, self.normaliser)

    def check_classes(self, sample) -> None:
        """Refuse a sample whose classes are not the checkpoint's."""
        if list(sample.class_names) != list(self.class_names):
            raise DataError(
                f"{sample.source}: classes {sample.class_names} differ from the checkpoint's "
                f"{self.class_names} ({self.path})"
            )

    def predict(self, data: Any, device: str = "auto", batch_size: int = 512) -> np.ndarray:
        """Class probabilities (N, C) of the checkpoint's classifier on ``data`` (a path or a sample)."""
        if self.config.get("model_config", {}).get("task", "multiclass") != "multiclass":
            raise CheckpointError(
                f"{self.path}: a {self.model_config.get('task')} checkpoint has no class probabilities"
            )
        sample = self.read(data)
        return predict(
            self.classifier(),
            self.dataset(sample),
            batch_size,
            device,
            bool(self.recipe.get("use_jet_features", False)),
        )

    def __repr__(self) -> str:
        return (
            f"Checkpoint({str(self.path)!r}, {self.family.name}: {self.model_name}, "
            f"{len(self.class_names)} classes, task={self.task!r})"
        )


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_dir() or path.exists():
        return path
    if isinstance(name_or_path, str) and "/" not in name_or_path:
        for directory in checkpoint_dirs():
            if (directory / name_or_path).is_dir():
                return directory / name_or_path
        known = sorted(
            {p.name for d in checkpoint_dirs() if d.is_dir() for p in d.iterdir() if (p / "config.json").exists()}
        )
        raise CheckpointError(
            f"{name_or_path}: no such checkpoint directory, nor a checkpoint of that name "
            f"(known: {', '.join(known) or 'none'}); a run's output directory DIR/{name_or_path} "
            f"loads by name with {CHECKPOINTS_ENV}=DIR (`make foundation-pet-small` and the other foundation "
            "targets write theirs into $HEPFM_CACHE, ~/.cache/hepfm by default)"
        )
    raise CheckpointError(f"{path}: checkpoint directory not found")


def load_checkpoint(name_or_path: str | Path | Checkpoint) -> Checkpoint:
    """Read a checkpoint: a directory, or the name of a shipped one (``"pet-tiny-jetclass"``).

    The config and the weights are read and checked here, once: the weights against the recorded sha256 and
    against the architecture the config describes.

    Raises:
        CheckpointError: the checkpoint is missing or malformed (naming the file and field).
    """
    if isinstance(name_or_path, Checkpoint):
        return name_or_path
    path = _resolve(name_or_path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found (a file was given)")
    cfg_path = path / "config.json"
    config = read_json_object(cfg_path, "a checkpoint has config.json and model.safetensors", CheckpointError)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: field 'format' is {config.get('format')!r}, expected {FORMAT}")
    family = family_of_model(config.get("model"), cfg_path)  # type: ignore[arg-type]
    model_config = config.get("model_config")
    if not isinstance(model_config, dict):
        raise CheckpointError(f"{cfg_path}: field 'model_config' missing or not an object")
    class_names = config.get("class_names")
    if not isinstance(class_names, list) or not class_names:
        raise CheckpointError(f"{cfg_path}: field 'class_names' missing or empty")
    normaliser = None
    if family.name == "jets":
        if not isinstance(config.get("normaliser"), dict):
            raise CheckpointError(
                f"{cfg_path}: field 'normaliser' missing: a jet model needs the feature "
                "normalisation it was trained with"
            )
        try:
            normaliser = FeatureNormaliser.from_dict(config["normaliser"], str(cfg_path))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{cfg_path}: field 'normaliser' is malformed ({err})") from err
    max_particles = config.get("max_particles") or family.max_particles
    if not isinstance(max_particles, int) or max_particles < 1:
        raise CheckpointError(f"{cfg_path}: field 'max_particles' is {max_particles!r}, expected a positive integer")
    recipe = {
        k: config[k]
        for k in (
            "train_config",
            "task",
            "lr_factor",
            "freeze_backbone",
            "use_jet_features",
            "head_init",
            "pretrained",
            "init",
        )
        if k in config
    }
    ckpt = Checkpoint(path, config, family, model_config, list(class_names), normaliser, max_particles, recipe)
    with torch.device("meta"):  # the architecture alone, to check the weights against before any use
        shapes = ckpt.build().state_dict()
    check_weights(shapes, ckpt.weights(), path / "model.safetensors")
    return ckpt
