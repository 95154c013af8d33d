"""Sharded, versioned, atomically written storage for generated data.

A dataset is a directory::

    DIR/dataset.json          production settings, class names, schema version, normalisation
    DIR/shards/NAME-00000.parquet   one shard: awkward records written with pyarrow (zstd)

Every file is written to a temporary name in the same directory and renamed into place, so a
reader never sees half a file and a killed job leaves only complete shards behind: re-running the
same job skips them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import awkward as ak
import numpy as np

from hepfm.data.sample import DataError, EventSample, JetSample, build_jet_sample

__all__ = [
    "SCHEMA_VERSION",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "write_shard",
    "read_shard",
    "shard_paths",
    "read_manifest",
    "read_jet_shards",
    "iter_jet_shards",
    "shard_to_sample",
    "read_event_shards",
    "events_to_sample",
]

#: Version of the on-disk layout; bumped whenever fields change meaning.
SCHEMA_VERSION = 1
MANIFEST = "dataset.json"
_JET_FIELDS = ("label", "part_px", "part_py", "part_pz", "part_energy", "part_charge", "part_pid")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files private


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is synced and renamed onto ``path``.

    On any error the temporary file is removed and ``path`` keeps what it held before.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_shard(array: ak.Array, path: str | Path, attrs: dict) -> None:
    """Write one shard atomically; ``attrs`` (JSON-serialisable) go into the parquet metadata."""
    meta = json.dumps({"schema_version": SCHEMA_VERSION, **attrs})
    with atomic_path(path) as tmp:
        ak.to_parquet(ak.Array(array, attrs={"hepfm": meta}), tmp, compression="zstd")


def read_shard(path: str | Path) -> tuple[ak.Array, dict]:
    """Read one shard and its attributes.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file is truncated or corrupt, not a hepfm shard, or of another schema version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such shard")
    try:
        array = ak.from_parquet(path)
    except Exception as err:
        raise DataError(f"{path}: cannot read parquet shard ({type(err).__name__}: {err})") from err
    raw = array.attrs.get("hepfm") if array.attrs else None
    if raw is None:
        raise DataError(f"{path}: parquet metadata field 'hepfm' missing: not a hepfm shard")
    attrs = json.loads(raw)
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path}: field 'schema_version' is {attrs.get('schema_version')}, "
                        f"this hepfm reads version {SCHEMA_VERSION}")
    return array, attrs


def shard_paths(path: str | Path) -> list[Path]:
    """The shard files of a dataset directory (or the single file ``path``), sorted by name."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    shards = sorted((path / "shards").glob("*.parquet")) or sorted(path.glob("*.parquet"))
    if not shards:
        raise DataError(f"{path}: no parquet shards found (expected {path}/shards/*.parquet)")
    return shards


def read_manifest(path: str | Path) -> dict:
    """The ``dataset.json`` of a dataset directory ({} for a lone shard file)."""
    path = Path(path)
    manifest = path / MANIFEST if path.is_dir() else path.parent.parent / MANIFEST
    if not manifest.exists():
        return {}
    try:
        return json.loads(manifest.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{manifest}: not valid JSON ({err})") from err


def _check_jet_fields(array: ak.Array, path: Path) -> None:
    missing = [f for f in _JET_FIELDS if f not in array.fields]
    if missing:
        raise DataError(f"{path}: missing field(s) {missing}; a jet shard has {list(_JET_FIELDS)}")


def iter_jet_shards(path: str | Path) -> Iterator[tuple[Path, ak.Array, dict]]:
    """Yield ``(shard path, jets, attrs)`` one shard at a time (for data larger than memory)."""
    for shard in shard_paths(path):
        array, attrs = read_shard(shard)
        _check_jet_fields(array, shard)
        yield shard, array, attrs


#: Jet levels of a dataset: the detector-level jets, and for paired productions their particle-level partners.
LEVELS = {"detector": "", "particle": "gen_"}


def shard_to_sample(array: ak.Array, attrs: dict, *, max_particles: int, source: str,
                    level: str = "detector") -> JetSample:
    """Features and padding for one shard's jets (see :func:`hepfm.data.sample.build_jet_sample`)."""
    if level not in LEVELS:
        raise ValueError(f"unknown jet level {level!r}; use one of {list(LEVELS)}")
    p = LEVELS[level]
    if f"{p}part_px" not in array.fields:
        raise DataError(f"{source}: no {level}-level jets (field '{p}part_px' missing); particle-level partners "
                        "are stored by generate_jets(..., paired=True)")
    return build_jet_sample(
        array[f"{p}part_px"], array[f"{p}part_py"], array[f"{p}part_pz"], array[f"{p}part_energy"],
        ak.to_numpy(array.label), attrs["class_names"],
        charge=array[f"{p}part_charge"], pid=array[f"{p}part_pid"], max_particles=max_particles, source=source,
    )


def read_jet_shards(path: str | Path, *, max_particles: int = 128, max_jets: int | None = None,
                    max_jets_per_shard: int | None = None, level: str = "detector") -> JetSample:
    """Read a hepfm jet dataset (directory or one shard) into a :class:`JetSample`.

    All shards must agree on the class names. ``max_jets`` stops reading once that many jets
    are in (shards are read in name order, i.e. class by class); ``max_jets_per_shard`` takes the
    first jets of every shard instead, a subset that covers every class. ``level="particle"`` reads the
    particle-level partners of a paired production, in the same order.
    """
    array, class_names = _gather(iter_jet_shards(path), max_jets, max_jets_per_shard)
    return shard_to_sample(array, {"class_names": class_names}, max_particles=max_particles, source=str(path),
                           level=level)


def _gather(shards: Iterator[tuple[Path, ak.Array, dict]], limit: int | None,
            per_shard: int | None) -> tuple[ak.Array, list[str]]:
    """Concatenate shards (all with the same class names): the first ``per_shard`` records of each, and
    at most ``limit`` records in all (reading stops once that many are in)."""
    arrays, class_names, first, n = [], None, None, 0
    for shard, array, attrs in shards:
        if class_names is None:
            class_names, first = attrs["class_names"], shard
        elif attrs["class_names"] != class_names:
            raise DataError(f"{shard}: field 'class_names' {attrs['class_names']} differs from "
                            f"{class_names} in {first}")
        arrays.append(array if per_shard is None else array[:per_shard])
        n += len(arrays[-1])
        if limit is not None and n >= limit:
            break
    array = ak.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return (array if limit is None else array[:limit]), class_names


def _pad(jagged: ak.Array, width: int) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(ak.pad_none(jagged, width, clip=True), 0)).astype(np.float32)


def events_to_sample(array: ak.Array, class_names: list[str], *, max_objects: int | None = None,
                     source: str = "") -> EventSample:
    """Padded objects (or particles), labels and truth of event records (the layouts of :mod:`hepfm.data.events`)."""
    from hepfm.data.events import OBJECT_FIELDS, PARTICLE_FIELDS, TRUTH_LABELS, TRUTH_TARGETS

    fields = set(array.fields)
    columns = OBJECT_FIELDS if OBJECT_FIELDS[0] in fields else PARTICLE_FIELDS
    counts = ak.to_numpy(ak.num(array[columns[0]], axis=1))
    width = int(counts.max()) if len(counts) else 1
    width = max(1, min(width, max_objects) if max_objects else width)
    objects = np.stack([_pad(array[f], width) for f in columns], axis=-1)
    mask = np.arange(width)[None, :] < counts[:, None]
    truth = np.stack([ak.to_numpy(array[f"truth_{n}"]) for n in TRUTH_LABELS], -1).astype(np.float32) \
        if f"truth_{TRUTH_LABELS[0]}" in fields else None
    targets = np.stack([ak.to_numpy(array[f"target_{n}"]) for n in TRUTH_TARGETS], -1).astype(np.float32) \
        if f"target_{TRUTH_TARGETS[0]}" in fields else None
    return EventSample(
        objects, mask, ak.to_numpy(array.label).astype(np.int64), list(class_names), source,
        particle_features=tuple(f.split("_", 1)[1] for f in columns), truth=truth,
        truth_names=TRUTH_LABELS if truth is not None else (), targets=targets,
        target_names=TRUTH_TARGETS if targets is not None else (),
        weights=ak.to_numpy(array.weight).astype(np.float64) if "weight" in fields else None,
    )


def read_event_shards(path: str | Path, *, max_objects: int | None = None, max_events: int | None = None,
                      max_events_per_shard: int | None = None) -> EventSample:
    """Read a hepfm event dataset (directory or one shard) into an :class:`EventSample`.

    ``max_events_per_shard`` takes the first events of every shard (a subset covering every process).
    """
    from hepfm.data.events import OBJECT_FIELDS, PARTICLE_FIELDS

    def checked():
        for shard in shard_paths(path):
            array, attrs = read_shard(shard)
            columns = PARTICLE_FIELDS if attrs.get("content") == "particles" else OBJECT_FIELDS
            missing = [f for f in ("label", *columns) if f not in array.fields]
            if missing:
                raise DataError(f"{shard}: missing field(s) {missing}; an event shard has "
                                f"{['label', *columns]} (is this a jet dataset? use read_jets)")
            yield shard, array, attrs

    array, class_names = _gather(checked(), max_events, max_events_per_shard)
    return events_to_sample(array, class_names, max_objects=max_objects, source=str(path))
