"""Checkpoints as safetensors + JSON: loadable anywhere, never executing pickled code.

A model checkpoint directory::

    config.json          {"format": 1, "model": "pet", "model_config": {...}, "class_names": [...],
                          "normaliser": {...}, "metrics": {...}, ...}
    model.safetensors    the weights to use (EMA weights when EMA was on, at the best epoch)

Training state for ``--resume`` lives beside it in ``training/`` (see :mod:`hepfm.train.loop`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from hepfm.data.sample import DataError
from hepfm.data.storage import atomic_write_bytes, atomic_write_json

__all__ = ["CheckpointError", "save_weights", "load_weights", "save_checkpoint", "load_checkpoint", "MODELS",
           "model_classes", "read_checkpoint_config"]

FORMAT = 1


class CheckpointError(DataError):
    """A checkpoint is missing, corrupt, or does not match the model asked for; names the file."""


def _pet():
    from hepfm.models.pet import PET, PETConfig

    return PET, PETConfig


def _event_gnn():
    from hepfm.models.event_gnn import EventGNN, EventGNNConfig  # torch-geometric: imported only when needed

    return EventGNN, EventGNNConfig


#: Model name -> a function returning (class, config dataclass), so imports stay light until a model is used.
MODELS = {"pet": _pet, "event_gnn": _event_gnn}


def model_classes(name: str):
    """(model class, config dataclass) registered as ``name`` in :data:`MODELS`."""
    return MODELS[name]()


def save_weights(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write tensors to a safetensors file atomically (contiguous CPU copies)."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(data))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or not a safetensors file ({err})") from err


def save_checkpoint(out: str | Path, model: nn.Module, model_name: str, meta: dict,
                    state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``out``.

    Args:
        out: checkpoint directory.
        model: the model (its ``config`` dataclass is stored).
        model_name: key of :data:`MODELS`, e.g. ``"pet"``.
        meta: extra JSON (class names, normaliser, metrics, ...).
        state_dict: weights to store instead of ``model.state_dict()`` (e.g. EMA weights).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(state_dict if state_dict is not None else model.state_dict(), out / "model.safetensors")
    config = {"format": FORMAT, "model": model_name, "model_config": model.config.to_dict(), **meta}
    atomic_write_json(out / "config.json", config)
    return out


def read_json_object(path: Path, what_is_missing: str) -> dict:
    """A JSON object from ``path``; a missing file, invalid JSON or another JSON type is a CheckpointError."""
    if not path.exists():
        raise CheckpointError(f"{path}: missing ({what_is_missing})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return data


def read_checkpoint_config(path: str | Path) -> dict:
    path = Path(path)
    cfg_path = path / "config.json"
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found")
    config = read_json_object(cfg_path, "a checkpoint has config.json and model.safetensors")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: field 'format' is {config.get('format')!r}, expected {FORMAT}")
    if config.get("model") not in MODELS:
        raise CheckpointError(f"{cfg_path}: field 'model' is {config.get('model')!r}; known: {list(MODELS)}")
    return config


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", **overrides) -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint directory.

    Args:
        path: checkpoint directory.
        device: where to put the model.
        overrides: changes to the stored model config (e.g. ``generative=False`` drops that head;
            weights of dropped modules are ignored, every kept weight must be present with its shape).

    Returns:
        (model in eval mode, the checkpoint's config.json as a dict).
    """
    config = read_checkpoint_config(path)
    cls, cfg_cls = model_classes(config["model"])
    stored = config.get("model_config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{Path(path) / 'config.json'}: field 'model_config' missing or not an object")

    def build(**changes):
        try:
            return cls(cfg_cls(**{**stored, **changes}))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{Path(path) / 'config.json'}: field 'model_config' does not fit "
                                  f"{cfg_cls.__name__} ({err})") from err

    model = build(**overrides)
    dropped = ()
    if overrides:  # weights of modules the overrides remove may be present; nothing else may
        with torch.device("meta"):
            dropped = set(build().state_dict()) - set(model.state_dict())
    weights = load_weights(Path(path) / "model.safetensors")
    load_into(model, weights, Path(path) / "model.safetensors", ignore=dropped)
    return model.to(device).eval(), config


def load_into(model: nn.Module, weights: dict[str, torch.Tensor], source: Path | str,
              ignore=(), skip: tuple[str, ...] = ()) -> None:
    """Copy ``weights`` into ``model`` with checks that name the file and the first bad tensor.

    Args:
        ignore: names of tensors in ``weights`` the model does not have and may skip (e.g. those of a
            head the model was built without).
        skip: parameter-name prefixes not to load (e.g. ``("head.",)`` for a new classification layer).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in weights and not k.startswith(skip)]
    if missing:
        raise CheckpointError(f"{source}: missing tensor(s) {missing[:5]} — checkpoint and model config differ")
    unexpected = [k for k in weights if k not in own and k not in ignore]
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor(s) {unexpected[:5]} — checkpoint and model config differ")
    for k, v in weights.items():
        if k in own and not k.startswith(skip) and own[k].shape != v.shape:
            raise CheckpointError(f"{source}: tensor {k!r} has shape {tuple(v.shape)}, the model expects "
                                  f"{tuple(own[k].shape)} — checkpoint and model config differ")
    model.load_state_dict({k: v for k, v in weights.items() if k in own and not k.startswith(skip)}, strict=False)
