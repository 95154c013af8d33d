"""The one training loop of hepfm, shared by pretraining, fine-tuning and every later task.

A task is an *objective*: an ``nn.Module`` holding the model whose ``forward(batch)`` returns
``(loss, {name: float})``. :func:`fit` does the rest: AdamW or Lion, linear warm-up then cosine decay,
gradient clipping, an exponential moving average (EMA) of the weights, early stopping on the
validation loss, per-epoch checkpoints (safetensors + JSON, written atomically), exact resumption,
device ``auto`` (cuda / mps / cpu), mixed precision on GPUs and multi-process data parallelism with
``torchrun`` (DDP; gloo on CPU, NCCL on GPU) without any change to the calling code.

Resumption is exact at epoch boundaries: the shuffling of epoch ``e`` depends only on (seed, e), and
the checkpoint carries the model, EMA, optimizer, scheduler and RNG states.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    Subset,
)
from tqdm.auto import tqdm

from hepfm.data.storage import atomic_write_json
from hepfm.train.checkpoint import CheckpointError, load_into, load_weights, read_json_object, save_weights
from hepfm.train.optim import Lion

__all__ = ["TrainConfig", "fit", "resolve_device", "to_device", "History"]


@dataclass
class TrainConfig:
    """Optimisation recipe; stored with every checkpoint."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.01
    optimizer: str = "adamw"  # "adamw" or "lion" (use ~3-10x lower lr with Lion)
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # 0 disables the EMA
    patience: int = 5  # epochs without validation improvement before stopping; 0 never stops
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA (bf16 where supported); ignored on CPU
    num_workers: int = 0
    # Batches of similar multiplicity cut padding work; a chunk of this many batches is sorted by length.
    # Used only for datasets of at least 4 chunks (0 disables), so small samples keep fully random batches.
    bucket_batches: int = 16
    keep_epochs: int = 2  # training-state checkpoints kept on disk
    progress: bool = True


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu (under torchrun: this rank's GPU)."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _distributed(device: torch.device) -> tuple[int, int]:
    """Join the torchrun process group if launched by torchrun; returns (rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, cfg.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _ema_update(decay: float):
    """EMA with warm-up: decay_t = min(decay, (1 + t) / (10 + t)), so short runs are not stuck at init."""

    def update(ema_params, params, n_averaged):
        d = min(decay, (1.0 + float(n_averaged)) / (10.0 + float(n_averaged)))
        torch._foreach_lerp_(ema_params, params, 1.0 - d)

    return update


def _optimizer(cfg: TrainConfig, param_groups) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "lion":
        return Lion(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'adamw' or 'lion'")


class BucketBatchSampler(Sampler):
    """Shuffled batches of jets with similar multiplicity, so that little padding is computed.

    The data are shuffled, cut into chunks of ``bucket`` batches, sorted by length within a chunk and
    split into batches; the batch order is shuffled again. Everything depends only on (seed, epoch),
    and under DDP each rank takes every ``world``-th batch (the same number on every rank).
    """

    def __init__(self, lengths: torch.Tensor, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world: int = 1, bucket: int = 32):
        self.lengths, self.batch_size, self.bucket = lengths, batch_size, bucket
        self.seed, self.epoch, self.rank, self.world = seed, epoch, rank, world

    def _batches(self) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=g)
        batches = []
        for chunk in perm.split(self.bucket * self.batch_size):
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(chunk.split(self.batch_size))
        order = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in order]
        usable = len(batches) - len(batches) % self.world if len(batches) >= self.world else len(batches)
        return batches[:usable][self.rank::self.world]

    def __iter__(self):
        return (b.tolist() for b in self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def _lengths(data: Dataset) -> torch.Tensor | None:
    """Particles per jet of a dataset (or a Subset of one) that records them."""
    if isinstance(data, Subset):
        inner = _lengths(data.dataset)
        return None if inner is None else inner[torch.as_tensor(data.indices)]
    return getattr(data, "lengths", None)


def _loader(data: Dataset, cfg: TrainConfig, epoch: int, rank: int, world: int, shuffle: bool) -> DataLoader:
    if isinstance(data, IterableDataset):
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        return DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=_collate(data))
    lengths = _lengths(data)
    chunk = cfg.bucket_batches * cfg.batch_size
    if shuffle and lengths is not None and cfg.bucket_batches > 0 and len(lengths) >= 4 * chunk:
        sampler = BucketBatchSampler(lengths, cfg.batch_size, cfg.seed, epoch, rank, world, cfg.bucket_batches)
        return DataLoader(data, batch_sampler=sampler, num_workers=cfg.num_workers, collate_fn=_collate(data))
    if not shuffle and lengths is not None:  # evaluation: order does not matter, so batches of similar length
        mine = torch.argsort(lengths, stable=True)[rank::world]
        return DataLoader(data, batch_sampler=[b.tolist() for b in mine.split(cfg.batch_size)],
                          num_workers=cfg.num_workers, collate_fn=_collate(data))
    if world > 1:
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=shuffle, seed=cfg.seed)
        sampler.set_epoch(epoch)
    elif shuffle:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    else:
        sampler = None
    return DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      drop_last=shuffle and len(data) >= 2 * cfg.batch_size, collate_fn=_collate(data))


def _collate(data: Dataset):
    """The ``collate`` of the dataset (or of the dataset a Subset wraps), else torch's default."""
    while isinstance(data, Subset):
        data = data.dataset
    return getattr(data, "collate", None)


def to_device(batch, device):
    """Move a batch to ``device``: a list of tensors, or one object with ``.to`` (a torch-geometric Batch)."""
    if isinstance(batch, list | tuple):
        return [b.to(device, non_blocking=True) for b in batch]
    return batch.to(device, non_blocking=True)


def _batch_size(batch) -> int:
    """Examples in a batch: graphs of a torch-geometric Batch, else the first tensor's leading dimension."""
    n = getattr(batch, "num_graphs", None)
    return int(n) if n is not None else batch[0].shape[0]


# -- training-state checkpoints ------------------------------------------------------------------------------


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


def _rng_states(device) -> dict[str, torch.Tensor]:
    """This process's random-number states (CPU, and its GPU), keyed by rank: every rank's under DDP."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    own = {f"torch_cpu.{rank}": torch.get_rng_state()}
    if device.type == "cuda":
        own[f"torch_cuda.{rank}"] = torch.cuda.get_rng_state(device)
    if not dist.is_initialized():
        return own
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, own)
    return {k: v for part in parts for k, v in part.items()}


def _save_state(run_dir: Path, epoch: int, model: nn.Module, ema, optimizer, scheduler, history: History,
                bad_epochs: int, cfg: TrainConfig, rng: dict[str, torch.Tensor]) -> None:
    final = run_dir / f"epoch-{epoch:04d}"
    tmp = run_dir / f".epoch-{epoch:04d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model.state_dict(), tmp / "model.safetensors")
    if ema is not None:
        save_weights(ema.state_dict(), tmp / "ema.safetensors")
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_weights({**{f"opt.{k}": v for k, v in opt_tensors.items()}, **{f"rng.{k}": v for k, v in rng.items()}},
                 tmp / "optimizer.safetensors")
    atomic_write_json(tmp / "state.json", {
        "epoch": epoch, "optimizer": opt_meta, "scheduler": scheduler.state_dict(), "bad_epochs": bad_epochs,
        "history": asdict(history), "train_config": asdict(cfg),
    })
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_json(run_dir / "latest.json", {"epoch": epoch, "dir": final.name})
    for old in sorted(run_dir.glob("epoch-*"))[: -cfg.keep_epochs]:
        shutil.rmtree(old, ignore_errors=True)


#: TrainConfig fields that may change when a run is resumed; any other change would alter the schedule.
RESUMABLE_CHANGES = ("patience", "device", "amp", "num_workers", "keep_epochs", "progress")


def recipe_changes(stored: dict, cfg: TrainConfig) -> str | None:
    """How ``cfg`` differs from a stored recipe in fields that may not change (``"epochs=5 -> 15, ..."``)."""
    changed = [k for k, v in asdict(cfg).items() if k not in RESUMABLE_CHANGES and k in stored and stored[k] != v]
    return ", ".join(f"{k}={stored[k]!r} -> {getattr(cfg, k)!r}" for k in changed) or None


def _load_state(run_dir: Path, model, ema, optimizer, scheduler, cfg: TrainConfig,
                device) -> tuple[int, History, int]:
    latest = read_json_object(run_dir / "latest.json", "the training state is incomplete")
    src = run_dir / str(latest.get("dir"))
    state = read_json_object(src / "state.json", "the training state is incomplete")
    changes = recipe_changes(state.get("train_config", {}), cfg)
    if changes:
        raise CheckpointError(f"{src / 'state.json'}: the run was started with another recipe ({changes}); "
                              "resume with the same settings")
    load_into(model, load_weights(src / "model.safetensors"), src / "model.safetensors")
    if ema is not None:
        load_into(ema, load_weights(src / "ema.safetensors"), src / "ema.safetensors")
    tensors = load_weights(src / "optimizer.safetensors")
    opt = {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}
    try:
        optimizer.load_state_dict(_unflatten_optimizer(opt, state["optimizer"]))
        scheduler.load_state_dict(state["scheduler"])
        history = History(**state["history"])
        epoch, bad_epochs = state["epoch"], state["bad_epochs"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{src}: training state does not fit this run ({err!r})") from err
    rank = dist.get_rank() if dist.is_initialized() else 0
    # states written before the RNG was saved per rank hold one "rng.torch_cpu"
    cpu = tensors.get(f"rng.torch_cpu.{rank}", tensors.get("rng.torch_cpu"))
    if cpu is not None:
        torch.set_rng_state(cpu)
    if device.type == "cuda" and f"rng.torch_cuda.{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.torch_cuda.{rank}"], device)
    return epoch + 1, history, bad_epochs


# -- the loop ------------------------------------------------------------------------------------------------


@torch.no_grad()
def _evaluate(objective: nn.Module, loader: DataLoader, device, autocast) -> dict[str, float]:
    objective.eval()
    sums: dict[str, float] = {}
    n = 0
    for batch in loader:
        batch = to_device(batch, device)
        with autocast():
            loss, metrics = objective(batch)
        b = _batch_size(batch)
        n += b
        for k, v in {"loss": loss.item(), **metrics}.items():
            sums[k] = sums.get(k, 0.0) + v * b
    if dist.is_initialized():  # a rank may have had no batch at all (streamed shards): merge what each saw
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (n, sums))
        n, sums = 0, {}
        for n_rank, sums_rank in parts:
            n += n_rank
            for k, v in sums_rank.items():
                sums[k] = sums.get(k, 0.0) + v
    return {k: v / max(n, 1) for k, v in sums.items()}


def _lockstep(batches, device):
    """Yield batches while every DDP rank still has one: streamed shards need not split evenly, and a rank
    that stopped early would leave the others waiting in the gradient all-reduce."""
    it = iter(batches)
    while True:
        batch = next(it, None)
        more = torch.tensor([batch is not None], dtype=torch.int32, device=device)
        dist.all_reduce(more, op=dist.ReduceOp.MIN)
        if not more.item():
            return
        yield batch


def fit(
    objective: nn.Module,
    train_data: Dataset,
    val_data: Dataset,
    cfg: TrainConfig,
    out: str | Path,
    *,
    param_groups: list[dict] | None = None,
    resume: bool = False,
    on_best: Callable[[nn.Module, dict, int], None] | None = None,
) -> History:
    """Train ``objective.model`` and checkpoint every epoch.

    Args:
        objective: module with a ``model`` attribute; ``forward(batch) -> (loss, metrics)``.
        train_data, val_data: datasets yielding tuples of tensors (``(x, mask, jet, label)`` for jets).
        cfg: the recipe.
        out: run directory; training state goes to ``out/training/``.
        param_groups: optimizer parameter groups with ``lr_scale`` (default: all parameters at ``cfg.lr``).
        resume: continue from ``out/training/latest.json`` (exactly where the last epoch ended).
        on_best: called on rank 0 as ``on_best(model, weights, epoch)`` whenever the validation loss
            improves; ``weights`` is the EMA state when EMA is on. Use it to write the deployable checkpoint.

    Returns:
        The :class:`History` (per-epoch losses, wall time, best epoch, whether it stopped early).
    """
    device = resolve_device(cfg.device)
    rank, world = _distributed(device)
    torch.manual_seed(cfg.seed + rank)
    out = Path(out)
    run_dir = out / "training"
    model = objective.model
    objective.to(device)

    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]
    groups = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in groups if g["params"]]
    optimizer = _optimizer(cfg, groups)
    probe = _loader(train_data, cfg, 0, rank, world, shuffle=True)
    steps_per_epoch = max(1, len(probe)) if not isinstance(train_data, IterableDataset) else max(
        1, math.ceil(len(train_data) / cfg.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, steps_per_epoch))
    ema = AveragedModel(model, multi_avg_fn=_ema_update(cfg.ema_decay)) if cfg.ema_decay > 0 else None

    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp)

    start_epoch, history, bad_epochs = 0, History(), 0
    if resume and (run_dir / "latest.json").exists():
        start_epoch, history, bad_epochs = _load_state(run_dir, model, ema, optimizer, scheduler, cfg, device)
    elif resume and rank == 0:
        warnings.warn(f"{run_dir}: no training state to resume from; starting at epoch 0", stacklevel=2)
    train_module = objective
    if world > 1:
        train_module = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)

    wall0 = time.perf_counter() - (history.epochs[-1]["wall_seconds"] if history.epochs else 0.0)
    for epoch in range(start_epoch, cfg.epochs):
        if history.stopped_early:
            break
        train_module.train()
        loader = _loader(train_data, cfg, epoch, rank, world, shuffle=True)
        bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not cfg.progress or rank != 0)
        total, n, t0 = 0.0, 0, time.perf_counter()
        for batch in _lockstep(bar, device) if world > 1 and isinstance(train_data, IterableDataset) else bar:
            batch = to_device(batch, device)
            with autocast():
                loss, _ = train_module(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item() * _batch_size(batch)
            n += _batch_size(batch)
            bar.set_postfix(loss=f"{total / max(n, 1):.4f}")
        train_seconds = time.perf_counter() - t0

        eval_objective = objective
        if ema is not None:
            eval_objective = _swap_model(objective, ema.module)
        val = _evaluate(eval_objective, _loader(val_data, cfg, epoch, rank, world, shuffle=False), device, autocast)
        record = {"epoch": epoch, "train_loss": total / max(n, 1), "val_loss": val["loss"],
                  **{f"val_{k}": v for k, v in val.items() if k != "loss"},
                  "lr": scheduler.get_last_lr()[0], "train_seconds": train_seconds,
                  "wall_seconds": time.perf_counter() - wall0}
        history.epochs.append(record)
        improved = val["loss"] < history.best_val_loss
        if improved:
            history.best_val_loss, history.best_epoch, bad_epochs = val["loss"], epoch, 0
        else:
            bad_epochs += 1
        if cfg.patience and bad_epochs >= cfg.patience:
            history.stopped_early = True
        rng = _rng_states(device)  # every rank's, gathered before rank 0 writes the state
        if rank == 0:
            if improved and on_best is not None:
                weights = ema.module.state_dict() if ema is not None else model.state_dict()
                on_best(model, weights, epoch)
            _save_state(run_dir, epoch, model, ema, optimizer, scheduler, history, bad_epochs, cfg, rng)
            if cfg.progress:
                tqdm.write(f"epoch {epoch}: train {record['train_loss']:.4f}  val {record['val_loss']:.4f}"
                           f"{'  *' if improved else ''}  ({train_seconds:.1f} s)")
        if world > 1:
            _check_in_sync(model, device, epoch)
            dist.barrier()
    return history


def _check_in_sync(model: nn.Module, device, epoch: int) -> None:
    """Under DDP every rank must hold the same weights after an epoch; anything else is a broken set-up."""
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(device)
    rank0 = sums.clone()
    dist.broadcast(rank0, 0)
    if not torch.allclose(sums, rank0, rtol=1e-9, atol=0):
        raise RuntimeError(f"rank {dist.get_rank()}: weights differ from rank 0's after epoch {epoch}")


class _Swapped(nn.Module):
    """The objective evaluated with other weights (the EMA copy), sharing everything else."""

    def __init__(self, objective: nn.Module, model: nn.Module):
        super().__init__()
        self.objective, self.model = objective, model

    def forward(self, batch):
        original = self.objective.model
        self.objective.model = self.model
        try:
            return self.objective(batch)
        finally:
            self.objective.model = original


def _swap_model(objective: nn.Module, model: nn.Module) -> nn.Module:
    return _Swapped(objective, model)
