"""The data factory: typed productions, planned into shards, run on Dask (or in-process), resumed when interrupted.

A production (:class:`JetProduction`, :class:`EventProduction`) says what to make; it is checked in full —
names, sizes, the detector, every extra Pythia8 setting — before anything is written. :func:`produce` plans
it into shards, each a fixed number of jets (or whole events) of one class with its own seed derived from
(base seed, class name, shard index). Shards are independent, so they run as Dask tasks: on a
``LocalCluster`` by default, or on any existing cluster given its scheduler address (e.g. one started by
dask-jobqueue on an HPC batch system). Finished shards are never redone.

The output directory is locked while a production writes it (:func:`hepfm.core.io.directory_lock`): a second
production into it is refused at once rather than mixing its shards with the first one's. ``dataset.json``
lists the shards and says whether the production is complete; readers read exactly those shards and refuse
an unfinished production unless asked (``allow_incomplete``). A directory holding another production
(other settings, or more jets than asked for) is refused and left as it is.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hepfm.core.errors import DataError, OptionError
from hepfm.core.io import atomic_write_json, directory_lock
from hepfm.core.parallel import dask_client
from hepfm.core.progress import progress_bar
from hepfm.data.normaliser import FeatureNormaliser
from hepfm.data.schema import (
    CONTENTS,
    EVENT_SCHEMA,
    MANIFEST,
    OBJECT_FIELDS,
    OBJECT_TYPES,
    PARTICLE_FIELDS,
    SCHEMA_VERSION,
    TRUTH_LABELS,
    TRUTH_TARGETS,
)
from hepfm.data.storage import read_manifest, read_shard, write_shard
from hepfm.sim.detector import DETECTORS, DetectorConfig
from hepfm.sim.events import count_lhe_events, make_events
from hepfm.sim.jets import make_jets
from hepfm.sim.processes import event_settings, get_event_process, get_recipe
from hepfm.sim.pythia import check_settings, pythia_seed

__all__ = [
    "ShardSpec",
    "JetProduction",
    "EventProduction",
    "produce",
    "generate_jets",
    "generate_events",
    "SIZE_PRESETS",
    "shard_size",
]

#: Jets per class of the standard production sizes (``hepfm generate jets --profile``; ``paper`` runs on a cluster).
SIZE_PRESETS = {"smoke": 50, "demo": 300, "cpu": 25_000, "paper": 10_000_000}


def shard_size(n: int, at_most: int = 500) -> int:
    """Jets (events) per shard of an analysis's own production of ``n``: two shards, at most ``at_most`` each.

    A shard's content follows from the seed and its size alone, so a size that does not depend on the worker
    count makes the same jets on a laptop's two workers and on a node's sixteen.

    >>> shard_size(120), shard_size(5000), shard_size(1)
    (60, 500, 1)
    """
    return min(at_most, max(-(-n // 2), 1))


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work: ``size`` jets (or events) of class ``class_name`` written to ``path``.

    ``skip`` is the number of input events passed over first (for an LHE input shared by shards).
    """

    class_name: str
    label: int
    shard_index: int
    size: int
    seed: int
    path: str
    kind: str = "jets"
    skip: int = 0

    def attrs(self) -> dict:
        """The shard description stored in the file: the file name only, so a moved dataset stays valid."""
        d = {**asdict(self), "path": Path(self.path).name}
        d[f"n_{d.pop('kind')}"] = d.pop("size")
        if self.kind == "jets":
            d.pop("skip")
        return d


def _detector(detector: str | DetectorConfig) -> tuple[str, dict]:
    if isinstance(detector, str):
        if detector not in DETECTORS:
            raise OptionError("detector", f"unknown detector {detector!r}; known: {', '.join(DETECTORS)}")
        return detector, DETECTORS[detector].to_dict()
    return "custom", detector.to_dict()


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(name, f"must be a positive integer, got {value!r}")


def _distinct(name: str, values: tuple[str, ...]) -> None:
    if not values:
        raise OptionError(name, "must name at least one")
    if len(set(values)) != len(values):
        raise OptionError(name, f"lists a name twice: {list(values)}")


@dataclass(frozen=True)
class _Production:
    """What every production shares: seed, detector, and the planning of shards."""

    kind: ClassVar[str]
    seed: int = 1
    detector: str | DetectorConfig = "cms"

    @property
    def class_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def per_class(self) -> int:
        raise NotImplementedError

    @property
    def per_shard(self) -> int:
        raise NotImplementedError

    def shards(self, out: str | Path) -> list[ShardSpec]:
        """The shards of the production, in a fixed order; seeds depend only on (seed, class, shard)."""
        specs = []
        for label, name in enumerate(self.class_names):
            for k in range(-(-self.per_class // self.per_shard)):
                n = min(self.per_shard, self.per_class - k * self.per_shard)
                seed = pythia_seed(self.seed, zlib.crc32(name.encode()), k)
                path = str(Path(out) / "shards" / f"{name}-{k:05d}.parquet")
                specs.append(ShardSpec(name, label, k, n, seed, path, self.kind, k * self.per_shard))
        return specs

    def identity(self) -> dict:
        """The manifest fields two runs into one directory must share (everything but the size)."""
        raise NotImplementedError

    def make(self, spec: ShardSpec, progress) -> tuple[Any, dict, dict]:
        """(records, stats, extra shard attributes) of one shard."""
        raise NotImplementedError


@dataclass(frozen=True)
class JetProduction(_Production):
    """Labelled jets of JetClass classes or fine-tuning recipes (:data:`hepfm.sim.processes.JET_RECIPES`).

    Args:
        classes: recipe names; label = position in the list.
        jets_per_class: jets of each class.
        seed: base seed; the same seed gives identical files.
        detector: ``"cms"``, ``"none"`` (particle level) or a :class:`DetectorConfig`.
        jets_per_shard: jets per shard file (the unit of parallelism and of resumption).
        settings: extra Pythia8 settings after every recipe's (a tune or shower variation), recorded.
        paired: also store each jet's particle-level partner (``read_jets(path, level="particle")``).

    Raises:
        OptionError: an unknown class or detector, a count that is not positive, or a setting Pythia8 rejects.
    """

    kind: ClassVar[str] = "jets"
    classes: tuple[str, ...] = ()
    jets_per_class: int = 1000
    jets_per_shard: int = 1000
    settings: tuple[str, ...] = ()
    paired: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "settings", tuple(str(s) for s in self.settings))
        _distinct("classes", self.classes)
        for name in self.classes:
            get_recipe(name)
        _positive("jets_per_class", self.jets_per_class)
        _positive("jets_per_shard", self.jets_per_shard)
        _detector(self.detector)
        check_settings(self.settings, "settings")

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def per_class(self) -> int:
        return self.jets_per_class

    @property
    def per_shard(self) -> int:
        return self.jets_per_shard

    def identity(self) -> dict:
        name, det = _detector(self.detector)
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "jets",
            "class_names": list(self.classes),
            "recipes": {c: get_recipe(c).description for c in self.classes},
            "settings": {c: [*get_recipe(c).settings(), *self.settings] for c in self.classes},
            "paired": self.paired,
            "seed": self.seed,
            "jets_per_shard": self.jets_per_shard,
            "detector_name": name,
            "detector": det,
        }

    def make(self, spec: ShardSpec, progress) -> tuple[Any, dict, dict]:
        array, stats = make_jets(
            get_recipe(spec.class_name),
            spec.size,
            label=spec.label,
            seed=spec.seed,
            detector=DetectorConfig(**_detector(self.detector)[1]),
            shard_index=spec.shard_index,
            extra_settings=self.settings,
            paired=self.paired,
            progress=progress,
        )
        return array, stats, {}


@dataclass(frozen=True)
class EventProduction(_Production):
    """Whole events of named processes (:data:`hepfm.sim.processes.EVENT_PROCESSES`) or LHE files.

    Args:
        processes: process names or keys of ``lhe``; label = position in the list.
        events_per_process: events of each process.
        seed, detector: as for :class:`JetProduction`.
        events_per_shard: events per shard file.
        lhe: ``{process name: LHE file}`` for processes Pythia8 does not make itself (MadGraph ttW, ...);
            Pythia8 showers them, shard ``k`` reading events ``k * events_per_shard`` onwards.
        content: ``"objects"`` (reconstructed objects and truth) or ``"particles"`` (every particle-flow
            candidate, the layout of the LHC Olympics sets).
        trigger_pt: keep only events whose leading anti-kT R = 1.0 jet has pT above this (GeV); 0 keeps all.

    Raises:
        OptionError: an unknown process, content or detector, or a count that is not positive.
        DataError: an LHE file with fewer events than asked for.
    """

    kind: ClassVar[str] = "events"
    processes: tuple[str, ...] = ()
    events_per_process: int = 1000
    events_per_shard: int = 1000
    lhe: dict[str, str] = field(default_factory=dict)
    content: str = "objects"
    trigger_pt: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "processes", tuple(self.processes))
        object.__setattr__(self, "lhe", {k: str(Path(v).resolve()) for k, v in (self.lhe or {}).items()})
        object.__setattr__(self, "trigger_pt", float(self.trigger_pt))
        _distinct("processes", self.processes)
        _positive("events_per_process", self.events_per_process)
        _positive("events_per_shard", self.events_per_shard)
        if self.content not in CONTENTS:
            raise OptionError("content", f"unknown event content {self.content!r}; use one of {CONTENTS}")
        if self.trigger_pt < 0:
            raise OptionError("trigger_pt", f"must be >= 0 GeV, got {self.trigger_pt}")
        _detector(self.detector)
        for name in self.processes:
            get_event_process(name, self.lhe)
            if name in self.lhe and (n := count_lhe_events(self.lhe[name])) < self.events_per_process:
                raise DataError(
                    f"{self.lhe[name]}: holds {n} events, fewer than the {self.events_per_process} asked for {name}"
                )

    @property
    def class_names(self) -> list[str]:
        return list(self.processes)

    @property
    def per_class(self) -> int:
        return self.events_per_process

    @property
    def per_shard(self) -> int:
        return self.events_per_shard

    def identity(self) -> dict:
        procs = {p: get_event_process(p, self.lhe) for p in self.processes}
        content: dict = {"content": self.content, "trigger_pt": self.trigger_pt}
        if self.content == "objects":
            content.update(
                object_fields=list(OBJECT_FIELDS),
                object_types=list(OBJECT_TYPES),
                truth_labels=list(TRUTH_LABELS),
                truth_targets=list(TRUTH_TARGETS),
            )
        else:
            content.update(particle_fields=list(PARTICLE_FIELDS))
        name, det = _detector(self.detector)
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "events",
            "event_schema": EVENT_SCHEMA,
            "class_names": list(self.processes),
            "processes": {p: procs[p].description for p in self.processes},
            "settings": {p: list(event_settings(procs[p])) for p in self.processes},
            **content,
            "seed": self.seed,
            "events_per_shard": self.events_per_shard,
            "detector_name": name,
            "detector": det,
        }

    def make(self, spec: ShardSpec, progress) -> tuple[Any, dict, dict]:
        settings = event_settings(get_event_process(spec.class_name, self.lhe), spec.skip)
        array, stats = make_events(
            settings,
            spec.size,
            label=spec.label,
            seed=spec.seed,
            detector=DetectorConfig(**_detector(self.detector)[1]),
            content=self.content,
            trigger_pt=self.trigger_pt,
            progress=progress,
        )
        return array, stats, {"event_schema": EVENT_SCHEMA, "content": self.content}


def run_shard(production: _Production, spec: ShardSpec, progress: bool = False) -> dict:
    """Generate and write one shard (a Dask task; also called in-process). Returns its stats."""
    bar = progress_bar(
        total=spec.size, desc=f"{spec.class_name}[{spec.shard_index}]", leave=False, disable=not progress
    )
    array, stats, extra = production.make(spec, bar)
    bar.close()
    # Wall time stays out of the file so that equal seeds give byte-identical shards.
    attrs = {
        "class_names": production.class_names,
        "shard": spec.attrs(),
        "detector": _detector(production.detector)[1],
        "events": stats["events"],
        **extra,
    }
    write_shard(array, spec.path, attrs)
    return {"path": spec.path, "size": len(array), **stats}


def _shard_done(spec: ShardSpec) -> bool:
    path = Path(spec.path)
    if not path.exists():
        return False
    try:
        array, attrs = read_shard(path)
    except DataError:
        return False  # unreadable leftovers are regenerated; the rename makes this rare
    return attrs.get("shard") == spec.attrs() and len(array) == spec.size


def _check_reusable(out: Path, existing: dict, production: _Production, specs: list[ShardSpec]) -> None:
    """Refuse a directory holding another production (another identity, or more of each class)."""
    if not existing:
        return
    identity = production.identity()
    started = any((out / "shards" / name).exists() for name in existing.get("shards", []) if isinstance(name, str))
    old = {k: existing.get(k) for k in identity}
    if old != identity and (started or existing.get("complete")):
        diff = sorted(k for k in identity if old.get(k) != identity[k])
        raise DataError(
            f"{out / MANIFEST}: holds a production with other settings (fields {diff}); "
            "choose another --out or delete it"
        )
    stored = existing.get(f"{production.kind}_per_class")
    if old == identity and isinstance(stored, dict) and stored and max(stored.values()) > production.per_class:
        raise DataError(
            f"{out / MANIFEST}: holds {max(stored.values())} {production.kind} per class, more than the "
            f"{production.per_class} asked for; a smaller production would overwrite its shards "
            f"(read fewer with max_jets, or choose another --out)"
        )


def produce(
    production: _Production, out: str | Path, *, workers: int = 1, scheduler: str | None = None, progress: bool = True
) -> Path:
    """Produce (or complete) ``production`` in the dataset directory ``out``.

    Args:
        production: a :class:`JetProduction` or :class:`EventProduction`.
        out: dataset directory; created if needed.
        workers: Dask worker processes on a ``LocalCluster``; 1 runs in this process.
        scheduler: address of an existing Dask scheduler (overrides ``workers``).
        progress: show a progress bar.

    Returns:
        The dataset directory.

    Raises:
        DataError: ``out`` holds another production (nothing there is touched).
        OutputError: another process is writing ``out``, or it cannot be written.
    """
    out = Path(out)
    _positive("workers", workers)
    with directory_lock(out, "writing a production into"):
        specs = production.shards(out)
        existing = read_manifest(out)
        _check_reusable(out, existing, production, specs)
        counts = {c: sum(s.size for s in specs if s.class_name == c) for c in production.class_names}
        kind = production.kind
        plan = {**production.identity(), f"{kind}_per_class": counts, "shards": [Path(s.path).name for s in specs]}
        atomic_write_json(out / MANIFEST, {**plan, "complete": False})
        # Shard k of every class before shard k + 1 of any: a production stopped partway (or read with
        # allow_incomplete while it runs) holds every class in equal measure.
        todo = sorted((s for s in specs if not _shard_done(s)), key=lambda s: (s.shard_index, s.label))
        stats = _run(production, todo, workers, scheduler, progress) if todo else []
        manifest = {**plan, "complete": True}
        if "last_run" in existing:
            manifest["last_run"] = existing["last_run"]
        if stats:
            manifest["last_run"] = {
                "shards": len(stats),
                "generated_events": sum(s["events"] for s in stats),
                kind: sum(s["size"] for s in stats),
                "cpu_seconds": round(sum(s["seconds"] for s in stats), 2),
            }
        if kind == "jets":
            manifest["normalisation"] = existing.get("normalisation")
            if manifest["normalisation"] is None or todo:
                manifest["normalisation"] = FeatureNormaliser.of_production(out, allow_incomplete=True).to_dict()
        atomic_write_json(out / MANIFEST, manifest)
    return out


def _run(
    production: _Production, todo: list[ShardSpec], workers: int, scheduler: str | None, progress: bool
) -> list[dict]:
    bar = progress_bar(
        total=sum(s.size for s in todo), desc=production.kind, unit=production.kind[:-1], disable=not progress
    )
    results = []
    try:
        if scheduler is None and workers <= 1:
            for spec in todo:
                results.append(run_shard(production, spec))
                bar.update(spec.size)
            return results

        from distributed import as_completed

        with dask_client(workers, scheduler) as client:
            futures = [client.submit(run_shard, production, spec, pure=False) for spec in todo]
            sizes = {f.key: s.size for f, s in zip(futures, todo, strict=True)}
            for future in as_completed(futures):
                results.append(future.result())
                bar.update(sizes[future.key])
        return results
    finally:
        bar.close()


def generate_jets(
    classes: list[str] | tuple[str, ...],
    jets_per_class: int,
    out: str | Path,
    *,
    seed: int = 1,
    detector: str | DetectorConfig = "cms",
    jets_per_shard: int = 1000,
    settings: tuple[str, ...] | list[str] = (),
    paired: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> Path:
    """Produce (or complete) a jet dataset in ``out``: :class:`JetProduction` run by :func:`produce`.

    Args:
        classes, jets_per_class, seed, detector, jets_per_shard, settings, paired: see :class:`JetProduction`.
        out, workers, scheduler, progress: see :func:`produce`.

    Returns:
        The dataset directory.
    """
    production = JetProduction(
        seed=seed,
        detector=detector,
        classes=tuple(classes),
        jets_per_class=jets_per_class,
        jets_per_shard=jets_per_shard,
        settings=tuple(settings),
        paired=paired,
    )
    return produce(production, out, workers=workers, scheduler=scheduler, progress=progress)


def generate_events(
    processes: list[str] | tuple[str, ...],
    events_per_process: int,
    out: str | Path,
    *,
    seed: int = 1,
    detector: str | DetectorConfig = "cms",
    events_per_shard: int = 1000,
    lhe: dict[str, str] | None = None,
    content: str = "objects",
    trigger_pt: float = 0.0,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> Path:
    """Produce (or complete) a whole-event dataset in ``out`` (see :mod:`hepfm.sim.events`):
    :class:`EventProduction` run by :func:`produce`.

    Args:
        processes, events_per_process, seed, detector, events_per_shard, lhe, content, trigger_pt: see
            :class:`EventProduction`.
        out, workers, scheduler, progress: see :func:`produce`.

    Returns:
        The dataset directory.
    """
    production = EventProduction(
        seed=seed,
        detector=detector,
        processes=tuple(processes),
        events_per_process=events_per_process,
        events_per_shard=events_per_shard,
        lhe=dict(lhe or {}),
        content=content,
        trigger_pt=trigger_pt,
    )
    return produce(production, out, workers=workers, scheduler=scheduler, progress=progress)
