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
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np

from hepfm.core.errors import DataError, MissingInputError
from hepfm.core.io import atomic_path, read_json_object
from hepfm.data.sample import EventSample, JetSample, build_jet_sample
from hepfm.data.schema import (
    EVENT_SCHEMA,
    JET_FIELDS,
    MANIFEST,
    MAX_PARTICLES,
    OBJECT_FIELDS,
    PARTICLE_FIELDS,
    SCHEMA_VERSION,
    TRUTH_LABELS,
    TRUTH_TARGETS,
)

__all__ = [
    "write_shard",
    "read_shard",
    "shard_paths",
    "read_manifest",
    "read_jet_shards",
    "read_jet_shard",
    "iter_jet_shards",
    "shard_to_sample",
    "read_event_shards",
    "events_to_sample",
]


def write_shard(array: ak.Array, path: str | Path, attrs: dict) -> None:
    """Write one shard atomically; ``attrs`` (JSON-serialisable) go into the parquet metadata."""
    meta = json.dumps({"schema_version": SCHEMA_VERSION, **attrs})
    with atomic_path(path) as tmp:
        ak.to_parquet(ak.Array(array, attrs={"hepfm": meta}), tmp, compression="zstd")


def read_shard(path: str | Path) -> tuple[ak.Array, dict]:
    """Read one shard and its attributes.

    Raises:
        MissingInputError: the file does not exist.
        DataError: the file is truncated or corrupt, not a hepfm shard, or of another schema version.
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such shard")
    try:
        array = ak.from_parquet(path)
    except Exception as err:
        raise DataError(f"{path}: cannot read parquet shard ({type(err).__name__}: {err})") from err
    raw = array.attrs.get("hepfm") if array.attrs else None
    if raw is None:
        raise DataError(f"{path}: parquet metadata field 'hepfm' missing: not a hepfm shard")
    try:
        attrs = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as err:
        raise DataError(f"{path}: parquet metadata field 'hepfm' is not valid JSON ({err})") from err
    if not isinstance(attrs, dict) or attrs.get("schema_version") != SCHEMA_VERSION:
        version = attrs.get("schema_version") if isinstance(attrs, dict) else None
        raise DataError(f"{path}: field 'schema_version' is {version}, this hepfm reads version {SCHEMA_VERSION}")
    if not isinstance(attrs.get("class_names"), list) or not attrs["class_names"]:
        raise DataError(f"{path}: parquet metadata field 'class_names' missing or empty")
    return array, attrs


def shard_class(path: str | Path) -> str | None:
    """The one class a factory shard holds (its ``shard.class_name``), read from the parquet footer alone; None
    for a shard that does not say (written by hand) or cannot be read (reading it in full says why)."""
    import pyarrow.parquet as pq

    try:
        raw = pq.read_schema(path).metadata[b"AWKWARD_ATTRS"]
        name = json.loads(json.loads(raw)["hepfm"])["shard"]["class_name"]
    except Exception:  # noqa: BLE001 -- only a hint for the order shards are streamed in
        return None
    return name if isinstance(name, str) else None


def read_manifest(path: str | Path) -> dict:
    """The ``dataset.json`` of a dataset directory ({} for a lone shard file or a directory without one).

    Raises:
        DataError: the manifest is unreadable, not valid JSON or not a JSON object.
    """
    path = Path(path)
    manifest = path / MANIFEST if path.is_dir() else path.parent.parent / MANIFEST
    if not manifest.exists():
        return {}
    return read_json_object(manifest)


def shard_paths(path: str | Path, allow_incomplete: bool = False) -> list[Path]:
    """The shard files of a dataset: those its ``dataset.json`` lists, sorted by name, i.e. class by class (or
    the single file ``path``).

    A directory without a manifest (shards written by hand) gives its ``*.parquet`` files, sorted by name.

    Raises:
        MissingInputError: ``path`` does not exist.
        DataError: the production is marked incomplete (unless ``allow_incomplete``), a listed shard is
            missing, or there are no shards.
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    manifest = read_manifest(path)
    if not manifest:
        shards = sorted((path / "shards").glob("*.parquet")) or sorted(path.glob("*.parquet"))
    else:
        listed = manifest.get("shards")
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise DataError(f"{path / MANIFEST}: field 'shards' missing or not a list of file names")
        shards = [path / "shards" / name for name in sorted(listed)]
        if manifest.get("complete") is not True:
            if not allow_incomplete:
                done = sum(s.exists() for s in shards)
                raise DataError(
                    f"{path / MANIFEST}: field 'complete' is {manifest.get('complete')!r}: the production "
                    f"is unfinished ({done} of {len(shards)} shards written); re-run its generate command "
                    "to finish it, or pass allow_incomplete=True (--allow-incomplete) to read those"
                )
            shards = [s for s in shards if s.exists()]
        missing = [s.name for s in shards if not s.exists()]
        if missing:
            raise DataError(f"{path / MANIFEST}: lists shard(s) {missing[:3]} that are missing from {path / 'shards'}")
    if not shards:
        raise DataError(f"{path}: no parquet shards found (expected {path}/shards/*.parquet)")
    return shards


def _check_finite_fields(array: ak.Array, fields, path: Path) -> None:
    """Every listed field of a shard holds finite numbers (NaN or inf is refused, naming the field)."""
    for name in fields:
        if name not in array.fields:
            continue
        values = array[name]
        flat = ak.to_numpy(ak.flatten(values, axis=None)) if values.ndim > 1 else ak.to_numpy(values)
        if flat.dtype.kind == "f":
            bad = ~np.isfinite(flat)
            if bad.any():
                raise DataError(f"{path}: field {name!r} holds {int(bad.sum())} NaN/inf values")


def _check_labels(array: ak.Array, class_names: list, path: Path) -> None:
    labels = ak.to_numpy(array.label)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DataError(
            f"{path}: field 'label' holds values outside [0, {len(class_names) - 1}] for classes "
            f"{class_names} (found {labels.min()} to {labels.max()})"
        )


def _check_jet_fields(array: ak.Array, path: Path) -> None:
    missing = [f for f in JET_FIELDS if f not in array.fields]
    if missing:
        raise DataError(f"{path}: missing field(s) {missing}; a jet shard has {list(JET_FIELDS)}")


def iter_jet_shards(path: str | Path, allow_incomplete: bool = False) -> Iterator[tuple[Path, ak.Array, dict]]:
    """Yield ``(shard path, jets, attrs)`` one shard at a time (for data larger than memory), each checked:
    every field present, finite, and labels within the class names."""
    for shard in shard_paths(path, allow_incomplete):
        yield shard, *read_jet_shard(shard)


def read_jet_shard(shard: Path) -> tuple[ak.Array, dict]:
    """One jet shard and its attributes, checked like :func:`iter_jet_shards` checks them."""
    array, attrs = read_shard(shard)
    _check_jet_fields(array, shard)
    _check_finite_fields(array, array.fields, shard)
    _check_labels(array, attrs["class_names"], shard)
    return array, attrs


#: Jet levels of a dataset: the detector-level jets, and for paired productions their particle-level partners.
LEVELS = {"detector": "", "particle": "gen_"}


def shard_to_sample(
    array: ak.Array, attrs: dict, *, max_particles: int, source: str, level: str = "detector"
) -> JetSample:
    """Features and padding for one shard's jets (see :func:`hepfm.data.sample.build_jet_sample`)."""
    if level not in LEVELS:
        raise ValueError(f"unknown jet level {level!r}; use one of {list(LEVELS)}")
    p = LEVELS[level]
    if f"{p}part_px" not in array.fields:
        raise DataError(
            f"{source}: no {level}-level jets (field '{p}part_px' missing); particle-level partners "
            "are stored by generate_jets(..., paired=True)"
        )
    return build_jet_sample(
        array[f"{p}part_px"],
        array[f"{p}part_py"],
        array[f"{p}part_pz"],
        array[f"{p}part_energy"],
        ak.to_numpy(array.label),
        attrs["class_names"],
        charge=array[f"{p}part_charge"],
        pid=array[f"{p}part_pid"],
        max_particles=max_particles,
        source=source,
    )


def read_jet_shards(
    path: str | Path,
    *,
    max_particles: int = MAX_PARTICLES,
    max_jets: int | None = None,
    max_jets_per_shard: int | None = None,
    level: str = "detector",
    allow_incomplete: bool = False,
) -> JetSample:
    """Read a hepfm jet dataset (directory or one shard) into a :class:`JetSample`.

    All shards must agree on the class names. ``max_jets`` stops reading once that many jets
    are in (shards are read in name order, i.e. class by class); ``max_jets_per_shard`` takes the
    first jets of every shard instead, a subset that covers every class. ``level="particle"`` reads the
    particle-level partners of a paired production, in the same order. An unfinished production is
    refused unless ``allow_incomplete`` (see :func:`shard_paths`).
    """
    array, class_names = _gather(iter_jet_shards(path, allow_incomplete), max_jets, max_jets_per_shard)
    return shard_to_sample(
        array, {"class_names": class_names}, max_particles=max_particles, source=str(path), level=level
    )


def _gather(
    shards: Iterator[tuple[Path, ak.Array, dict]], limit: int | None, per_shard: int | None
) -> tuple[ak.Array, list[str]]:
    """Concatenate shards (all with the same class names): the first ``per_shard`` records of each, and
    at most ``limit`` records in all (reading stops once that many are in)."""
    arrays: list[ak.Array] = []
    class_names: list[str] | None = None
    first, n = None, 0
    for shard, array, attrs in shards:
        if class_names is None:
            class_names, first = attrs["class_names"], shard
        elif attrs["class_names"] != class_names:
            raise DataError(
                f"{shard}: field 'class_names' {attrs['class_names']} differs from {class_names} in {first}"
            )
        arrays.append(array if per_shard is None else array[:per_shard])
        n += len(arrays[-1])
        if limit is not None and n >= limit:
            break
    if class_names is None:
        raise DataError("no shards to read")
    array = ak.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return (array if limit is None else array[:limit]), class_names


def _pad(jagged: ak.Array, width: int) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(ak.pad_none(jagged, width, clip=True), 0)).astype(np.float32)


def events_to_sample(
    array: ak.Array, class_names: list[str], *, max_particles: int | None = None, source: str = ""
) -> EventSample:
    """Padded objects (or particles), labels and truth of event records (the layouts of :mod:`hepfm.data.schema`).

    Raises:
        DataError: a field holds NaN or inf, or a label lies outside ``class_names`` (naming ``source`` and the field).
    """
    fields = set(array.fields)
    _check_finite_fields(array, array.fields, Path(source))
    if "label" in fields:
        _check_labels(array, list(class_names), Path(source))
    columns = OBJECT_FIELDS if OBJECT_FIELDS[0] in fields else PARTICLE_FIELDS
    counts = ak.to_numpy(ak.num(array[columns[0]], axis=1))
    width = int(counts.max()) if len(counts) else 1
    width = max(1, min(width, max_particles) if max_particles else width)
    objects = np.stack([_pad(array[f], width) for f in columns], axis=-1)
    mask = np.arange(width)[None, :] < counts[:, None]
    truth = (
        np.stack([ak.to_numpy(array[f"truth_{n}"]) for n in TRUTH_LABELS], -1).astype(np.float32)
        if f"truth_{TRUTH_LABELS[0]}" in fields
        else None
    )
    targets = (
        np.stack([ak.to_numpy(array[f"target_{n}"]) for n in TRUTH_TARGETS], -1).astype(np.float32)
        if f"target_{TRUTH_TARGETS[0]}" in fields
        else None
    )
    return EventSample(
        objects,
        mask,
        ak.to_numpy(array.label).astype(np.int64),
        list(class_names),
        source,
        particle_features=tuple(f.split("_", 1)[1] for f in columns),
        truth=truth,
        truth_names=TRUTH_LABELS if truth is not None else (),
        targets=targets,
        target_names=TRUTH_TARGETS if targets is not None else (),
        weights=ak.to_numpy(array.weight).astype(np.float64) if "weight" in fields else None,
    )


def read_event_shards(
    path: str | Path,
    *,
    max_particles: int | None = None,
    max_events: int | None = None,
    max_events_per_shard: int | None = None,
    allow_incomplete: bool = False,
) -> EventSample:
    """Read a hepfm event dataset (directory or one shard) into an :class:`EventSample`.

    ``max_particles`` caps the objects (particles) per event; ``max_events_per_shard`` takes the first events of
    every shard (a subset covering every process). Every field of every shard must be finite and the labels
    within the class names; an unfinished production is refused unless ``allow_incomplete``.
    """

    def checked():
        for shard in shard_paths(path, allow_incomplete):
            array, attrs = read_shard(shard)
            version = attrs.get("event_schema")
            if version is not None and version != EVENT_SCHEMA:
                raise DataError(
                    f"{shard}: field 'event_schema' is {version!r}, this hepfm reads version {EVENT_SCHEMA}"
                )
            columns = PARTICLE_FIELDS if attrs.get("content") == "particles" else OBJECT_FIELDS
            missing = [f for f in ("label", *columns) if f not in array.fields]
            if missing:
                raise DataError(
                    f"{shard}: missing field(s) {missing}; an event shard has "
                    f"{['label', *columns]} (is this a jet dataset? use read_jets)"
                )
            if version is None:
                raise DataError(f"{shard}: parquet metadata field 'event_schema' missing: not a hepfm event shard")
            _check_finite_fields(array, array.fields, shard)
            _check_labels(array, attrs["class_names"], shard)
            yield shard, array, attrs

    array, class_names = _gather(checked(), max_events, max_events_per_shard)
    return events_to_sample(array, class_names, max_particles=max_particles, source=str(path))
