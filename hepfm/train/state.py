"""A training run's directory and its state: what ``--resume`` continues and what nothing may overwrite.

A run directory ``OUT``::

    OUT/config.json, OUT/model.safetensors   the deployable checkpoint, written when the run has finished
    OUT/metrics.json                          the run's results, written last
    OUT/training/run.json                     what the run trains on (a fingerprint of the data) and how
    OUT/training/best/                        the best weights so far (a checkpoint), promoted to OUT at the end
    OUT/training/epoch-NNNN/, latest.json     per-epoch state: model, EMA, optimizer, scheduler, RNG, history
    OUT/training/partial-NNNN-BBBBBBBB/       the same, part-way through an epoch (``save_minutes``, a stop)

A killed run leaves only ``training/``: nothing in ``OUT`` looks like a finished model. :func:`prepare_run`
refuses, before any work, an ``OUT`` that is (or holds, or lies inside) the checkpoint a run starts from, and
an ``OUT`` holding another run unless it is resumed (same data, same recipe) or ``overwrite`` replaces it.
Resumption is exact, at epoch boundaries and part-way through an epoch: the shuffling of epoch ``e`` depends
only on (seed, e), so the batches already trained on are skipped and the random-number states restored.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from hepfm.core.errors import CheckpointError, DataError, OutputError
from hepfm.core.io import atomic_write_json, read_json_object, writable_directory, write_metrics
from hepfm.train.checkpoint import load_into, load_weights, save_weights
from hepfm.train.config import History, TrainConfig

__all__ = [
    "RESUMABLE_CHANGES",
    "recipe_changes",
    "prepare_run",
    "record_data",
    "finish_run",
    "write_run_metrics",
    "data_fingerprint",
    "save_state",
    "load_state",
    "has_state",
    "training_dir",
    "best_dir",
]

#: TrainConfig fields that may change when a run is resumed; any other change would alter the schedule.
RESUMABLE_CHANGES = ("patience", "device", "amp", "num_workers", "keep_epochs", "save_minutes", "progress")
# The files of a run that --overwrite removes (and nothing else in OUT).
_RUN_FILES = ("config.json", "model.safetensors", "metrics.json")


def _rank() -> int:
    """This process's DDP rank, also before the process group is joined (torchrun sets RANK)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def training_dir(out: str | Path) -> Path:
    return Path(out) / "training"


def best_dir(out: str | Path) -> Path:
    return training_dir(out) / "best"


def has_state(out: str | Path) -> bool:
    """Whether ``out`` holds per-epoch training state to resume from."""
    return (training_dir(out) / "latest.json").exists()


def recipe_changes(stored: dict, cfg: TrainConfig) -> str | None:
    """How ``cfg`` differs from a stored recipe in fields that may not change (``"epochs=5 -> 15, ..."``)."""
    changed = [k for k, v in asdict(cfg).items() if k not in RESUMABLE_CHANGES and k in stored and stored[k] != v]
    return ", ".join(f"{k}={stored[k]!r} -> {getattr(cfg, k)!r}" for k in changed) or None


def _related(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def prepare_run(
    out: str | Path, *, resume: bool = False, overwrite: bool = False, starts_from: str | Path | None = None
) -> Path:
    """Check ``out`` before any work and make it ready for a run.

    Args:
        out: the run directory.
        resume: continue the run in ``out`` (its training state); a finished run is kept as it is.
        overwrite: replace the run in ``out`` (its checkpoint, metrics and training state are removed).
        starts_from: the checkpoint directory the run starts from, which ``out`` must stay clear of.

    Returns:
        ``out``, created.

    Raises:
        OutputError: ``out`` is, holds or lies inside ``starts_from``; is a file or not writable; or holds
            a run and neither ``resume`` nor ``overwrite`` is given (nothing in it is touched).
    """
    out = Path(out)
    if resume and overwrite:
        raise OutputError(f"{out}: resume and overwrite exclude each other; choose one")
    if starts_from is not None and _related(out, Path(starts_from)):
        raise OutputError(
            f"{out}: the output directory is, holds or lies inside the checkpoint {starts_from} the run "
            "starts from; choose another --out so that the checkpoint is not overwritten"
        )
    writable_directory(out)
    if _rank() != 0:  # rank 0 alone judges and prepares the directory; the others follow it
        return out
    held = [name for name in _RUN_FILES if (out / name).exists()]
    if training_dir(out).is_dir() and any(training_dir(out).iterdir()):
        held.append("training/")
    if held and overwrite:
        for name in _RUN_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(training_dir(out), ignore_errors=True)
    elif held and not resume:
        what = "a finished run" if "metrics.json" in held else "an unfinished run"
        raise OutputError(
            f"{out}: holds {what} ({', '.join(held)}); pass --resume (resume=True) to continue it or "
            "--overwrite (overwrite=True) to replace it; nothing was changed"
        )
    return out


def data_fingerprint(*parts: Any) -> str:
    """A sha256 over arrays (their dtype, shape and bytes), strings and numbers: what a run trains on."""
    digest = hashlib.sha256()
    for part in parts:
        if part is None:
            digest.update(b"none")
        elif isinstance(part, np.ndarray | torch.Tensor):
            array = np.ascontiguousarray(part.numpy() if isinstance(part, torch.Tensor) else part)
            digest.update(f"{array.dtype}{array.shape}".encode())
            if array.size:  # an empty array's memoryview cannot be cast; its dtype and shape say it all
                digest.update(array.data.cast("B"))
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def record_data(out: str | Path, fingerprint: str, description: dict | None = None) -> None:
    """Record (or, when resuming, check) what the run in ``out`` trains on.

    Raises:
        DataError: ``out`` holds a run trained on other data (a resumed run must see the same examples).
    """
    path = training_dir(out) / "run.json"
    if _rank() != 0:
        return
    if path.exists():
        stored = read_json_object(path, error=CheckpointError).get("data_fingerprint")
        if stored is not None and stored != fingerprint:
            raise DataError(
                f"{path}: the run in {out} was trained on other data (fingerprint {stored[:12]}... , "
                f"now {fingerprint[:12]}...); resume it with the same training data and n_train, or "
                "choose another --out"
            )
        return
    atomic_write_json(path, {"data_fingerprint": fingerprint, **(description or {})})


def finish_run(out: str | Path) -> None:
    """Promote the best weights (``training/best``) to the run's checkpoint in ``out``: weights, then config.
    Rank 0 writes them; under DDP every rank returns once they are written (each reads them next)."""
    if _rank() == 0:
        best = best_dir(out)
        for name in ("model.safetensors", "config.json"):
            if (best / name).exists():
                shutil.copyfile(best / name, Path(out) / f".{name}.tmp")
                os.replace(Path(out) / f".{name}.tmp", Path(out) / name)
    if dist.is_initialized():
        dist.barrier()


def write_run_metrics(out: str | Path, metrics: dict) -> None:
    """Write a finished run's ``metrics.json``: rank 0 alone under DDP, whose ranks hold the same metrics but
    for their own wall time."""
    if _rank() == 0:
        write_metrics(out, metrics)


# -- per-epoch state -------------------------------------------------------------------------------------------


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's random-number states (CPU, and its GPU), keyed by rank: every rank's under DDP."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    own = {f"torch_cpu.{rank}": torch.get_rng_state()}
    if device.type == "cuda":
        own[f"torch_cuda.{rank}"] = torch.cuda.get_rng_state(device)
    if not dist.is_initialized():
        return own
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, own)
    return {k: v for part in parts for k, v in part.items()}


def save_state(
    out: str | Path,
    epoch: int,
    model: nn.Module,
    ema,
    optimizer,
    scheduler,
    history: History,
    bad_epochs: int,
    cfg: TrainConfig,
    rng: dict[str, torch.Tensor],
    progress: dict | None = None,
) -> None:
    """Write the state after ``epoch`` to ``training/epoch-NNNN`` (atomically: a temporary directory renamed).

    With ``progress`` (``batches_done``, ``world``: the number of DDP ranks, ``rank_sums``: each rank's running
    loss sum and examples, ``train_seconds``, ``wall_seconds``) the state is one part-way through ``epoch``
    instead, written to ``training/partial-NNNN-BBBBBBBB`` (epoch, batches done); ``history`` then ends with the
    epoch before. ``latest.json`` names the new state only once
    it is whole and the state it replaces is removed only after that, so an interruption at any point (a
    second Ctrl-C) leaves a state to resume from.
    """
    run_dir = training_dir(out)
    name = f"partial-{epoch:04d}-{progress['batches_done']:08d}" if progress is not None else f"epoch-{epoch:04d}"
    final, tmp = run_dir / name, run_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model.state_dict(), tmp / "model.safetensors")
    if ema is not None:
        save_weights(ema.state_dict(), tmp / "ema.safetensors")
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_weights(
        {**{f"opt.{k}": v for k, v in opt_tensors.items()}, **{f"rng.{k}": v for k, v in rng.items()}},
        tmp / "optimizer.safetensors",
    )
    atomic_write_json(
        tmp / "state.json",
        {
            "epoch": epoch,
            "optimizer": opt_meta,
            "scheduler": scheduler.state_dict(),
            "bad_epochs": bad_epochs,
            "history": asdict(history),
            "train_config": asdict(cfg),
            **({"progress": progress} if progress is not None else {}),
        },
    )
    shutil.rmtree(final, ignore_errors=True)  # the same state written again (not the latest one)
    os.replace(tmp, final)
    atomic_write_json(run_dir / "latest.json", {"epoch": epoch, "dir": final.name})
    for earlier in run_dir.glob("partial*"):  # part-way states before this one
        if earlier != final:
            shutil.rmtree(earlier, ignore_errors=True)
    if progress is None:
        for old in sorted(run_dir.glob("epoch-*"))[: -cfg.keep_epochs]:
            shutil.rmtree(old, ignore_errors=True)


def load_state(
    out: str | Path, model: nn.Module, ema, optimizer, scheduler, cfg: TrainConfig, device: torch.device
) -> tuple[int, History, int, dict | None]:
    """Restore the state written last into ``out``.

    Returns:
        (epoch to run next, history, epochs without improvement, progress): ``progress`` is None after a whole
        epoch, else how far into that epoch the state was written (see :func:`save_state`).

    Raises:
        CheckpointError: the state is incomplete or corrupt, or was written with another recipe.
    """
    run_dir = training_dir(out)
    latest = read_json_object(run_dir / "latest.json", "the training state is incomplete", CheckpointError)
    src = run_dir / str(latest.get("dir"))
    state = read_json_object(src / "state.json", "the training state is incomplete", CheckpointError)
    changes = recipe_changes(state.get("train_config", {}), cfg)
    if changes:
        raise CheckpointError(
            f"{src / 'state.json'}: the run was started with another recipe ({changes}); resume with the same settings"
        )
    load_into(model, load_weights(src / "model.safetensors"), src / "model.safetensors")
    if ema is not None:
        load_into(ema, load_weights(src / "ema.safetensors"), src / "ema.safetensors")
    tensors = load_weights(src / "optimizer.safetensors")
    opt = {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}
    try:
        optimizer.load_state_dict(_unflatten_optimizer(opt, state["optimizer"]))
        scheduler.load_state_dict(state["scheduler"])
        history = History(**state["history"])
        epoch, bad_epochs, progress = state["epoch"], state["bad_epochs"], state.get("progress")
        if progress is not None and not isinstance(progress.get("batches_done"), int):
            raise ValueError(f"progress {progress!r} has no batches_done")
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{src}: training state does not fit this run ({err!r})") from err
    rank = dist.get_rank() if dist.is_initialized() else 0
    # states written before the RNG was saved per rank hold one "rng.torch_cpu"
    cpu = tensors.get(f"rng.torch_cpu.{rank}", tensors.get("rng.torch_cpu"))
    if cpu is not None:
        torch.set_rng_state(cpu)
    if device.type == "cuda" and f"rng.torch_cuda.{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.torch_cuda.{rank}"], device)
    return (epoch, history, bad_epochs, progress) if progress is not None else (epoch + 1, history, bad_epochs, None)
