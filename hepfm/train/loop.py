"""The one training loop of hepfm, shared by pretraining, fine-tuning and every later task.

A task is an *objective*: an ``nn.Module`` holding the model whose ``forward(batch)`` returns
``(loss, {name: float})``. :func:`fit` does the rest: AdamW or Lion, linear warm-up then cosine decay,
gradient clipping, an exponential moving average (EMA) of the weights, early stopping on the
validation loss, per-epoch training state (:mod:`hepfm.train.state`), exact resumption,
device ``auto`` (cuda / mps / cpu), mixed precision on GPUs and multi-process data parallelism with
``torchrun`` (DDP; gloo on CPU, NCCL on GPU) without any change to the calling code. Batches are the model
family's (:class:`~hepfm.data.datasets.JetBatch`, :class:`~hepfm.data.graphs.EventBatch`): ``len(batch)``
examples, moved with ``batch.to(device)``.

Resumption is exact, also part-way through an epoch (a state is saved every ``save_minutes``): the shuffling
of epoch ``e`` depends only on (seed, e), and the state carries the model, EMA, optimizer, scheduler and RNG
states and how many batches of the epoch were trained. In a single process, Ctrl-C (SIGINT, also a
notebook's interrupt) and SIGTERM (what batch systems send before a job's time runs out) stop training after
the step (or validation batch) in progress: the state is saved there and :class:`~hepfm.core.errors.Stopped`
raised, so that ``resume`` continues from that very step; a second signal stops at once. Under ``torchrun`` the
ranks agree after every step: a signal to any rank stops them all after the same step, with the state saved
(validation in progress is finished first); torchrun passes its own signal on and kills the ranks
``--shutdown-timeout`` seconds later (30 by default), so a repeated signal only asks again.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
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

from hepfm.core.errors import CheckpointError, OptionError, Stopped
from hepfm.core.memory import release_freed_memory
from hepfm.core.parallel import set_torch_threads
from hepfm.core.progress import progress_bar
from hepfm.core.signals import handling
from hepfm.data.datasets import length_sorted_batches
from hepfm.train.config import History, TrainConfig
from hepfm.train.device import resolve_device
from hepfm.train.optim import Lion
from hepfm.train.state import has_state, load_state, rng_states, save_state

__all__ = ["fit", "BucketBatchSampler", "data_loader", "lr_schedule"]


def _distributed(device: torch.device) -> tuple[int, int]:
    """Join the torchrun process group if launched by torchrun; returns (rank, world size). The rank's GPU
    (``resolve_device`` gives ``cuda`` its index) is made the current one for NCCL's collectives."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
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
    raise OptionError("optimizer", f"unknown optimizer {cfg.optimizer!r}; use 'adamw' or 'lion'")


class BucketBatchSampler(Sampler):
    """Shuffled batches of jets with similar multiplicity, so that little padding is computed.

    The data are shuffled, cut into chunks of ``bucket`` batches, sorted by length within a chunk and
    split into batches; the batch order is shuffled again. Everything depends only on (seed, epoch),
    and under DDP each rank takes every ``world``-th batch (the same number on every rank).
    """

    def __init__(
        self,
        lengths: torch.Tensor,
        batch_size: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        bucket: int = 32,
    ):
        self.lengths, self.batch_size, self.bucket = lengths, batch_size, bucket
        self.seed, self.epoch, self.rank, self.world = seed, epoch, rank, world

    def _batches(self) -> list[np.ndarray]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=g)
        batches = length_sorted_batches(perm.numpy(), self.lengths.numpy(), self.batch_size, self.bucket)
        order = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in order]
        usable = len(batches) - len(batches) % self.world if len(batches) >= self.world else len(batches)
        return batches[:usable][self.rank :: self.world]

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


def _worker_ignores_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C and SIGTERM to the training process, which stops them once it has saved
    (a batch system signals every process of a job; a worker killed first would lose the save)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def data_loader(data: Dataset, cfg: TrainConfig, epoch: int, rank: int, world: int, shuffle: bool) -> DataLoader:
    loader = _data_loader(data, cfg, epoch, rank, world, shuffle)
    if loader.num_workers:
        loader.worker_init_fn = _worker_ignores_stop_signals
    return loader


def _data_loader(data: Dataset, cfg: TrainConfig, epoch: int, rank: int, world: int, shuffle: bool) -> DataLoader:
    if isinstance(data, IterableDataset):
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        if hasattr(data, "set_buckets"):
            data.set_buckets(cfg.batch_size, cfg.bucket_batches if shuffle else 0)
        return DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=_collate(data))
    lengths = _lengths(data)
    chunk = cfg.bucket_batches * cfg.batch_size
    if shuffle and lengths is not None and cfg.bucket_batches > 0 and len(lengths) >= 4 * chunk:
        buckets = BucketBatchSampler(lengths, cfg.batch_size, cfg.seed, epoch, rank, world, cfg.bucket_batches)
        return DataLoader(data, batch_sampler=buckets, num_workers=cfg.num_workers, collate_fn=_collate(data))
    if not shuffle and lengths is not None:  # evaluation: order does not matter, so batches of similar length
        mine = torch.argsort(lengths, stable=True)[rank::world]
        return DataLoader(
            data,
            batch_sampler=[b.tolist() for b in mine.split(cfg.batch_size)],
            num_workers=cfg.num_workers,
            collate_fn=_collate(data),
        )
    sampler: Sampler | None
    if world > 1:
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=shuffle, seed=cfg.seed)
        sampler.set_epoch(epoch)
    elif shuffle:
        sampler = RandomSampler(cast(Sized, data), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    else:
        sampler = None
    return DataLoader(
        data,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=shuffle and len(cast(Sized, data)) >= 2 * cfg.batch_size,
        collate_fn=_collate(data),
    )


def _collate(data: Dataset):
    """The ``collate`` of the dataset (or of the dataset a Subset wraps), which builds the family's batch."""
    while isinstance(data, Subset):
        data = data.dataset
    collate = getattr(data, "collate", None)
    if collate is None:
        raise TypeError(f"{type(data).__name__} has no collate(items) building a batch (JetBatch, EventBatch)")
    return collate


# -- the loop ------------------------------------------------------------------------------------------------


class _StopRequests:
    """While active, Ctrl-C (SIGINT) and SIGTERM only ask training to stop (``signum`` set). In a single process
    the previous handlers return at the first request, so a second signal acts at once; under DDP a repeat only
    asks again (a rank stopping on its own would leave the others waiting in a collective) and :meth:`sync`
    makes the ranks agree. Installed in the main thread only (signal handlers live there); a process started
    to ignore a signal goes on ignoring it."""

    def __init__(self, world: int = 1):
        self.world = world
        self.enabled = threading.current_thread() is threading.main_thread()
        self.signum: int | None = None  # the stop asked for (under DDP: agreed on by the ranks in sync)
        self._asked: int | None = None  # the signal this process got
        self._pid = os.getpid()
        self._handlers = contextlib.ExitStack()
        self._restore: Callable[[], None] = lambda: None

    def __enter__(self) -> _StopRequests:
        self._pid = os.getpid()
        if self.enabled:
            self._restore = self._handlers.enter_context(
                handling(self._request, signal.SIGINT, signal.SIGTERM, keep_ignored=True)
            )
        return self

    def _request(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:  # a DataLoader worker forked with the handler: the training process stops
            return
        if self.world == 1:
            self._restore()
        if self._asked is not None:
            return
        self._asked = signum
        if self.world == 1:
            self.signum = signum
        rank = f"rank {dist.get_rank()}: " if self.world > 1 else ""
        again = "send it again to stop at once, losing the steps since the last save"
        try:  # stderr may be a pipe whose reader the same Ctrl-C ended
            print(
                f"\n{rank}{signal.Signals(signum).name}: stopping after this step and saving the training state"
                f"{f' ({again})' if self.world == 1 else ''}",
                file=sys.stderr,
                flush=True,
            )
        except (OSError, ValueError, RuntimeError):  # RuntimeError: the signal came inside a write to stderr
            pass

    def sync(self, device: torch.device, save_due: bool = False) -> bool:
        """Whether to save the state now: a stop was asked for, or ``save_due``. Under DDP every rank calls it
        at the same points and gets the same answer (a signal to any rank stops all; a save due on any rank
        is due on all). The answer rests on the reduced flags alone: a signal arriving during the reduction
        counts at the next call, on every rank alike."""
        if self.world > 1:
            flags = torch.tensor([self._asked or 0, int(save_due)], dtype=torch.int64, device=device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            signum, due = (int(v) for v in flags.tolist())
            self.signum, save_due = signum or None, bool(due)
        return self.signum is not None or save_due

    def __exit__(self, *exc) -> None:
        self._handlers.close()


@torch.no_grad()
def _evaluate(
    objective: nn.Module, loader: DataLoader, device, autocast, stop: _StopRequests | None = None
) -> dict[str, float] | None:
    """Mean loss and metrics over ``loader``; None when a stop was requested part-way."""
    objective.eval()
    sums: dict[str, float] = {}
    n = 0
    for batch in loader:
        if stop is not None and stop.signum is not None:
            return None
        batch = batch.to(device)
        with autocast():
            loss, metrics = objective(batch)
        b = len(batch)
        n += b
        for k, v in {"loss": loss.item(), **metrics}.items():
            sums[k] = sums.get(k, 0.0) + v * b
    if dist.is_initialized():  # a rank may have had no batch at all (streamed shards): merge what each saw
        parts: list[Any] = [None] * dist.get_world_size()
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
        resume: continue from ``out/training/latest.json``, exactly where the last saved state left off (an
            epoch's end, or part-way through one).
        on_best: called on rank 0 as ``on_best(model, weights, epoch)`` whenever the validation loss
            improves; ``weights`` is the EMA state when EMA is on. Use it to write the deployable checkpoint.

    Returns:
        The :class:`History` (per-epoch losses, wall time, best epoch, whether it stopped early).
    """
    device = resolve_device(cfg.device)
    # this process's share of the cores: DDP ranks of this node and DataLoader workers run beside it
    set_torch_threads(processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1")), beside=cfg.num_workers)
    rank, world = _distributed(device)
    torch.manual_seed(cfg.seed + rank)
    out = Path(out)
    model = cast(nn.Module, objective.model)
    objective.to(device)

    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]
    groups = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in groups if g["params"]]
    optimizer = _optimizer(cfg, groups)
    probe = data_loader(train_data, cfg, 0, rank, world, shuffle=True)
    steps_per_epoch = (
        max(1, len(probe))
        if not isinstance(train_data, IterableDataset)
        else max(1, math.ceil(len(cast(Sized, train_data)) / cfg.batch_size))
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(cfg, steps_per_epoch))
    ema = AveragedModel(model, multi_avg_fn=_ema_update(cfg.ema_decay)) if cfg.ema_decay > 0 else None

    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp)

    start_epoch, history, bad_epochs, progress = 0, History(), 0, None
    if resume and has_state(out):
        start_epoch, history, bad_epochs, progress = load_state(out, model, ema, optimizer, scheduler, cfg, device)
    elif resume and rank == 0:
        warnings.warn(f"{out / 'training'}: no training state to resume from; starting at epoch 0", stacklevel=2)
    train_module = objective
    if world > 1:
        # static graph: every step uses the same parameters (a head the objective leaves unused, say a
        # fine-tuned classifier's generator, stays unused), found once instead of searched for every step
        train_module = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None, static_graph=True
        )

    if progress is not None and progress.get("world", 1) != world:
        raise CheckpointError(
            f"{out / 'training'}: the saved state is part-way through an epoch trained by {progress.get('world', 1)} "
            f"process(es); resume it with as many (this run has {world})"
        )
    done = progress or {}
    wall0 = time.perf_counter() - done.get("wall_seconds", history.epochs[-1]["wall_seconds"] if history.epochs else 0)
    save_every = cfg.save_minutes * 60
    stop = _StopRequests(world)

    def save_partway(epoch: int, steps: int, total: float, n: int, t0: float, rng: dict) -> None:
        """Rank 0 writes the state, with every rank's running loss sum; every rank waits for it."""
        now = time.perf_counter()
        sums: list[Any] = [(total, n)]
        if world > 1:
            sums = [None] * world
            dist.all_gather_object(sums, (total, n))
        position = {"batches_done": steps, "world": world, "rank_sums": [list(p) for p in sums]}
        position |= {"train_seconds": now - t0, "wall_seconds": now - wall0}
        if rank == 0:
            save_state(out, epoch, model, ema, optimizer, scheduler, history, bad_epochs, cfg, rng, progress=position)
        if world > 1:
            dist.barrier()

    def stopped(where: str) -> Stopped:
        assert stop.signum is not None
        return Stopped(
            f"{out}: stopped by {signal.Signals(stop.signum).name} {where}, the training state saved there; "
            "resume=True (--resume) continues from that point",
            stop.signum,
        )

    with stop:
        for epoch in range(start_epoch, cfg.epochs):
            if stop.sync(device):  # asked for between epochs: the last one's state is saved
                raise stopped(f"before epoch {epoch}")
            if history.stopped_early:
                break
            train_module.train()
            loader = data_loader(train_data, cfg, epoch, rank, world, shuffle=True)
            # part-way: skip the batches trained before the state was saved, then restore the random state saved there
            skip = int(done.get("batches_done", 0))
            saved = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
            batches = iter(loader)  # draws from the random state
            if skip:
                for _ in range(skip):
                    if next(batches, None) is None:
                        raise CheckpointError(
                            f"{out / 'training'}: the saved state is {skip} batches into epoch {epoch}, "
                            "which has fewer; resume with the same data"
                        )
                torch.set_rng_state(saved[0])
                if saved[1] is not None:
                    torch.cuda.set_rng_state(saved[1], device)
            bar = progress_bar(
                batches,
                total=_batches_per_epoch(loader),
                initial=skip,
                desc=f"epoch {epoch}",
                leave=False,
                disable=not cfg.progress or rank != 0,
            )
            # this rank's running loss sum and examples (states before rank_sums: loss_sum, examples)
            own = done["rank_sums"][rank] if "rank_sums" in done else (done.get("loss_sum", 0), done.get("examples", 0))
            total, n, steps = float(own[0]), int(own[1]), skip
            t0, last_save = time.perf_counter() - done.get("train_seconds", 0.0), time.perf_counter()
            done = {}
            for batch in _lockstep(bar, device) if world > 1 and isinstance(train_data, IterableDataset) else bar:
                batch = batch.to(device)
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
                total += loss.item() * len(batch)
                n += len(batch)
                steps += 1
                bar.set_postfix(loss=f"{total / max(n, 1):.4f}", refresh=False)  # drawn with the next update
                if stop.sync(device, save_due=bool(save_every) and time.perf_counter() - last_save >= save_every):
                    save_partway(epoch, steps, total, n, t0, rng_states(device))
                    if stop.signum is not None:
                        raise stopped(f"{steps} batches into epoch {epoch}")
                    last_save = time.perf_counter()
            train_seconds = time.perf_counter() - t0
            if world > 1:  # the epoch's training loss over every rank's examples, the same in every rank's history
                sums = torch.tensor([total, n], dtype=torch.float64, device=device)
                dist.all_reduce(sums)
                total, n = sums[0].item(), int(sums[1].item())

            eval_objective = objective
            if ema is not None:
                eval_objective = _swap_model(objective, ema.module)
            # a single process may stop while validating; DDP ranks, whose validation batches differ, finish it
            stoppable = stop if world == 1 and stop.enabled else None
            rng_trained = rng_states(device) if stoppable is not None else {}
            val_loader = data_loader(val_data, cfg, epoch, rank, world, shuffle=False)
            val = _evaluate(eval_objective, val_loader, device, autocast, stoppable)
            if val is None:  # stopped while validating: saved with the epoch's training done; resuming validates
                save_partway(epoch, steps, total, n, t0, rng_trained)
                raise stopped(f"while validating epoch {epoch}")
            record = {
                "epoch": epoch,
                "train_loss": total / max(n, 1),
                "val_loss": val["loss"],
                **{f"val_{k}": v for k, v in val.items() if k != "loss"},
                "lr": scheduler.get_last_lr()[0],
                "train_seconds": train_seconds,
                "wall_seconds": time.perf_counter() - wall0,
            }
            history.epochs.append(record)
            improved = val["loss"] < history.best_val_loss
            if improved:
                history.best_val_loss, history.best_epoch, bad_epochs = val["loss"], epoch, 0
            else:
                bad_epochs += 1
            if cfg.patience and bad_epochs >= cfg.patience:
                history.stopped_early = True
            rng = rng_states(device)  # every rank's, gathered before rank 0 writes the state
            if rank == 0:
                if improved and on_best is not None:
                    weights = ema.module.state_dict() if ema is not None else model.state_dict()
                    on_best(model, weights, epoch)
                save_state(out, epoch, model, ema, optimizer, scheduler, history, bad_epochs, cfg, rng)
                if cfg.progress:
                    bar.write(
                        f"epoch {epoch}: train {record['train_loss']:.4f}  val {record['val_loss']:.4f}"
                        f"{'  *' if improved else ''}  ({train_seconds:.1f} s)"
                    )
            if world > 1:
                _check_in_sync(model, device, epoch)
                dist.barrier()
            release_freed_memory()
        if stop.sync(device):  # asked for as the last epoch ended: finished, but stop the caller too
            raise stopped(f"after its last epoch {len(history.epochs) - 1}")
    return history


def _batches_per_epoch(loader: DataLoader) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an iterable dataset without a length
        return None


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
