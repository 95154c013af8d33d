"""Training-size scans: pretrained vs from-scratch fine-tuning over sizes and seeds, resumable.

Each (mode, size, seed) run writes its own directory with ``metrics.json``; a scan re-run skips
finished runs, so a long scan can be interrupted and continued (or spread over papermill jobs): Ctrl-C, or
SIGTERM to the scan or to all its processes, stops the runs in progress with their training state saved and
starts no further run; ``resume`` continues them. With
``parallel_runs > 1`` the runs are trained by that many processes at once (a
:class:`concurrent.futures.ProcessPoolExecutor`), which keeps one GPU busy with models too small to fill it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from hepfm.analysis.plots import convergence_plot, save, scan_plot, use_style
from hepfm.core.errors import DataError, OutputError, Stopped
from hepfm.core.io import read_json_object, write_metrics
from hepfm.core.parallel import set_torch_threads, share_cores
from hepfm.core.progress import progress_bar
from hepfm.core.signals import handling
from hepfm.data.sample import JetSample
from hepfm.train.checkpoint import Checkpoint, load_checkpoint
from hepfm.train.config import TrainConfig
from hepfm.train.finetune import finetune, finished_run, recipe_differences, run_sources
from hepfm.train.state import has_state

__all__ = [
    "size_scan",
    "summarise",
    "epochs_to_reach",
    "convergence_summary",
    "two_fold",
    "time_to_accuracy",
    "scan_report",
    "scan_headline",
    "scan_targets",
    "ScanReport",
    "MODES",
]

MODES = ("pretrained", "scratch")


def _ignore_in_pool(signum, frame) -> None:
    """A pool process between runs lets Ctrl-C and SIGTERM pass; a run in it stops on them (its training loop
    installs its own handler over this one) and the scan stops with it."""


def _pool_process_start() -> None:
    signal.signal(signal.SIGINT, _ignore_in_pool)
    signal.signal(signal.SIGTERM, _ignore_in_pool)


@contextlib.contextmanager
def _stopping_the_pool(out: Path):
    """While a parallel scan runs: SIGTERM stops the scan as Ctrl-C does, and either one, or a run that stopped
    on one, is passed on as SIGTERM to every pool process, so that runs in progress save their state and stop
    (one signalled already ignores it) and no further run starts."""

    def stopped(signum: int) -> Stopped:
        return Stopped(
            f"{out}: stopped by {signal.Signals(signum).name}, the runs in progress with their training state "
            "saved; resume=True (--resume) continues them",
            signum,
        )

    def on_sigterm(signum, frame) -> None:
        raise stopped(signum)

    try:
        with handling(on_sigterm, signal.SIGTERM):
            yield
    except KeyboardInterrupt as err:
        for process in multiprocessing.active_children():
            if process.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGTERM)
        # SIGTERM here, or a run that stopped on its own signal (Ctrl-C reaches the runs too and one may answer
        # before the scan does): either way the scan's stop, with the signal's name
        raise stopped(err.signum if isinstance(err, Stopped) else signal.SIGINT) from None


def _finetune_run(
    checkpoint, train_data, test_data, run: Path, cfg: TrainConfig, size: int, processes: int, options: dict
):
    """One scan run in a worker process, with its share of the cores among ``processes`` runs."""
    share_cores(processes)
    set_torch_threads()
    finetune(checkpoint, train_data, test_data, run, train=cfg, n_train=size, **options)
    return str(run)


def size_scan(
    checkpoint: str | Path | Checkpoint | None,
    train_data,
    test_data,
    sizes: list[int],
    seeds: list[int],
    out: str | Path,
    train: TrainConfig,
    modes: tuple[str, ...] = MODES,
    variants: dict[str, dict] | None = None,
    parallel_runs: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    **finetune_kwargs,
) -> list[dict]:
    """Fine-tune (``pretrained``) and train from scratch (``scratch``) for every size and seed.

    Args:
        checkpoint: pretrained checkpoint directory (jet or event model).
        train_data, test_data: labelled samples (jets or events), or paths; each run draws ``size`` training
            examples with its seed.
        sizes: numbers of labelled training examples (validation is taken out of them).
        seeds: seeds per size.
        out: scan directory; runs go to ``out/<mode>-n<size>-s<seed>/``.
        train: the optimisation recipe shared by every run (its seed is replaced by the run's).
        modes: any of :data:`MODES`.
        variants: instead of ``checkpoint`` and ``modes``, named set-ups: ``{name: {"checkpoint": dir,
            **finetune options}}``, e.g. ``{"multilabel": {"checkpoint": a}, "frozen": {"checkpoint": b,
            "freeze_backbone": True}, "scratch": {"checkpoint": b, "from_scratch": True}}``.
        parallel_runs: train this many runs at once, each in its own process with an equal share of the
            cores (largest sizes first). Pass ``train_data`` and ``test_data`` as paths then, so that each process
            reads them itself instead of receiving a pickled copy.
        resume: reuse the finished runs of an earlier scan in ``out`` (trained with this very recipe) and
            continue its unfinished ones; without it, a scan directory holding runs is refused.
        overwrite: replace the runs of an earlier scan in ``out``.
        finetune_kwargs: :class:`~hepfm.train.finetune.FinetuneConfig` fields for every run.

    Returns:
        One dict per run: ``mode, size, seed`` plus the run's metrics.
    """
    if variants is None:
        variants = {m: {"checkpoint": checkpoint, "from_scratch": m == "scratch"} for m in modes}
    out = Path(out)
    if checkpoint is not None and any(_inside(out, load_checkpoint(v["checkpoint"]).path) for v in variants.values()):
        raise OutputError(
            f"{out}: the scan directory is, holds or lies inside a checkpoint it starts from; choose another --out"
        )
    runs = [(m, n, s) for n in sizes for s in seeds for m in variants]
    started = [r for r in runs if (out / _name(*r)).exists() and any((out / _name(*r)).iterdir())]
    if started and not (resume or overwrite):
        raise OutputError(
            f"{out}: holds {len(started)} run(s) of an earlier scan (e.g. {_name(*started[0])}); pass "
            "--resume (resume=True) to reuse and continue them or --overwrite to replace them"
        )

    def setup(mode, seed):
        options = {**finetune_kwargs, **variants[mode]}
        return options.pop("checkpoint"), replace(train, seed=seed, progress=False), options

    done = [r for r in runs if (out / _name(*r) / "metrics.json").exists()] if resume else []
    sources: dict = {}  # per starting checkpoint and width: what its runs start from and see (read once)
    for mode, size, seed in done:  # before any training: a scan directory holds one recipe
        path = out / _name(mode, size, seed) / "metrics.json"
        ckpt, cfg, options = setup(mode, seed)
        key = (str(ckpt), options.get("max_particles"))
        if key not in sources:
            sources[key] = run_sources(ckpt, train_data, test_data, options.get("max_particles"))
        _check_recipe(path, read_json_object(path), cfg, options, sources[key])
    todo = [r for r in runs if r not in done]

    def run_options(run: Path) -> dict:  # continue an unfinished run of a resumed scan, else start afresh
        return {"resume": True} if resume and has_state(run) else {"overwrite": True}

    if parallel_runs > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        workers = min(parallel_runs, len(todo))
        queue = sorted(todo, key=lambda r: -r[1])

        def submit(pool: ProcessPoolExecutor, mode: str, size: int, seed: int) -> Future:
            ckpt, cfg, options = setup(mode, seed)
            run = out / _name(mode, size, seed)
            return pool.submit(
                _finetune_run, ckpt, train_data, test_data, run, cfg, size, workers, {**options, **run_options(run)}
            )

        # a run is handed to the pool only when a process is free, so that after Ctrl-C or SIGTERM (or a run
        # stopped by one) no further run starts: the running ones save their state and stop, and the scan too
        with (
            ProcessPoolExecutor(workers, mp_context=context, initializer=_pool_process_start) as pool,
            progress_bar(total=len(queue), desc="scan", unit="run") as bar,
            _stopping_the_pool(out),
        ):
            running: set[Future] = set()
            while queue or running:
                while queue and len(running) < workers:
                    running.add(submit(pool, *queue.pop(0)))
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                    bar.update()
        done = todo + done
    rows = []
    for mode, size, seed in progress_bar(runs, desc="scan", unit="run", disable=parallel_runs > 1):
        run = out / _name(mode, size, seed)
        if (mode, size, seed) in done:
            metrics = read_json_object(run / "metrics.json")
        else:
            ckpt, cfg, options = setup(mode, seed)
            metrics = finetune(ckpt, train_data, test_data, run, train=cfg, n_train=size, **options, **run_options(run))
        rows.append({"mode": mode, "size": size, "seed": seed, **metrics})
    return rows


def _name(mode: str, size: int, seed: int) -> str:
    return f"{mode}-n{size}-s{seed}"


def _inside(out: Path, checkpoint: Path) -> bool:
    a, b = out.resolve(), checkpoint.resolve()
    return a == b or a in b.parents or b in a.parents


def _check_recipe(path: Path, metrics: dict, cfg: TrainConfig, options: dict, sources: dict) -> None:
    """A finished run is reused only if it was trained with this recipe, from this checkpoint on these data
    (:func:`recipe_differences`)."""
    changes = recipe_differences(metrics, cfg, options, sources)
    if changes:
        raise DataError(
            f"{path}: finished with another recipe than this scan asks for ({changes}); "
            "give the scan another output directory, or pass --overwrite (overwrite=True) without --resume "
            "to train it again"
        )


def time_to_accuracy(rows: list[dict], target: float) -> dict:
    """Training wall time and epochs each run needs to reach validation accuracy ``target``.

    Returns:
        ``{mode: {size: {"seconds": [per seed, None if never], "epochs": [...], "reached": k, "of": n}}}``.
    """
    out: dict = {}
    for r in rows:
        hit = next((e for e in r["history"] if e.get("val_accuracy", -1) >= target), None)
        entry = out.setdefault(r["mode"], {}).setdefault(
            r["size"], {"seconds": [], "epochs": [], "reached": 0, "of": 0}
        )
        entry["seconds"].append(hit["wall_seconds"] if hit else None)
        entry["epochs"].append(hit["epoch"] + 1 if hit else None)
        entry["reached"] += hit is not None
        entry["of"] += 1
    return out


def summarise(rows: list[dict], metrics: tuple[str, ...] = ("auc", "accuracy", "rej30", "rej50")) -> dict:
    """Mean and standard deviation over seeds: ``{mode: {size: {metric: [mean, std], "n_seeds": k}}}``.

    A rejection is infinite (stored as None) when no background passes the cut; with the run's
    ``n_background`` it counts as that lower bound, and ``"<metric>_lower_bound"`` says for how many seeds
    (the mean is then a lower bound too). Other non-finite values are left out. ``"<metric>_passing"``: the
    fewest background examples a seed's rejection rests on (where the runs record it).
    """
    out: dict = {}
    for mode in sorted({r["mode"] for r in rows}):
        out[mode] = {}
        for size in sorted({r["size"] for r in rows if r["mode"] == mode}):
            sel = [r for r in rows if r["mode"] == mode and r["size"] == size]
            entry: dict[str, Any] = {"n_seeds": len(sel)}
            for m in metrics:
                values = np.array([np.inf if r[m] is None else r[m] for r in sel], dtype=float)
                unbounded = np.isposinf(values) & np.array([bool(r.get("n_background")) for r in sel])
                if m.startswith("rej") and unbounded.any():
                    values[unbounded] = [sel[i]["n_background"] for i in np.flatnonzero(unbounded)]
                    entry[f"{m}_lower_bound"] = int(unbounded.sum())
                values = values[np.isfinite(values)]
                entry[m] = (
                    [float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0]
                    if len(values)
                    else [None, None]
                )
                if m.startswith("rej") and sel and all(f"{m}_passing" in r for r in sel):
                    entry[f"{m}_passing"] = min(int(r[f"{m}_passing"]) for r in sel)
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
            assert n_scratch is not None  # scratch reaches its own best loss
            wall = pre["history"][n_pre - 1]["wall_seconds"] if n_pre else None
            per_seed.append(
                {
                    "seed": seed,
                    "scratch_best_val_loss": target,
                    "scratch_epochs": n_scratch,
                    "pretrained_epochs": n_pre,
                    "pretrained_wall_seconds": wall,
                    "scratch_wall_seconds": scratch["history"][n_scratch - 1]["wall_seconds"],
                    "epoch_ratio": n_pre / n_scratch if n_pre else None,
                }
            )
        ratios = [p["epoch_ratio"] for p in per_seed if p["epoch_ratio"] is not None]
        out[size] = {
            "runs": per_seed,
            "reached": len(ratios),
            "of": len(per_seed),
            "median_epoch_ratio": float(np.median(ratios)) if ratios else None,
        }
    return out


def two_fold(
    checkpoint: str | Path | Checkpoint,
    sample: JetSample,
    out: str | Path,
    train: TrainConfig,
    modes: tuple[str, ...] = MODES,
    split_seed: int = 0,
    resume: bool = True,
    **finetune_kwargs,
) -> dict:
    """Fixed two-fold evaluation: train on one half, test on the other, then swap.

    The halves come from a permutation fixed by ``split_seed`` (chosen before looking at results). Folds
    finished in ``out`` by an earlier call are reused (``resume``), else replaced.

    Returns:
        ``{mode: {"auc_per_fold": [a, b], "mean_auc": m, "accuracy_per_fold": [...]}}``.
    """
    order = np.random.default_rng(split_seed).permutation(len(sample))
    halves = (np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :]))
    out = Path(out)
    result = {}
    for mode in modes:
        aucs, accs = [], []
        for fold in (0, 1):
            run = out / f"{mode}-fold{fold}"
            options = {**finetune_kwargs, "from_scratch": mode == "scratch"}
            cfg, halves_of_fold = replace(train, progress=False), (sample[halves[fold]], sample[halves[1 - fold]])
            metrics = None
            if resume and (run / "metrics.json").exists():  # reused only if this very fold, recipe and checkpoint
                sources = run_sources(checkpoint, *halves_of_fold, finetune_kwargs.get("max_particles"))
                metrics = finished_run(run, cfg, options, sources)
            if metrics is None:
                metrics = finetune(checkpoint, *halves_of_fold, run, train=cfg, overwrite=True, **options)
            aucs.append(metrics["auc"])
            accs.append(metrics["accuracy"])
        result[mode] = {"auc_per_fold": aucs, "mean_auc": float(np.mean(aucs)), "accuracy_per_fold": accs}
    return result


@dataclass
class ScanReport:
    """What a training-size scan shows: the summary per mode and size, the convergence of the fine-tuned
    runs, the printed table, the headline numbers and the figures (the PNG files in the scan directory, which
    display as images in a notebook)."""

    summary: dict
    convergence: dict
    table: str
    targets: dict
    figures: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.table


def scan_targets(summary: dict, convergence: dict) -> dict:
    """The headline numbers of a scan: the fine-tuned and scratch AUC at the smallest size, scratch's AUC at
    ten times that size (if scanned), and the median epoch ratio at the smallest size."""
    sizes = sorted({int(n) for per_size in summary.values() for n in per_size})
    small = sizes[0]
    large = next((n for n in sizes if n >= 10 * small), None)

    def auc(mode: str, n: int | None):
        entry = summary.get(mode, {}).get(n) if n is not None else None
        return None if entry is None else entry["auc"][0]

    return {
        "pretrained_auc_at_smallest": auc("pretrained", small),
        "scratch_auc_at_smallest": auc("scratch", small),
        "scratch_auc_at_10x": auc("scratch", large),
        "epoch_ratio_at_smallest": convergence.get(small, {}).get("median_epoch_ratio"),
    }


def scan_headline(summary: dict, unit: str = "jets") -> str:
    """One line of a scan for a summary page: the mean AUC of every start at the smallest and largest size.

    >>> scan_headline({"pretrained": {100: {"auc": [0.98, 0.01]}}, "scratch": {100: {"auc": [0.9, 0.02]}}})
    'AUC with 100 labelled jets: pretrained 0.980 ± 0.010, scratch 0.900 ± 0.020'
    """
    sizes = sorted({n for per_size in summary.values() for n in per_size})
    parts = []
    for n in dict.fromkeys((sizes[0], sizes[-1])):
        cells = [
            f"{mode} {per_size[n]['auc'][0]:.3f} ± {per_size[n]['auc'][1]:.3f}"
            for mode, per_size in summary.items()
            if n in per_size and per_size[n]["auc"][0] is not None
        ]
        parts.append(f"with {n} labelled {unit}: " + ", ".join(cells))
    return "AUC " + "; ".join(parts)


def scan_report(
    rows: list[dict], out: str | Path, *, title: str = "", unit: str = "jets", keep_history: bool = True, **info
) -> ScanReport:
    """Summarise a scan (:func:`summarise`, :func:`convergence_summary`), draw ``scan.png`` (AUC, accuracy and
    rej30 against the training size) and ``convergence.png``, and write ``metrics.json`` into ``out``.

    Args:
        rows: the runs of :func:`size_scan`.
        out: where the figures and ``metrics.json`` go.
        title: the figures' title.
        unit: what the training sizes count (``jets``, ``events``).
        keep_history: keep every run's per-epoch history in ``metrics.json``.
        info: more fields for ``metrics.json`` (the checkpoint, data paths, ...).
    """
    summary, convergence = summarise(rows), convergence_summary(rows)
    sizes = sorted({r["size"] for r in rows})
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.8), constrained_layout=True)
    for ax, metric in zip(axes, ("auc", "accuracy", "rej30"), strict=True):
        scan_plot(summary, metric, ax=ax, title=title, xlabel=f"Labelled training {unit}")
    figures = {
        "scan": save(fig, out, "scan"),
        "convergence": save(convergence_plot(rows, sizes[0], unit=unit), out, "convergence"),
    }
    targets = scan_targets(summary, convergence)
    runs = rows if keep_history else [{k: v for k, v in r.items() if k != "history"} for r in rows]
    write_metrics(
        out,
        {
            "headline": scan_headline(summary, unit),
            "summary": summary,
            "convergence": convergence,
            "targets": targets,
            "sizes": sizes,
            "seeds": sorted({r["seed"] for r in rows}),
            **info,
            "runs": runs,
        },
    )
    lines = [
        "| start | size | AUC | accuracy | rej30 | rej50 | rej30 rests on (bkg) | epochs (median) | wall s (median) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, per_size in summary.items():
        for size, e in per_size.items():
            sel = [r for r in rows if r["mode"] == mode and r["size"] == size]
            cells = " | ".join(
                "no finite value"
                if e[m][0] is None
                else f"{'≥ ' if e.get(m + '_lower_bound') else ''}{e[m][0]:.4g} ± {e[m][1]:.2g}"
                for m in ("auc", "accuracy", "rej30", "rej50")
            )
            passing = e.get("rej30_passing", "—")
            lines.append(
                f"| {mode} | {size} | {cells} | {passing} | {np.median([r['epochs_run'] for r in sel]):.0f} | "
                f"{np.median([r['wall_seconds'] for r in sel]):.0f} |"
            )
    for size, c in convergence.items():
        lines.append(
            f"{size}: fine-tuned reaches scratch's best validation loss in {c['reached']}/{c['of']} seeds; "
            f"median epoch ratio {c['median_epoch_ratio']}"
        )
    return ScanReport(summary, convergence, "\n".join(lines), targets, figures)
