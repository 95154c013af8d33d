"""The data factory: plan shards, run them on Dask (or in-process), resume what was interrupted.

A production is a list of shards, each a fixed number of jets of one class with its own seed
derived from (base seed, class name, shard index). Shards are independent, so they run as Dask
tasks: on a ``LocalCluster`` by default, or on any existing cluster given its scheduler address
(e.g. one started by dask-jobqueue on an HPC batch system). Finished shards are never redone.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from hepfm.data.detector import DETECTORS, DetectorConfig
from hepfm.data.processes import get_recipe
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

__all__ = ["ShardSpec", "plan_jets", "generate_jets", "run_jet_shard", "PROFILES"]

#: Jets per class of the standard production sizes (the ``paper`` size runs on a Dask cluster).
PROFILES = {"smoke": 50, "demo": 300, "cpu": 25_000, "paper": 10_000_000}


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work: ``n_jets`` jets of class ``class_name`` written to ``path``."""

    class_name: str
    label: int
    shard_index: int
    n_jets: int
    seed: int
    path: str


def _class_key(name: str) -> int:
    return zlib.crc32(name.encode())


def plan_jets(classes: list[str], jets_per_class: int, seed: int, out: str | Path,
              jets_per_shard: int = 1000) -> list[ShardSpec]:
    """The shards of a production, in a fixed order; seeds depend only on (seed, class, shard)."""
    for name in classes:
        get_recipe(name)  # unknown names fail here, before anything is written
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes listed twice: {classes}")
    if jets_per_class <= 0 or jets_per_shard <= 0:
        raise ValueError("jets_per_class and jets_per_shard must be positive")
    specs = []
    for label, name in enumerate(classes):
        n_shards = -(-jets_per_class // jets_per_shard)
        for k in range(n_shards):
            n = min(jets_per_shard, jets_per_class - k * jets_per_shard)
            specs.append(ShardSpec(name, label, k, n, pythia_seed(seed, _class_key(name), k),
                                   str(Path(out) / "shards" / f"{name}-{k:05d}.parquet")))
    return specs


def run_jet_shard(spec: ShardSpec, detector: dict, class_names: list[str], progress: bool = False) -> dict:
    """Generate and write one shard (a Dask task; also called in-process). Returns its stats."""
    from hepfm.data.jets import make_jets

    bar = tqdm(total=spec.n_jets, desc=f"{spec.class_name}[{spec.shard_index}]", leave=False,
               disable=not progress)
    jets, stats = make_jets(get_recipe(spec.class_name), spec.n_jets, label=spec.label, seed=spec.seed,
                            detector=DetectorConfig(**detector), shard_index=spec.shard_index, progress=bar)
    bar.close()
    # Wall time stays out of the file so that equal seeds give byte-identical shards.
    attrs = {"class_names": class_names, "shard": _shard_attrs(spec), "detector": detector, "events": stats["events"]}
    write_shard(jets, spec.path, attrs)
    return {"path": spec.path, **stats}


def _shard_attrs(spec: ShardSpec) -> dict:
    """The shard description stored in the file: the file name only, so a moved dataset stays valid."""
    return {**asdict(spec), "path": Path(spec.path).name}


def _shard_done(spec: ShardSpec) -> bool:
    path = Path(spec.path)
    if not path.exists():
        return False
    try:
        array, attrs = read_shard(path)
    except DataError:
        return False  # unreadable leftovers are regenerated; the rename makes this rare
    return attrs.get("shard") == _shard_attrs(spec) and len(array) == spec.n_jets


def _production(classes, jets_per_shard, seed, detector_name, detector) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "jets",
        "class_names": list(classes),
        "recipes": {c: get_recipe(c).description for c in classes},
        "settings": {c: list(get_recipe(c).settings()) for c in classes},
        "seed": seed,
        "jets_per_shard": jets_per_shard,
        "detector_name": detector_name,
        "detector": detector,
    }


def generate_jets(
    classes: list[str],
    jets_per_class: int,
    out: str | Path,
    *,
    seed: int = 1,
    detector: str | DetectorConfig = "cms",
    jets_per_shard: int = 1000,
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
        workers: Dask worker processes on a ``LocalCluster``; 1 runs in this process.
        scheduler: address of an existing Dask scheduler (overrides ``workers``).
        progress: show a tqdm progress bar.

    Returns:
        The dataset directory.

    Raises:
        DataError: ``out`` holds a production with other settings (nothing there is touched).
    """
    out = Path(out)
    if isinstance(detector, str):
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; known: {', '.join(DETECTORS)}")
        detector_name, detector = detector, DETECTORS[detector]
    else:
        detector_name = "custom"
    det = detector.to_dict()
    specs = plan_jets(list(classes), jets_per_class, seed, out, jets_per_shard)
    production = _production(classes, jets_per_shard, seed, detector_name, det)
    existing = read_manifest(out) if out.exists() else {}
    if existing:
        old = {k: existing.get(k) for k in production}
        if old != production:
            diff = sorted(k for k in production if old.get(k) != production[k])
            raise DataError(f"{out / MANIFEST}: holds a production with other settings (fields {diff}); "
                            "choose another --out or delete it")
    atomic_write_json(out / MANIFEST, {**existing, **production, "complete": False})

    todo = [s for s in specs if not _shard_done(s)]
    stats = []
    if todo:
        stats = _run(todo, det, list(classes), workers, scheduler, progress)
    counts = {c: sum(s.n_jets for s in specs if s.class_name == c) for c in classes}
    manifest = {**read_manifest(out), "complete": True, "jets_per_class": counts,
                "shards": [Path(s.path).name for s in specs]}
    if stats:
        manifest["last_run"] = {"shards": len(stats), "events": sum(s["events"] for s in stats),
                                "jets": sum(s["jets"] for s in stats),
                                "cpu_seconds": round(sum(s["seconds"] for s in stats), 2)}
    if "normalisation" not in manifest or todo:
        from hepfm.data.datasets import FeatureNormaliser
        from hepfm.data.storage import read_jet_shards

        # ~50k jets drawn from every shard, so every class shapes the normalisation
        per_shard = -(-50_000 // len(specs))
        manifest["normalisation"] = FeatureNormaliser.fit(read_jet_shards(out, max_jets_per_shard=per_shard)).to_dict()
    atomic_write_json(out / MANIFEST, manifest)
    return out


def _run(todo: list[ShardSpec], det: dict, class_names: list[str], workers: int, scheduler: str | None,
         progress: bool) -> list[dict]:
    total = sum(s.n_jets for s in todo)
    bar = tqdm(total=total, desc="jets", unit="jet", disable=not progress)
    results = []
    if scheduler is None and workers <= 1:
        for spec in todo:
            results.append(run_jet_shard(spec, det, class_names, progress=False))
            bar.update(spec.n_jets)
        bar.close()
        return results

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(scheduler or cluster)
    try:
        futures = [client.submit(run_jet_shard, spec, det, class_names, pure=False) for spec in todo]
        sizes = {f.key: s.n_jets for f, s in zip(futures, todo, strict=True)}
        for future in as_completed(futures):
            results.append(future.result())
            bar.update(sizes[future.key])
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return results
