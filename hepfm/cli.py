"""The ``hepfm`` command line: data production, inspection and the notebook runner.

Every command has ``--help``. Nothing here runs at import time.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

__all__ = ["app"]

app = typer.Typer(help="hepfm: foundation models for collider physics.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
generate_app = typer.Typer(help="Generate simulated data with Pythia8, FastJet and the fast detector.",
                           no_args_is_help=True)
notebooks_app = typer.Typer(help="Run the notebook suite through papermill.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")
app.add_typer(notebooks_app, name="notebooks")


# Options shared by the data-production commands.
_OUT = typer.Option(..., "--out", help="Dataset directory (created; re-running resumes it).")
_GEN_SEED = typer.Option(1, "--seed", help="Base seed; equal seeds give identical files.")
_DETECTOR = typer.Option("cms", "--detector", help="Fast detector: cms, or none for particle level.")
_WORKERS = typer.Option(1, "--workers", help="Dask LocalCluster worker processes (1 = in-process).")
_SCHEDULER = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler.")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@generate_app.command("jets")
def generate_jets_command(
    out: Path = _OUT,
    classes: list[str] = typer.Option(None, "--classes", help="Comma-separated JetClass classes, e.g. Tbqq,QCD."),
    recipe: list[str] = typer.Option(None, "--recipe", help="Fine-tuning recipes: top, qcd, quark, gluon."),
    jets_per_class: int = typer.Option(None, "--jets-per-class", help="Jets per class."),
    profile: str = typer.Option(None, "--profile", help="Size preset instead of --jets-per-class: "
                                "smoke, demo, cpu, paper."),
    seed: int = _GEN_SEED,
    detector: str = _DETECTOR,
    jets_per_shard: int = typer.Option(1000, "--jets-per-shard", help="Jets per shard file."),
    pythia_set: list[str] = typer.Option(None, "--set", help="An extra Pythia8 setting after the recipe's, e.g. "
                                         "'TimeShower:alphaSvalue = 0.118' (repeatable)."),
    paired: bool = typer.Option(False, "--paired", help="Also store each jet's particle-level partner "
                                "(read with level='particle'), for unfolding."),
    workers: int = _WORKERS,
    scheduler: str = _SCHEDULER,
) -> None:
    """Generate labelled jets: JetClass classes and fine-tuning samples, sharded and resumable."""
    from hepfm.data.factory import PROFILES, generate_jets
    from hepfm.data.processes import JETCLASS_CLASSES

    names = _split(classes) + _split(recipe)
    if not names:
        names = list(JETCLASS_CLASSES)
    if jets_per_class is None:
        if profile not in PROFILES:
            raise typer.BadParameter(f"give --jets-per-class or --profile ({', '.join(PROFILES)})")
        jets_per_class = PROFILES[profile]
    try:
        path = generate_jets(names, jets_per_class, out, seed=seed, detector=detector,
                             jets_per_shard=jets_per_shard, settings=list(pythia_set or []), paired=paired,
                             workers=workers, scheduler=scheduler)
    except (KeyError, ValueError) as err:
        typer.echo(f"error: {err.args[0] if err.args else err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path}")


@generate_app.command("events")
def generate_events_command(
    out: Path = _OUT,
    processes: list[str] = typer.Option(None, "--processes", help="Comma-separated processes, e.g. ttH,ttbar "
                                        "(default: the twelve pretraining processes)."),
    events_per_process: int = typer.Option(..., "--events-per-process", help="Events per process."),
    lhe: list[str] = typer.Option(None, "--lhe", help="NAME=FILE: a process read from a Les Houches Event file "
                                  "(repeatable); NAME can then be listed in --processes."),
    seed: int = _GEN_SEED,
    detector: str = _DETECTOR,
    events_per_shard: int = typer.Option(1000, "--events-per-shard", help="Events per shard file."),
    content: str = typer.Option("objects", "--content", help="objects (reconstructed objects and truth) or "
                                "particles (every particle-flow candidate, as the LHC Olympics sets)."),
    trigger_pt: float = typer.Option(0.0, "--trigger-pt", help="Keep events whose leading anti-kT R=1.0 jet has "
                                     "pT above this, in GeV (1200 is the LHCO trigger; 0 keeps all)."),
    workers: int = _WORKERS,
    scheduler: str = _SCHEDULER,
) -> None:
    """Generate whole events: reconstructed objects with process label and hard-process truth, or particle-flow
    candidates; sharded and resumable.

    The LHC Olympics-like anomaly-detection samples:
    hepfm generate events --processes qcd_dijet --events-per-process 100000 --content particles --trigger-pt 1200
    """
    from hepfm.data import DataError
    from hepfm.data.factory import generate_events
    from hepfm.data.processes import PRETRAINING_PROCESSES

    files = {}
    for item in _split(lhe):
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise typer.BadParameter(f"--lhe takes NAME=FILE, got {item!r}")
        files[name] = file
    names = _split(processes) or list(PRETRAINING_PROCESSES)
    try:
        path = generate_events(names, events_per_process, out, seed=seed, detector=detector, lhe=files,
                               events_per_shard=events_per_shard, content=content, trigger_pt=trigger_pt,
                               workers=workers, scheduler=scheduler)
    except (KeyError, ValueError, DataError, FileNotFoundError) as err:
        typer.echo(f"error: {err.args[0] if err.args else err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path}")


@generate_app.command("list")
def list_recipes() -> None:
    """List the jet classes and recipes, and the event processes."""
    from hepfm.data.processes import BSM_PROCESSES, EVENT_PROCESSES, JET_RECIPES, LHCO_PROCESSES

    typer.echo("jets (hepfm generate jets --classes/--recipe):")
    for name, r in JET_RECIPES.items():
        typer.echo(f"  {name:13s} {r.description}")
    typer.echo("events (hepfm generate events --processes; * = beyond the Standard Model, not in pretraining;")
    typer.echo("        + = anomaly detection, for --content particles --trigger-pt 1200):")
    for name, p in EVENT_PROCESSES.items():
        mark = "*" if name in BSM_PROCESSES else "+" if name in LHCO_PROCESSES else " "
        typer.echo(f"  {name:12s}{mark} {p.description}")


@app.command("inspect")
def inspect_command(
    path: Path = typer.Argument(..., help="Any file or directory read_jets or read_events reads."),
    format: str = typer.Option(None, "--format", help="Force the format instead of detecting it."),
    events: bool = typer.Option(False, "--events", help="Read as events (read_events) instead of jets."),
) -> None:
    """Read a data file and print what it holds (count per class, medians)."""
    from hepfm.analysis.validation import class_medians
    from hepfm.data import DataError, read_events, read_jets

    try:
        sample = read_events(path, format) if events else read_jets(path, format)
    except (DataError, FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(repr(sample))
    if events:
        if "type" in sample.particle_features:
            from hepfm.data.events import OBJECT_TYPES

            kinds = sample.feature("type")[sample.mask].astype(int)
            per_event = [(kinds == k).sum() / max(len(sample), 1) for k in range(len(OBJECT_TYPES))]
            typer.echo("  objects per event: " + ", ".join(f"{t} {n:.2f}" for t, n in zip(OBJECT_TYPES, per_event,
                                                                                          strict=True)))
    else:
        for name, m in class_medians(sample).items():
            typer.echo(f"  {name:8s} n={m['n_jets']:6d}  median mass {m['mass']:7.1f} GeV  "
                       f"constituents {m['n_particles']:5.1f}  pT {m['pt']:7.1f} GeV")


@contextmanager
def _bad_input_exits():
    """A missing or malformed file or checkpoint ends the command with its message and status 2."""
    from hepfm.data import DataError  # CheckpointError is one

    try:
        yield
    except (DataError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def _train_config(epochs, batch_size, lr, seed, device, patience, optimizer):
    from hepfm.train.loop import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, patience=patience,
                       optimizer=optimizer)


@app.command("pretrain")
def pretrain_command(
    data: Path = typer.Option(..., "--data", help="Jet or event dataset (hepfm directory or a reader's format)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint directory to write."),
    model: str = typer.Option("pet", "--model", help="pet (jets) or event_gnn (whole events)."),
    config: str = typer.Option(None, "--config", help="Size: PET tiny (default), small, medium; event model "
                               "default, small, tiny."),
    task: str = typer.Option("multiclass", "--task", help="Event model: multiclass or multilabel."),
    epochs: int = typer.Option(20, "--epochs", help="Maximum epochs (early stopping may end sooner)."),
    batch_size: int = typer.Option(128, "--batch-size", help="Jets per batch (per process under torchrun)."),
    lr: float = typer.Option(5e-4, "--lr", help="Peak learning rate."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or lion."),
    patience: int = typer.Option(5, "--patience", help="Early-stopping patience in epochs (0: never stop)."),
    max_jets: int = typer.Option(None, "--max-jets", "--max-events", help="Read at most this many jets (events)."),
    max_particles: int = typer.Option(128, "--max-particles", help="Constituents kept per jet."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Held out for validation (with --stream: "
                                       "every round(1/f)-th shard)."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, split and shuffling."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    stream: bool = typer.Option(False, "--stream", help="Stream a hepfm dataset shard by shard (data > memory)."),
) -> None:
    """Pretrain a foundation model: PET on jets (classifier + diffusion generator) or the event graph network
    (multiclass or multilabel). Runs under torchrun too."""
    from hepfm.train.recipes import pretrain, pretrain_events

    train = _train_config(epochs, batch_size, lr, seed, device, patience, optimizer)
    if model not in ("pet", "event_gnn"):
        raise typer.BadParameter(f"unknown --model {model!r}; use pet or event_gnn")
    with _bad_input_exits():
        if model == "pet":
            metrics = pretrain(data, out, config=config or "tiny", max_jets=max_jets, max_particles=max_particles,
                               val_fraction=val_fraction, resume=resume, stream=stream, train=train)
        else:
            metrics = pretrain_events(data, out, config=config or "default", task=task, max_events=max_jets,
                                      val_fraction=val_fraction, resume=resume, train=train)
    typer.echo(f"best epoch {metrics['best_epoch']}: val loss {metrics['best_val_loss']:.4f}, "
               f"val accuracy {metrics['val_accuracy']:.4f} -> {out}")


@app.command("finetune")
def finetune_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Pretrained checkpoint directory (jet or event model)."),
    train: Path = typer.Option(..., "--train", help="Training jets (any read_jets format) or events (read_events)."),
    test: Path = typer.Option(..., "--test", help="Test data (same classes)."),
    out: Path = typer.Option(..., "--out", help="Output directory: checkpoint and metrics.json."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Same model and recipe, random weights."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Train only the new head."),
    lr_factor: float = typer.Option(10.0, "--lr-factor", help="Backbone lr = head lr / this."),
    head_init: str = typer.Option("probe", "--head-init",
                                  help="New head's start: probe (a linear probe of the backbone) or zero."),
    n_train: int = typer.Option(None, "--n-train", help="Use this many training jets (random subset)."),
    epochs: int = typer.Option(20, "--epochs", help="Maximum epochs."),
    batch_size: int = typer.Option(128, "--batch-size", help="Jets per batch."),
    lr: float = typer.Option(5e-4, "--lr", help="Head learning rate."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or lion."),
    patience: int = typer.Option(5, "--patience", help="Early-stopping patience in epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, split and shuffling."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
) -> None:
    """Fine-tune a pretrained model on a new task (or train it from scratch); writes OUT/metrics.json."""
    from hepfm.train.recipes import finetune

    with _bad_input_exits():
        metrics = finetune(checkpoint, train, test, out, from_scratch=from_scratch,
                           freeze_backbone=freeze_backbone, lr_factor=lr_factor, head_init=head_init,
                           n_train=n_train, resume=resume,
                           train=_train_config(epochs, batch_size, lr, seed, device, patience, optimizer))
    typer.echo(f"AUC {metrics['auc']:.4f}  accuracy {metrics['accuracy']:.4f}  rej30 {metrics['rej30']:.1f}  "
               f"rej50 {metrics['rej50']:.1f}  ({metrics['epochs_run']} epochs, {metrics['wall_seconds']:.0f} s)"
               f" -> {out / 'metrics.json'}")


@app.command("scan")
def scan_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Pretrained checkpoint directory (jet or event model)."),
    train: Path = typer.Option(..., "--train", help="Labelled training data (each run draws its subset)."),
    test: Path = typer.Option(..., "--test", help="Test data (same classes)."),
    out: Path = typer.Option(..., "--out", help="Scan directory: one directory per run, metrics.json, figures."),
    sizes: str = typer.Option(..., "--sizes", help="Labelled training sizes, comma-separated."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds per size, comma-separated."),
    epochs: int = typer.Option(20, "--epochs", help="Maximum epochs per run."),
    batch_size: int = typer.Option(128, "--batch-size", help="Examples per batch."),
    lr: float = typer.Option(5e-4, "--lr", help="Head learning rate (the backbone gets lr / 10)."),
    patience: int = typer.Option(5, "--patience", help="Early-stopping patience in epochs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    parallel_runs: int = typer.Option(1, "--parallel-runs", help="Runs trained at once, one process each."),
) -> None:
    """Pretrained vs from-scratch fine-tuning over training sizes and seeds; resumable (finished runs are kept).

    Writes OUT/metrics.json (mean and spread per size, convergence, every run) and OUT/scan.png,
    OUT/convergence.png, and prints the table.
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hepfm.analysis.metrics import write_metrics
    from hepfm.analysis.plots import convergence_plot, save, scan_plot, use_style
    from hepfm.analysis.scan import convergence_summary, size_scan, summarise
    from hepfm.train.loop import TrainConfig

    size_list, seed_list = [int(v) for v in _split([sizes])], [int(v) for v in _split([seeds])]
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, device=device)
    with _bad_input_exits():
        rows = size_scan(checkpoint, train, test, size_list, seed_list, out, cfg, parallel_runs=parallel_runs)
    summary, convergence = summarise(rows), convergence_summary(rows)
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.8), constrained_layout=True)
    for ax, metric in zip(axes, ("auc", "accuracy", "rej30"), strict=True):
        scan_plot(summary, metric, ax=ax)
    save(fig, out, "scan")
    save(convergence_plot(rows, size_list[0]), out, "convergence")
    write_metrics(out, {"summary": summary, "convergence": convergence, "checkpoint": str(checkpoint),
                        "train": str(train), "test": str(test), "sizes": size_list, "seeds": seed_list,
                        "runs": rows})
    typer.echo("| start | size | AUC | accuracy | rej30 | rej50 | epochs (median) | wall s (median) |")
    typer.echo("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, per_size in summary.items():
        for size, e in per_size.items():
            sel = [r for r in rows if r["mode"] == mode and r["size"] == size]
            cells = " | ".join("no finite value" if e[m][0] is None else
                               f"{'≥ ' if e.get(m + '_lower_bound') else ''}{e[m][0]:.4g} ± {e[m][1]:.2g}"
                               for m in ("auc", "accuracy", "rej30", "rej50"))
            typer.echo(f"| {mode} | {size} | {cells} | {np.median([r['epochs_run'] for r in sel]):.0f} | "
                       f"{np.median([r['wall_seconds'] for r in sel]):.0f} |")
    for size, c in convergence.items():
        typer.echo(f"{size}: fine-tuned reaches scratch's best validation loss in {c['reached']}/{c['of']} seeds; "
                   f"median epoch ratio {c['median_epoch_ratio']}")


@notebooks_app.command("run")
def run_notebooks_command(
    profile: str = typer.Option("demo", "--profile", help="smoke, demo, cpu or gpu (notebooks/params/*.yaml)."),
    only: list[str] = typer.Option(None, "--only", help="Run only these notebooks (name or prefix, e.g. 00)."),
    out: Path = typer.Option(None, "--out", help="Output directory (default runs/<profile>)."),
    notebooks: Path = typer.Option(None, "--notebooks", help="Notebook directory (default: the suite)."),
) -> None:
    """Execute the notebooks with papermill, write OUT/index.md; exit 1 if any notebook failed."""
    from hepfm.runner import NOTEBOOK_DIR, run_notebooks

    results = run_notebooks(profile, out, _split(only) or None, notebooks or NOTEBOOK_DIR)
    for r in results:
        typer.echo(f"{'ok    ' if r.ok else 'FAILED'} {r.name:24s} {r.seconds:7.1f} s  {r.output_dir}")
    if results:
        typer.echo(f"index: {results[0].output_dir.parent / 'index.md'}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
