"""The data factory: plan shards, run them on Dask (or in-process), resume what was interrupted.

A production is a list of shards, each a fixed number of jets (or whole events) of one class with its own seed
derived from (base seed, class name, shard index). Shards are independent, so they run as Dask
tasks: on a ``LocalCluster`` by default, or on any existing cluster given its scheduler address
(e.g. one started by dask-jobqueue on an HPC batch system). Finished shards are never redone.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from hepfm.data.detector import DETECTORS, DetectorConfig
from hepfm.data.processes import event_settings, get_event_process, get_recipe
from hepfm.data.pythia import pythia_seed
from hepfm.data.sample import DataError
from hepfm.data.storage import (
    MANIFEST,
    SCHEMA_VERSION,
    atomic_write_json,
    read_manifest,
    read_shard,
    write_shard,
)

__all__ = ["ShardSpec", "plan_jets", "plan_events", "generate_jets", "generate_events", "run_shard", "dask_client",
           "PROFILES"]

#: Jets per class of the standard production sizes (the ``paper`` size runs on a Dask cluster).
PROFILES = {"smoke": 50, "demo": 300, "cpu": 25_000, "paper": 10_000_000}


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


def _class_key(name: str) -> int:
    return zlib.crc32(name.encode())


def _plan(kind: str, classes: list[str], per_class: int, seed: int, out: str | Path, per_shard: int) -> list[ShardSpec]:
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes listed twice: {classes}")
    if per_class <= 0 or per_shard <= 0:
        raise ValueError(f"{kind} per class and {kind} per shard must be positive")
    specs = []
    for label, name in enumerate(classes):
        n_shards = -(-per_class // per_shard)
        for k in range(n_shards):
            n = min(per_shard, per_class - k * per_shard)
            specs.append(ShardSpec(name, label, k, n, pythia_seed(seed, _class_key(name), k),
                                   str(Path(out) / "shards" / f"{name}-{k:05d}.parquet"), kind, k * per_shard))
    return specs


def plan_jets(classes: list[str], jets_per_class: int, seed: int, out: str | Path,
              jets_per_shard: int = 1000) -> list[ShardSpec]:
    """The shards of a production, in a fixed order; seeds depend only on (seed, class, shard)."""
    for name in classes:
        get_recipe(name)  # unknown names fail here, before anything is written
    return _plan("jets", list(classes), jets_per_class, seed, out, jets_per_shard)


def plan_events(processes: list[str], events_per_process: int, seed: int, out: str | Path,
                events_per_shard: int = 1000, lhe: dict[str, str] | None = None) -> list[ShardSpec]:
    """The shards of an event production; LHE inputs are checked to hold enough events."""
    from hepfm.data.events import count_lhe_events

    for name in processes:
        get_event_process(name, lhe)
        if lhe and name in lhe and (n := count_lhe_events(lhe[name])) < events_per_process:
            raise DataError(f"{lhe[name]}: holds {n} events, fewer than the {events_per_process} asked for {name}")
    return _plan("events", list(processes), events_per_process, seed, out, events_per_shard)


def run_shard(spec: ShardSpec, detector: dict, class_names: list[str], options: dict | None = None,
              progress: bool = False) -> dict:
    """Generate and write one shard (a Dask task; also called in-process). Returns its stats.

    ``options`` of a jet production: ``settings`` (extra Pythia8 settings) and ``paired`` (see
    :func:`hepfm.data.jets.make_jets`); of an event production: ``lhe`` ({process: LHE file}), ``content`` and
    ``trigger_pt`` (see :func:`hepfm.data.events.make_events`).
    """
    options = options or {}
    bar = tqdm(total=spec.size, desc=f"{spec.class_name}[{spec.shard_index}]", leave=False, disable=not progress)
    det = DetectorConfig(**detector)
    if spec.kind == "jets":
        from hepfm.data.jets import make_jets

        array, stats = make_jets(get_recipe(spec.class_name), spec.size, label=spec.label, seed=spec.seed,
                                 detector=det, shard_index=spec.shard_index,
                                 extra_settings=tuple(options.get("settings", ())),
                                 paired=options.get("paired", False), progress=bar)
        extra = {}
    else:
        from hepfm.data.events import EVENT_SCHEMA, make_events

        settings = event_settings(get_event_process(spec.class_name, options.get("lhe")), spec.skip)
        array, stats = make_events(settings, spec.size, label=spec.label, seed=spec.seed, detector=det,
                                   content=options.get("content", "objects"),
                                   trigger_pt=options.get("trigger_pt", 0.0), progress=bar)
        extra = {"event_schema": EVENT_SCHEMA, "content": options.get("content", "objects")}
    bar.close()
    # Wall time stays out of the file so that equal seeds give byte-identical shards.
    attrs = {"class_names": class_names, "shard": _shard_attrs(spec), "detector": detector,
             "events": stats["events"], **extra}
    write_shard(array, spec.path, attrs)
    return {"path": spec.path, "size": len(array), **stats}


def _shard_attrs(spec: ShardSpec) -> dict:
    """The shard description stored in the file: the file name only, so a moved dataset stays valid."""
    d = {**asdict(spec), "path": Path(spec.path).name}
    d[f"n_{d.pop('kind')}"] = d.pop("size")
    if spec.kind == "jets":
        d.pop("skip")
    return d


def _shard_done(spec: ShardSpec) -> bool:
    path = Path(spec.path)
    if not path.exists():
        return False
    try:
        array, attrs = read_shard(path)
    except DataError:
        return False  # unreadable leftovers are regenerated; the rename makes this rare
    return attrs.get("shard") == _shard_attrs(spec) and len(array) == spec.size


def _production(classes, jets_per_shard, seed, detector_name, detector, options) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "jets",
        "class_names": list(classes),
        "recipes": {c: get_recipe(c).description for c in classes},
        "settings": {c: [*get_recipe(c).settings(), *options["settings"]] for c in classes},
        "paired": options["paired"],
        "seed": seed,
        "jets_per_shard": jets_per_shard,
        "detector_name": detector_name,
        "detector": detector,
    }


def _event_production(processes, events_per_shard, seed, detector_name, detector, options) -> dict:
    from hepfm.data.events import (
        EVENT_SCHEMA,
        OBJECT_FIELDS,
        OBJECT_TYPES,
        PARTICLE_FIELDS,
        TRUTH_LABELS,
        TRUTH_TARGETS,
    )

    procs = {p: get_event_process(p, options["lhe"]) for p in processes}
    content = {"content": options["content"], "trigger_pt": options["trigger_pt"]}
    if options["content"] == "objects":
        content.update(object_fields=list(OBJECT_FIELDS), object_types=list(OBJECT_TYPES),
                       truth_labels=list(TRUTH_LABELS), truth_targets=list(TRUTH_TARGETS))
    else:
        content.update(particle_fields=list(PARTICLE_FIELDS))
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "events",
        "event_schema": EVENT_SCHEMA,
        "class_names": list(processes),
        "processes": {p: procs[p].description for p in processes},
        "settings": {p: list(event_settings(procs[p])) for p in processes},
        **content,
        "seed": seed,
        "events_per_shard": events_per_shard,
        "detector_name": detector_name,
        "detector": detector,
    }


def _detector(detector: str | DetectorConfig) -> tuple[str, dict]:
    if isinstance(detector, str):
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; known: {', '.join(DETECTORS)}")
        return detector, DETECTORS[detector].to_dict()
    return "custom", detector.to_dict()


def _produce(out: Path, specs: list[ShardSpec], production: dict, det: dict, workers: int, scheduler: str | None,
             progress: bool, options: dict | None) -> tuple[dict, list[ShardSpec]]:
    """Write the manifest, run the unfinished shards, return (the completed manifest, shards run)."""
    existing = read_manifest(out) if out.exists() else {}
    if existing:
        old = {k: existing.get(k) for k in production}
        if old != production:
            diff = sorted(k for k in production if old.get(k) != production[k])
            raise DataError(f"{out / MANIFEST}: holds a production with other settings (fields {diff}); "
                            "choose another --out or delete it")
    atomic_write_json(out / MANIFEST, {**existing, **production, "complete": False})
    todo = [s for s in specs if not _shard_done(s)]
    stats = _run(todo, det, production["class_names"], workers, scheduler, progress, options) if todo else []
    classes = production["class_names"]
    counts = {c: sum(s.size for s in specs if s.class_name == c) for c in classes}
    kind = production["kind"]
    manifest = {**read_manifest(out), "complete": True, f"{kind}_per_class": counts,
                "shards": [Path(s.path).name for s in specs]}
    if stats:
        manifest["last_run"] = {"shards": len(stats), "generated_events": sum(s["events"] for s in stats),
                                kind: sum(s["size"] for s in stats),
                                "cpu_seconds": round(sum(s["seconds"] for s in stats), 2)}
    return manifest, todo


def generate_jets(
    classes: list[str],
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
    """Produce (or complete) a jet dataset in ``out``.

    Args:
        classes: recipe names (:data:`hepfm.data.processes.JET_RECIPES`); label = position in the list.
        jets_per_class: jets of each class.
        out: dataset directory; created if needed.
        seed: base seed; the same seed gives identical files.
        detector: ``"cms"``, ``"none"`` (particle level) or a :class:`DetectorConfig`.
        jets_per_shard: jets per shard file (the unit of parallelism and of resumption).
        settings: extra Pythia8 settings after every recipe's, e.g. a tune or shower variation
            (``["TimeShower:alphaSvalue = 0.118"]``); recorded with the production.
        paired: also store each jet's particle-level partner (``read_jets(path, level="particle")``), the
            pairs OmniFold unfolds with.
        workers: Dask worker processes on a ``LocalCluster``; 1 runs in this process.
        scheduler: address of an existing Dask scheduler (overrides ``workers``).
        progress: show a tqdm progress bar.

    Returns:
        The dataset directory.

    Raises:
        DataError: ``out`` holds a production with other settings (nothing there is touched).
    """
    out = Path(out)
    detector_name, det = _detector(detector)
    specs = plan_jets(list(classes), jets_per_class, seed, out, jets_per_shard)
    options = {"settings": [str(s) for s in settings], "paired": bool(paired)}
    production = _production(classes, jets_per_shard, seed, detector_name, det, options)
    manifest, todo = _produce(out, specs, production, det, workers, scheduler, progress, options)
    if "normalisation" not in manifest or todo:
        from hepfm.data.datasets import FeatureNormaliser
        from hepfm.data.storage import read_jet_shards

        # ~50k jets drawn from every shard, so every class shapes the normalisation
        per_shard = -(-50_000 // len(specs))
        manifest["normalisation"] = FeatureNormaliser.fit(read_jet_shards(out, max_jets_per_shard=per_shard)).to_dict()
    atomic_write_json(out / MANIFEST, manifest)
    return out


def generate_events(
    processes: list[str],
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
    """Produce (or complete) a whole-event dataset in ``out`` (see :mod:`hepfm.data.events`).

    Args:
        processes: names of :data:`hepfm.data.processes.EVENT_PROCESSES` or keys of ``lhe``; label =
            position in the list.
        events_per_process: events of each process.
        out: dataset directory; created if needed.
        seed: base seed; the same seed gives identical files.
        detector: ``"cms"``, ``"none"`` or a :class:`DetectorConfig`.
        events_per_shard: events per shard file.
        lhe: ``{process name: LHE file}`` for processes Pythia8 does not make itself (MadGraph ttW,
            ttZ, tW, tttt, tHq, ...); Pythia8 showers and hadronizes them, shard ``k`` reading
            events ``k * events_per_shard`` onwards.
        content: ``"objects"`` (reconstructed objects and truth) or ``"particles"`` (every particle-flow
            candidate, the layout of the LHC Olympics sets).
        trigger_pt: keep only events whose leading anti-kT R = 1.0 jet has pT above this (GeV), e.g.
            :data:`hepfm.data.processes.LHCO_TRIGGER_PT`; 0 keeps all.
        workers, scheduler, progress: as for :func:`generate_jets`.

    Returns:
        The dataset directory.
    """
    out = Path(out)
    from hepfm.data.events import CONTENTS

    if content not in CONTENTS:
        raise ValueError(f"unknown event content {content!r}; use one of {CONTENTS}")
    options = {"lhe": {k: str(Path(v).resolve()) for k, v in (lhe or {}).items()}, "content": content,
               "trigger_pt": float(trigger_pt)}
    detector_name, det = _detector(detector)
    specs = plan_events(list(processes), events_per_process, seed, out, events_per_shard, options["lhe"])
    production = _event_production(processes, events_per_shard, seed, detector_name, det, options)
    manifest, _ = _produce(out, specs, production, det, workers, scheduler, progress, options)
    atomic_write_json(out / MANIFEST, manifest)
    return out


def _run(todo: list[ShardSpec], det: dict, class_names: list[str], workers: int, scheduler: str | None,
         progress: bool, options: dict | None) -> list[dict]:
    total = sum(s.size for s in todo)
    unit = todo[0].kind[:-1]
    bar = tqdm(total=total, desc=todo[0].kind, unit=unit, disable=not progress)
    results = []
    if scheduler is None and workers <= 1:
        for spec in todo:
            results.append(run_shard(spec, det, class_names, options))
            bar.update(spec.size)
        bar.close()
        return results

    from distributed import as_completed

    try:
        with dask_client(workers, scheduler) as client:
            futures = [client.submit(run_shard, spec, det, class_names, options, pure=False) for spec in todo]
            sizes = {f.key: s.size for f, s in zip(futures, todo, strict=True)}
            for future in as_completed(futures):
                results.append(future.result())
                bar.update(sizes[future.key])
    finally:
        bar.close()
    return results


@contextmanager
def dask_client(workers: int, scheduler: str | None = None) -> Iterator:
    """A Dask client: of the cluster at ``scheduler``, or of a ``LocalCluster`` of ``workers`` single-threaded
    processes started here and closed on exit."""
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
