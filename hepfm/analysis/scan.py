"""Training-size scans: pretrained vs from-scratch fine-tuning over sizes and seeds, resumable.

Each (mode, size, seed) run writes its own directory with ``metrics.json``; a scan re-run skips
finished runs, so a long scan can be interrupted and continued (or spread over papermill jobs). With
``parallel_runs > 1`` the runs are trained by that many processes at once (a
:class:`concurrent.futures.ProcessPoolExecutor`), which keeps one GPU busy with models too small to fill it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hepfm.data.sample import JetSample
from hepfm.train.loop import TrainConfig

__all__ = ["size_scan", "summarise", "epochs_to_reach", "convergence_summary", "two_fold", "time_to_accuracy",
           "MODES"]

MODES = ("pretrained", "scratch")


def _finetune_run(checkpoint, train, test, run: Path, cfg: TrainConfig, size: int, threads: int, options: dict):
    """One scan run in a worker process (``threads`` torch threads)."""
    import torch

    from hepfm.train.recipes import finetune

    if threads:
        torch.set_num_threads(threads)
    finetune(checkpoint, train, test, run, train=cfg, n_train=size, **options)
    return str(run)


def size_scan(
    checkpoint: str | Path | None,
    train,
    test,
    sizes: list[int],
    seeds: list[int],
    out: str | Path,
    train_config: TrainConfig,
    modes: tuple[str, ...] = MODES,
    variants: dict[str, dict] | None = None,
    parallel_runs: int = 1,
    **finetune_kwargs,
) -> list[dict]:
    """Fine-tune (``pretrained``) and train from scratch (``scratch``) for every size and seed.

    Args:
        checkpoint: pretrained checkpoint directory (jet or event model).
        train, test: labelled samples (jets or events); each run draws ``size`` training examples with its seed.
        sizes: numbers of labelled training examples (validation is taken out of them).
        seeds: seeds per size.
        out: scan directory; runs go to ``out/<mode>-n<size>-s<seed>/``.
        train_config: recipe shared by every run (its seed is replaced by the run's).
        modes: any of :data:`MODES`.
        variants: instead of ``checkpoint`` and ``modes``, named set-ups: ``{name: {"checkpoint": dir,
            **finetune options}}``, e.g. ``{"multilabel": {"checkpoint": a}, "frozen": {"checkpoint": b,
            "freeze_backbone": True}, "scratch": {"checkpoint": b, "from_scratch": True}}``.
        parallel_runs: train this many runs at once, each in its own process with an equal share of the CPU
            threads (largest sizes first). Pass ``train`` and ``test`` as paths then, so that each process
            reads them itself instead of receiving a pickled copy.
        finetune_kwargs: passed on to :func:`hepfm.train.recipes.finetune`.

    Returns:
        One dict per run: ``mode, size, seed`` plus the run's metrics.
    """
    from hepfm.train.recipes import finetune

    if variants is None:
        variants = {m: {"checkpoint": checkpoint, "from_scratch": m == "scratch"} for m in modes}
    out = Path(out)
    runs = [(m, n, s) for n in sizes for s in seeds for m in variants]

    def setup(mode, seed):
        options = {**finetune_kwargs, **variants[mode]}
        return options.pop("checkpoint"), replace(train_config, seed=seed, progress=False), options

    done = [r for r in runs if (out / f"{r[0]}-n{r[1]}-s{r[2]}" / "metrics.json").exists()]
    for mode, size, seed in done:  # before any training: a scan directory holds one recipe
        path = out / f"{mode}-n{size}-s{seed}" / "metrics.json"
        _check_recipe(path, json.loads(path.read_text()).get("train_config"), setup(mode, seed)[1])
    todo = [r for r in runs if r not in done]
    if parallel_runs > 1 and len(todo) > 1:
        threads = max(1, (os.cpu_count() or 1) // parallel_runs)
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with ProcessPoolExecutor(min(parallel_runs, len(todo)), mp_context=context) as pool:
            futures = []
            for mode, size, seed in sorted(todo, key=lambda r: -r[1]):
                ckpt, cfg, options = setup(mode, seed)
                futures.append(pool.submit(_finetune_run, ckpt, train, test, out / f"{mode}-n{size}-s{seed}", cfg,
                                           size, threads, options))
            for future in tqdm(as_completed(futures), total=len(futures), desc="scan", unit="run"):
                future.result()
    rows = []
    for mode, size, seed in tqdm(runs, desc="scan", unit="run", disable=parallel_runs > 1):
        run = out / f"{mode}-n{size}-s{seed}"
        if (run / "metrics.json").exists():
            metrics = json.loads((run / "metrics.json").read_text())
        else:
            ckpt, cfg, options = setup(mode, seed)
            metrics = finetune(ckpt, train, test, run, train=cfg, n_train=size, **options)
        rows.append({"mode": mode, "size": size, "seed": seed, **metrics})
    return rows


def _check_recipe(path: Path, stored: dict | None, cfg: TrainConfig) -> None:
    """A finished run is reused only if it was trained with this recipe (runs from before the recipe was
    recorded are taken as they are)."""
    from hepfm.train.loop import recipe_changes

    changes = None if stored is None else recipe_changes(stored, cfg)
    if changes:
        raise ValueError(f"{path}: finished with another recipe than this scan asks for ({changes}); "
                         "give the scan another output directory")


def time_to_accuracy(rows: list[dict], target: float) -> dict:
    """Training wall time and epochs each run needs to reach validation accuracy ``target``.

    Returns:
        ``{mode: {size: {"seconds": [per seed, None if never], "epochs": [...], "reached": k, "of": n}}}``.
    """
    out: dict = {}
    for r in rows:
        hit = next((e for e in r["history"] if e.get("val_accuracy", -1) >= target), None)
        entry = out.setdefault(r["mode"], {}).setdefault(r["size"], {"seconds": [], "epochs": [], "reached": 0,
                                                                      "of": 0})
        entry["seconds"].append(hit["wall_seconds"] if hit else None)
        entry["epochs"].append(hit["epoch"] + 1 if hit else None)
        entry["reached"] += hit is not None
        entry["of"] += 1
    return out


def summarise(rows: list[dict], metrics: tuple[str, ...] = ("auc", "accuracy", "rej30", "rej50")) -> dict:
    """Mean and standard deviation over seeds: ``{mode: {size: {metric: [mean, std], "n_seeds": k}}}``.

    A rejection is infinite (stored as None) when no background passes the cut; with the run's
    ``n_background`` it counts as that lower bound, and ``"<metric>_lower_bound"`` says for how many seeds
    (the mean is then a lower bound too). Other non-finite values are left out.
    """
    out: dict = {}
    for mode in sorted({r["mode"] for r in rows}):
        out[mode] = {}
        for size in sorted({r["size"] for r in rows if r["mode"] == mode}):
            sel = [r for r in rows if r["mode"] == mode and r["size"] == size]
            entry = {"n_seeds": len(sel)}
            for m in metrics:
                values = np.array([np.inf if r[m] is None else r[m] for r in sel], dtype=float)
                unbounded = np.isposinf(values) & np.array([bool(r.get("n_background")) for r in sel])
                if m.startswith("rej") and unbounded.any():
                    values[unbounded] = [sel[i]["n_background"] for i in np.flatnonzero(unbounded)]
                    entry[f"{m}_lower_bound"] = int(unbounded.sum())
                values = values[np.isfinite(values)]
                entry[m] = [float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0] \
                    if len(values) else [None, None]
            out[mode][size] = entry
    return out


def epochs_to_reach(history: list[dict], target: float) -> int | None:
    """Epochs (1-based count) until the validation loss first reaches ``target``; None if never."""
    for i, epoch in enumerate(history):
        if epoch["val_loss"] <= target:
            return i + 1
    return None


def convergence_summary(rows: list[dict]) -> dict:
    """Per size and seed: epochs and wall time the pretrained model needs to reach scratch's best loss."""
    out = {}
    for size in sorted({r["size"] for r in rows}):
        per_seed = []
        for seed in sorted({r["seed"] for r in rows if r["size"] == size}):
            pick = {r["mode"]: r for r in rows if r["size"] == size and r["seed"] == seed}
            if not {"pretrained", "scratch"} <= set(pick):
                continue
            scratch, pre = pick["scratch"], pick["pretrained"]
            target = min(e["val_loss"] for e in scratch["history"])
            n_pre = epochs_to_reach(pre["history"], target)
            n_scratch = epochs_to_reach(scratch["history"], target)
            wall = pre["history"][n_pre - 1]["wall_seconds"] if n_pre else None
            per_seed.append({"seed": seed, "scratch_best_val_loss": target, "scratch_epochs": n_scratch,
                             "pretrained_epochs": n_pre, "pretrained_wall_seconds": wall,
                             "scratch_wall_seconds": scratch["history"][n_scratch - 1]["wall_seconds"],
                             "epoch_ratio": n_pre / n_scratch if n_pre else None})
        ratios = [p["epoch_ratio"] for p in per_seed if p["epoch_ratio"] is not None]
        out[size] = {"runs": per_seed, "reached": len(ratios), "of": len(per_seed),
                     "median_epoch_ratio": float(np.median(ratios)) if ratios else None}
    return out


def two_fold(checkpoint: str | Path, sample: JetSample, out: str | Path, train_config: TrainConfig,
             modes: tuple[str, ...] = MODES, split_seed: int = 0, **finetune_kwargs) -> dict:
    """Fixed two-fold evaluation: train on one half, test on the other, then swap.

    The halves come from a permutation fixed by ``split_seed`` (chosen before looking at results).

    Returns:
        ``{mode: {"auc_per_fold": [a, b], "mean_auc": m, "accuracy_per_fold": [...]}}``.
    """
    from hepfm.train.recipes import finetune

    order = np.random.default_rng(split_seed).permutation(len(sample))
    halves = (np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:]))
    out = Path(out)
    result = {}
    for mode in modes:
        aucs, accs = [], []
        for fold in (0, 1):
            run = out / f"{mode}-fold{fold}"
            if (run / "metrics.json").exists():
                metrics = json.loads((run / "metrics.json").read_text())
            else:
                metrics = finetune(checkpoint, sample[halves[fold]], sample[halves[1 - fold]], run,
                                   from_scratch=mode == "scratch", train=replace(train_config, progress=False),
                                   **finetune_kwargs)
            aucs.append(metrics["auc"])
            accs.append(metrics["accuracy"])
        result[mode] = {"auc_per_fold": aucs, "mean_auc": float(np.mean(aucs)), "accuracy_per_fold": accs}
    return result
