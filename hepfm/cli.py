"""The ``hepfm`` command line: data production, inspection, training, scans, export and the notebook runner.

Every command has ``--help``. Options of the training commands are built from the recipe dataclasses
(:class:`~hepfm.train.config.TrainConfig`, :class:`~hepfm.train.finetune.FinetuneConfig`), so each default
lives in one place, and every value is checked before any work starts. One error boundary (:class:`_Boundary`)
turns every error a user can cause — hepfm's own (:class:`~hepfm.core.errors.HepfmError`), and unreadable,
read-only or full paths — into one line on stderr naming the file or option, with exit status 2; ``--debug``
(or ``HEPFM_DEBUG=1``) shows the traceback instead. Nothing here runs at import time.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Optional, get_args, get_origin

import typer
from typer.core import TyperGroup

from hepfm.core.errors import HepfmError, OptionError, Stopped
from hepfm.core.signals import handling
from hepfm.sim.factory import EventProduction, JetProduction, produce
from hepfm.train.pretrain import pretrain

__all__ = ["app", "main"]

DEBUG_ENV = "HEPFM_DEBUG"


# API parameters whose command-line flag is not their name with dashes
_FLAGS = {"settings": "--set", "classes": "--classes/--recipe"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _message(err: BaseException) -> str:
    if isinstance(err, OptionError):
        return f"{_flag(err.option) if not err.option.isupper() else err.option}: {err.message}"
    if isinstance(err, HepfmError):
        return str(err)
    if isinstance(err, OSError):
        where = err.filename or ""
        return f"{where}: {err.strerror or err}" if where else str(err.strerror or err)
    return f"{type(err).__name__}: {err}"


def _speaks() -> bool:
    """Whether this process prints a run's result or stop: the only one, or torchrun's rank 0 (the ranks end alike)."""
    return os.environ.get("RANK", "0") == "0"


def _sigterm(signum: int, frame: Any) -> None:
    raise Stopped(
        "the command got SIGTERM; finished files are kept; re-run it (with --resume for training) to continue",
        signum,
    )


class _Boundary(TyperGroup):
    """The one error boundary of every ``hepfm`` command (subcommands are groups of this class too)."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context; typer vendors click, whose Context mypy sees twice
        try:
            # SIGTERM (a batch system's, kill) ends a command as Ctrl-C does, with its message and 128 + 15;
            # training replaces this with saving its state first
            with handling(_sigterm, signal.SIGTERM):
                return super().invoke(ctx)
        except (HepfmError, OSError) as err:
            if os.environ.get(DEBUG_ENV, "") not in ("", "0") or (ctx.find_root().params.get("debug")):
                raise
            typer.echo(f"error: {_message(err)}", err=True)
            raise typer.Exit(2) from None
        except Stopped as err:  # training saved its state at the step where the signal came
            if _speaks():
                typer.echo(f"stopped: {err}", err=True)
            raise typer.Exit(128 + err.signum) from None
        except KeyboardInterrupt:
            typer.echo(
                "interrupted: finished files are kept; re-run the command (with --resume for training) to continue",
                err=True,
            )
            raise typer.Exit(130) from None


def _typer(help: str) -> typer.Typer:
    return typer.Typer(
        help=help, no_args_is_help=True, cls=_Boundary, pretty_exceptions_enable=False, add_completion=False
    )


app = _typer("hepfm: foundation models for collider physics.")
generate_app = _typer("Generate simulated data with Pythia8, FastJet and the fast detector.")
notebooks_app = _typer("Run the notebook suite through papermill.")
app.add_typer(generate_app, name="generate")
app.add_typer(notebooks_app, name="notebooks")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help=f"Show the traceback of an error (or set {DEBUG_ENV}=1)."),
) -> None:
    """hepfm: foundation models for collider physics."""


def main() -> None:
    """The ``hepfm`` console script."""
    app()


# -- options built from the recipe dataclasses ---------------------------------------------------------------


def _cli_type(hint: Any) -> Any:
    """The type typer parses an option as: Literal names as str, ``X | None`` as Optional[X]."""
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is Literal:
        return str
    if type(None) in get_args(hint) and len(args) == 1:
        return Optional[_cli_type(args[0])]  # noqa: UP045 - typer reads typing.Optional
    return hint


def recipe_options(**groups: tuple[type, tuple[str, ...]]):
    """Give a command the options of dataclass fields: ``name=(Dataclass, ("field", ...))`` adds ``--field`` for
    each (default, type and help from the dataclass) and passes the command ``name=Dataclass(...)``, built —
    and so checked — inside the error boundary, before the command's own code runs."""

    def wrap(command):
        sig = inspect.signature(command)
        hints = typing.get_type_hints(command)
        params = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in sig.parameters.values()
            if p.name not in groups
        ]
        added = {}
        for group, (cls, names) in groups.items():
            cls_hints = typing.get_type_hints(cls)
            by_name = {f.name: f for f in fields(cls)}
            for name in names:
                f = by_name[name]
                hint = _cli_type(cls_hints[name])
                flag = f"{_flag(name)}/--no-{name.replace('_', '-')}" if hint is bool and f.default else _flag(name)
                key = f"{group}__{name}"
                added[key] = hint
                params.append(
                    inspect.Parameter(
                        key,
                        inspect.Parameter.KEYWORD_ONLY,
                        annotation=hint,
                        default=typer.Option(f.default, flag, help=f.metadata["help"]),
                    )
                )

        @functools.wraps(command)
        def run(**kwargs):
            for group, (cls, names) in groups.items():
                kwargs[group] = cls(**{name: kwargs.pop(f"{group}__{name}") for name in names})
            return command(**kwargs)

        run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {**{p.name: p.annotation for p in params}, "return": None}
        del run.__wrapped__  # typer must read the signature above, not the command's
        return run

    return wrap


def _default(source: Any, name: str) -> Any:
    """The default of dataclass field or function parameter ``name``: options repeat no default."""
    if is_dataclass(source):
        return next(f.default for f in fields(source) if f.name == name)
    return inspect.signature(source).parameters[name].default


def _train_config():
    from hepfm.train.config import TrainConfig

    return TrainConfig


def _finetune_config():
    from hepfm.train.finetune import FinetuneConfig

    return FinetuneConfig


_TRAIN_FIELDS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "warmup_epochs",
    "ema_decay",
    "patience",
    "seed",
    "device",
    "num_workers",
    "save_minutes",
)
# The options every data-producing command shares.
_OUT = typer.Option(..., "--out", help="Dataset directory (created; re-running the same command resumes it).")
_GEN_SEED = typer.Option(_default(JetProduction, "seed"), "--seed", help="Base seed; equal seeds give identical files.")
_DETECTOR = typer.Option(
    _default(JetProduction, "detector"), "--detector", help="Fast detector: cms, or none for particle level."
)
_WORKERS = typer.Option(
    _default(produce, "workers"), "--workers", help="Dask LocalCluster worker processes (1 = in-process)."
)
_SCHEDULER = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler.")
_ALLOW_INCOMPLETE = typer.Option(
    False, "--allow-incomplete", help="Read an unfinished hepfm production (the shards written so far)."
)
_RESUME = typer.Option(False, "--resume", help="Continue the interrupted run in --out (same data and recipe).")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace the run already in --out.")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _integers(text: str, option: str) -> list[int]:
    items = _split([text])
    if not items or not all(v.isdigit() and int(v) > 0 or (option == "seeds" and v.isdigit()) for v in items):
        raise OptionError(
            option,
            f"expected comma-separated {'non-negative' if option == 'seeds' else 'positive'} integers, got {text!r}",
        )
    return [int(v) for v in items]


def _positive(option: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise OptionError(option, f"must be a positive integer, got {value}")


# -- data ------------------------------------------------------------------------------------------------------


@generate_app.command("jets")
def generate_jets_command(
    out: Path = _OUT,
    classes: list[str] = typer.Option(None, "--classes", help="Comma-separated JetClass classes, e.g. Tbqq,QCD."),
    recipe: list[str] = typer.Option(None, "--recipe", help="Fine-tuning recipes: top, qcd, quark, gluon."),
    jets_per_class: int = typer.Option(None, "--jets-per-class", help="Jets per class."),
    profile: str = typer.Option(
        None, "--profile", help="Size preset instead of --jets-per-class: smoke, demo, cpu, paper."
    ),
    seed: int = _GEN_SEED,
    detector: str = _DETECTOR,
    jets_per_shard: int = typer.Option(
        _default(JetProduction, "jets_per_shard"), "--jets-per-shard", help="Jets per shard file."
    ),
    pythia_set: list[str] = typer.Option(
        None,
        "--set",
        help="An extra Pythia8 setting after the recipe's, e.g. 'TimeShower:alphaSvalue = 0.118' (repeatable).",
    ),
    paired: bool = typer.Option(
        False,
        "--paired",
        help="Also store each jet's particle-level partner (read with level='particle'), for unfolding.",
    ),
    workers: int = _WORKERS,
    scheduler: str = _SCHEDULER,
) -> None:
    """Generate labelled jets: JetClass classes and fine-tuning samples, sharded and resumable."""
    from hepfm.data.schema import JETCLASS_CLASSES
    from hepfm.sim.factory import SIZE_PRESETS, JetProduction, produce

    names = _split(classes) + _split(recipe) or list(JETCLASS_CLASSES)
    if jets_per_class is None:
        if profile not in SIZE_PRESETS:
            raise OptionError("jets_per_class", f"give --jets-per-class or --profile ({', '.join(SIZE_PRESETS)})")
        jets_per_class = SIZE_PRESETS[profile]
    production = JetProduction(
        seed=seed,
        detector=detector,
        classes=tuple(names),
        jets_per_class=jets_per_class,
        jets_per_shard=jets_per_shard,
        settings=tuple(pythia_set or ()),
        paired=paired,
    )
    typer.echo(f"wrote {produce(production, out, workers=workers, scheduler=scheduler)}")


@generate_app.command("events")
def generate_events_command(
    out: Path = _OUT,
    processes: list[str] = typer.Option(
        None,
        "--processes",
        help="Comma-separated processes, e.g. ttH,ttbar (default: the twelve pretraining processes).",
    ),
    events_per_process: int = typer.Option(..., "--events-per-process", help="Events per process."),
    lhe: list[str] = typer.Option(
        None,
        "--lhe",
        help="NAME=FILE: a process read from a Les Houches Event file "
        "(repeatable); NAME can then be listed in --processes.",
    ),
    seed: int = _GEN_SEED,
    detector: str = _DETECTOR,
    events_per_shard: int = typer.Option(
        _default(EventProduction, "events_per_shard"), "--events-per-shard", help="Events per shard file."
    ),
    content: str = typer.Option(
        _default(EventProduction, "content"),
        "--content",
        help="objects (reconstructed objects and truth) or "
        "particles (every particle-flow candidate, as the LHC Olympics sets).",
    ),
    trigger_pt: float = typer.Option(
        _default(EventProduction, "trigger_pt"),
        "--trigger-pt",
        help="Keep events whose leading anti-kT R=1.0 jet has "
        "pT above this, in GeV (1200 is the LHCO trigger; 0 keeps all).",
    ),
    workers: int = _WORKERS,
    scheduler: str = _SCHEDULER,
) -> None:
    """Generate whole events: reconstructed objects with process label and hard-process truth, or particle-flow
    candidates; sharded and resumable.

    The LHC Olympics-like anomaly-detection samples:
    hepfm generate events --processes qcd_dijet --events-per-process 100000 --content particles --trigger-pt 1200
    --out data/lhco-qcd
    """
    from hepfm.sim.factory import EventProduction, produce
    from hepfm.sim.processes import PRETRAINING_PROCESSES

    files = {}
    for item in _split(lhe):
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise OptionError("lhe", f"takes NAME=FILE, got {item!r}")
        files[name] = file
    production = EventProduction(
        seed=seed,
        detector=detector,
        processes=tuple(_split(processes) or PRETRAINING_PROCESSES),
        events_per_process=events_per_process,
        events_per_shard=events_per_shard,
        lhe=files,
        content=content,
        trigger_pt=trigger_pt,
    )
    typer.echo(f"wrote {produce(production, out, workers=workers, scheduler=scheduler)}")


@generate_app.command("list")
def list_recipes() -> None:
    """List the jet classes and recipes, and the event processes."""
    from hepfm.sim.processes import BSM_PROCESSES, EVENT_PROCESSES, JET_RECIPES, LHCO_PROCESSES

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
    allow_incomplete: bool = _ALLOW_INCOMPLETE,
) -> None:
    """Read a data file and print what it holds (count per class, medians)."""
    from hepfm.analysis.validation import class_medians
    from hepfm.data import read_events, read_jets
    from hepfm.data.schema import OBJECT_TYPES

    sample: Any = (read_events if events else read_jets)(path, format, allow_incomplete=allow_incomplete)
    typer.echo(repr(sample))
    if events:
        if "type" in sample.particle_features:
            kinds = sample.feature("type")[sample.mask].astype(int)
            per_event = [(kinds == k).sum() / max(len(sample), 1) for k in range(len(OBJECT_TYPES))]
            typer.echo(
                "  objects per event: "
                + ", ".join(f"{t} {n:.2f}" for t, n in zip(OBJECT_TYPES, per_event, strict=True))
            )
    else:
        for name, m in class_medians(sample).items():
            typer.echo(
                f"  {name:8s} n={m['n_jets']:6d}  median mass {m['mass']:7.1f} GeV  "
                f"constituents {m['n_particles']:5.1f}  pT {m['pt']:7.1f} GeV"
            )


# -- training --------------------------------------------------------------------------------------------------


@app.command("pretrain")
@recipe_options(train=(_train_config(), _TRAIN_FIELDS))
def pretrain_command(
    data: Path = typer.Option(..., "--data", help="Jet or event dataset (hepfm directory or a reader's format)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint directory to write."),
    model: str = typer.Option("pet", "--model", help="pet (jets) or event_gnn (whole events)."),
    config: str = typer.Option(
        None, "--config", help="Size: PET tiny (default), small, medium; event model default, small, tiny."
    ),
    task: str = typer.Option(None, "--task", help="Event model only: multiclass (default) or multilabel."),
    max_jets: int = typer.Option(None, "--max-jets", "--max-events", help="Read at most this many jets (events)."),
    max_particles: int = typer.Option(
        None,
        "--max-particles",
        help=f"PET only: constituents kept per jet (default {_default(pretrain, 'max_particles')}).",
    ),
    val_fraction: float = typer.Option(
        _default(pretrain, "val_fraction"),
        "--val-fraction",
        help="Held out for validation (with --stream: every round(1/f)-th shard).",
    ),
    stream: bool = typer.Option(False, "--stream", help="Stream a hepfm dataset shard by shard (data > memory)."),
    resume: bool = _RESUME,
    overwrite: bool = _OVERWRITE,
    allow_incomplete: bool = _ALLOW_INCOMPLETE,
    train: Any = None,
) -> None:
    """Pretrain a foundation model: PET on jets (classifier + diffusion generator) or the event graph network
    (multiclass or multilabel). Runs under torchrun too."""
    from hepfm.models.event_gnn import EventGNNConfig
    from hepfm.models.pet import PETConfig
    from hepfm.train.pretrain import pretrain, pretrain_events

    if model not in ("pet", "event_gnn"):
        raise OptionError("model", f"unknown model {model!r}; use pet or event_gnn")
    _positive("max_jets", max_jets)
    _positive("max_particles", max_particles)
    if model == "pet" and task is not None:
        raise OptionError("task", "is the event model's (--model event_gnn); PET pretrains on its one objective")
    if model == "event_gnn" and max_particles is not None:
        raise OptionError("max_particles", "is PET's; the event model keeps every object of an event")
    size = config or ("tiny" if model == "pet" else "default")
    PETConfig.named(size) if model == "pet" else EventGNNConfig.named(size)  # an unknown size fails here
    common = dict(
        val_fraction=val_fraction, resume=resume, overwrite=overwrite, train=train, allow_incomplete=allow_incomplete
    )
    if model == "pet":
        particles = _default(pretrain, "max_particles") if max_particles is None else max_particles
        metrics = pretrain(data, out, config=size, max_jets=max_jets, max_particles=particles, stream=stream, **common)
    else:
        task = task or _default(pretrain_events, "task")
        metrics = pretrain_events(data, out, config=size, task=task, max_events=max_jets, stream=stream, **common)
    accuracy = metrics["val_accuracy"]
    if _speaks():
        typer.echo(
            f"best epoch {metrics['best_epoch']}: val loss {metrics['best_val_loss']:.4f}, "
            f"val accuracy {'n/a' if accuracy is None else f'{accuracy:.4f}'} -> {out}"
        )


@app.command("finetune")
@recipe_options(
    train=(_train_config(), _TRAIN_FIELDS),
    recipe=(
        _finetune_config(),
        (
            "from_scratch",
            "freeze_backbone",
            "lr_factor",
            "head_init",
            "n_train",
            "val_fraction",
            "max_particles",
            "use_jet_features",
            "signal",
        ),
    ),
)
def finetune_command(
    checkpoint: str = typer.Option(
        ...,
        "--checkpoint",
        help="Pretrained checkpoint: a directory or a shipped checkpoint's name (jet or event model).",
    ),
    train_data: Path = typer.Option(..., "--train", help="Training jets (any read_jets format) or events."),
    test: Path = typer.Option(..., "--test", help="Test data (same classes)."),
    out: Path = typer.Option(..., "--out", help="Output directory: checkpoint and metrics.json."),
    resume: bool = _RESUME,
    overwrite: bool = _OVERWRITE,
    train: Any = None,
    recipe: Any = None,
) -> None:
    """Fine-tune a pretrained model on a new task (or train it from scratch); writes OUT/metrics.json."""
    from hepfm.train.finetune import finetune

    metrics = finetune(checkpoint, train_data, test, out, recipe, train=train, resume=resume, overwrite=overwrite)
    if _speaks():
        typer.echo(
            f"AUC {metrics['auc']:.4f}  accuracy {metrics['accuracy']:.4f}  rej30 {_rej(metrics['rej30'])}  "
            f"rej50 {_rej(metrics['rej50'])}  ({metrics['epochs_run']} epochs, {metrics['wall_seconds']:.0f} s)"
            f" -> {out / 'metrics.json'}"
        )


def _rej(value: float | None) -> str:
    return "inf" if value is None or value == float("inf") else f"{value:.1f}"


@app.command("scan")
@recipe_options(
    train=(_train_config(), _TRAIN_FIELDS),
    recipe=(_finetune_config(), ("lr_factor", "head_init", "val_fraction", "max_particles")),
)
def scan_command(
    checkpoint: str = typer.Option(..., "--checkpoint", help="Pretrained checkpoint (directory or shipped name)."),
    train_data: Path = typer.Option(..., "--train", help="Labelled training data (each run draws its subset)."),
    test: Path = typer.Option(..., "--test", help="Test data (same classes)."),
    out: Path = typer.Option(..., "--out", help="Scan directory: one directory per run, metrics.json, figures."),
    sizes: str = typer.Option(..., "--sizes", help="Labelled training sizes, comma-separated."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds per size, comma-separated."),
    parallel_runs: int = typer.Option(1, "--parallel-runs", help="Runs trained at once, one process each."),
    resume: bool = typer.Option(False, "--resume", help="Reuse the finished runs in --out and continue the others."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the runs already in --out."),
    train: Any = None,
    recipe: Any = None,
) -> None:
    """Pretrained vs from-scratch fine-tuning over training sizes and seeds; resumable (finished runs are kept).

    Writes OUT/metrics.json (mean and spread per size, convergence, every run) and OUT/scan.png,
    OUT/convergence.png, and prints the table.
    """
    from dataclasses import asdict

    from hepfm.analysis.scan import scan_report, size_scan

    size_list, seed_list = _integers(sizes, "sizes"), _integers(seeds, "seeds")
    _positive("parallel_runs", parallel_runs)
    options = {
        k: v for k, v in asdict(recipe).items() if k in ("lr_factor", "head_init", "val_fraction", "max_particles")
    }
    rows = size_scan(
        checkpoint,
        train_data,
        test,
        size_list,
        seed_list,
        out,
        train,
        parallel_runs=parallel_runs,
        resume=resume,
        overwrite=overwrite,
        **options,
    )
    typer.echo(scan_report(rows, out, checkpoint=str(checkpoint), train=str(train_data), test=str(test)))


@app.command("export")
def export_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint directory or a shipped checkpoint's name."),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write (dynamic batch and particle/object axes)."),
) -> None:
    # the help is Rich markup: the bracket is escaped so that the extra's name shows
    r"""Export a checkpoint's classifier to ONNX for deployment (needs the onnx extra: pip install 'hepfm\[onnx]',
    or pip install -e '.\[onnx]' in a checkout)."""
    from hepfm.train.export import export_onnx

    path = export_onnx(checkpoint, onnx)
    typer.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


# -- notebooks -------------------------------------------------------------------------------------------------


@notebooks_app.command("run")
def run_notebooks_command(
    profile: str = typer.Option(
        "demo", "--profile", help="smoke, demo, cpu, gpu-check or gpu (notebooks/params/*.yaml)."
    ),
    only: list[str] = typer.Option(None, "--only", help="Run only these notebooks (name or prefix, e.g. 00)."),
    out: Path = typer.Option(None, "--out", help="Output directory (default runs/<profile>)."),
    notebooks: Path = typer.Option(None, "--notebooks", help="Notebook directory (default: the suite)."),
    jobs: int = typer.Option(
        None, "--jobs", help="Notebooks run at once (default: 2 where the cores and memory allow, else 1)."
    ),
) -> None:
    """Execute the notebooks with papermill, write OUT/index.md; exit 1 if any notebook failed."""
    from hepfm.runner import NOTEBOOK_DIR, run_notebooks

    _positive("jobs", jobs)
    results = run_notebooks(profile, out, _split(only) or None, notebooks or NOTEBOOK_DIR, jobs=jobs)
    for r in results:
        typer.echo(f"{'ok    ' if r.ok else 'FAILED'} {r.name:24s} {r.seconds:7.1f} s  {r.output_dir}")
    if results:
        typer.echo(f"index: {results[0].output_dir.parent / 'index.md'}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


if __name__ == "__main__":
    main()
