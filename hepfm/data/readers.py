"""Readers for the public jet and event datasets, each returning hepfm's in-memory samples.

One entry point per kind of sample: :func:`read_jets` returns a :class:`~hepfm.data.sample.JetSample`
and :func:`read_events` an :class:`~hepfm.data.sample.EventSample`, whatever the file format. The format
is detected from the file's content (and its extension) or named explicitly:

==============  ==========================================================================================
format          dataset and layout
==============  ==========================================================================================
``jetclass``    JetClass (Qu, Li, Qian, arXiv:2202.03772): ROOT tree ``tree`` with jagged ``part_*``
``toptagging``  top-tagging reference set (Kasieczka et al., arXiv:1902.09914): pandas HDF5 ``table``
``energyflow``  EnergyFlow quark/gluon jets (Komiske, Metodiev, Thaler, arXiv:1810.05165): ``.npz``
``jetnet``      JetNet (Kansal et al., arXiv:2106.11535): HDF5 ``particle_features``, ``jet_features``
``hepfm``       hepfm's own parquet shards, a directory or a ``.parquet`` file (:mod:`hepfm.data.storage`)
``lhco``        LHC Olympics 2020 R&D events (Kasieczka et al., arXiv:2101.08320): pandas HDF5 ``df``
``nanoaod``     CMS NanoAOD: ROOT tree ``Events``, read with coffea (:mod:`hepfm.data.nanoaod`), events only
``delphes``     Delphes ROOT output: tree ``Delphes``, read with coffea's ``DelphesSchema``, events only
==============  ==========================================================================================

Every jet reader only turns its layout into jagged constituent four-momenta (plus charge and particle id
where the format has them) and hands them to :func:`~hepfm.data.sample.build_jet_sample`. Bad input
raises :class:`~hepfm.data.sample.DataError` (or :class:`FileNotFoundError`) naming the file and field.
"""

from __future__ import annotations

import itertools
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import uproot

from hepfm.data.processes import JETCLASS_CLASSES
from hepfm.data.sample import DataError, EventSample, JetSample, build_jet_sample, pid_from_flags
from hepfm.physics import p4_from_pt_eta_phi_m, p4_from_pt_y_phi_m, pdg_charge, pdg_mass

__all__ = [
    "JET_FORMATS",
    "EVENT_FORMATS",
    "TOPTAGGING_CLASSES",
    "ENERGYFLOW_CLASSES",
    "JETNET_CLASSES",
    "LHCO_CLASSES",
    "detect_format",
    "read_jets",
    "read_events",
]

#: Top-tagging classes, indexed by the file's ``is_signal_new``.
TOPTAGGING_CLASSES = ("QCD", "top")
#: EnergyFlow quark/gluon classes, indexed by the file's ``y`` (1 = quark).
ENERGYFLOW_CLASSES = ("gluon", "quark")
#: JetNet jet types in the order of ``jetnet.datasets.JetNet.jet_types``.
JETNET_CLASSES = ("g", "q", "t", "w", "z")
#: LHC Olympics R&D classes, indexed by the frame's last column.
LHCO_CLASSES = ("background", "signal")

_JETCLASS_P4 = ("part_px", "part_py", "part_pz", "part_energy")
_JETCLASS_PID = (
    "part_charge", "part_isChargedHadron", "part_isNeutralHadron", "part_isPhoton", "part_isElectron",
    "part_isMuon",
)
_TOPTAGGING_P4 = ("PX", "PY", "PZ", "E")
_TOPTAGGING_LABEL = "is_signal_new"
# JetNet's Zenodo files are one jet type each (g.hdf5, t150.hdf5, ...) and carry no type column.
_JETNET_FILE_NAME = re.compile(r"^([gqtwz])(?:150)?$")
# Rows per pandas read: at most ~85 MB of float64 for these layouts, so reading a 1M-row file costs
# little memory beyond its result.
_CHUNK_ROWS = 5_000
# Containers by their first bytes, and by extension for files whose first bytes are damaged.
_MAGIC = {b"root": "root", b"PK": "npz", b"\x89HDF\r\n\x1a\n": "hdf5", b"PAR1": "parquet"}
_SUFFIXES = {
    ".root": "root", ".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".parquet": "parquet",
}
# What h5py, PyTables, uproot and numpy raise on truncated or corrupt files; turned into DataError.
_LIBRARY_ERRORS = (
    OSError, ValueError, KeyError, IndexError, EOFError, RuntimeError, TypeError, zipfile.BadZipFile,
    zlib.error, uproot.deserialization.DeserializationError,
)


def read_jets(
    path: str | Path, format: str | None = None, *, max_particles: int = 128, max_jets: int | None = None,
    level: str = "detector",
) -> JetSample:
    """Read jets from any supported public format (see the module docstring).

    Args:
        path: file, or for ``hepfm`` a directory of shards.
        format: one of :data:`JET_FORMATS`; None (default) detects it from the file's content.
        max_particles: P, the padded constituent length; the hardest P constituents are kept, while the
            jet four-momentum still sums all of them.
        max_jets: read only the first ``max_jets`` jets of the file; None (default) reads all.
        level: ``"detector"``, or ``"particle"`` for the particle-level partners of a paired hepfm
            production (``generate_jets(..., paired=True)``), in the same order.

    Returns:
        A :class:`JetSample` with particles (N, P, F), mask (N, P), jets (N, J) and labels (N,).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: unknown or undetectable format, or a file that does not hold what its format promises.
    """
    path = _existing(path)
    fmt = _resolve_format(path, format, _JET_READERS, "jet")
    if level != "detector":
        if fmt != "hepfm":
            raise DataError(f"{path}: the {fmt} format holds one level of jets; level={level!r} needs a paired "
                            "hepfm dataset")
        from hepfm.data.storage import read_jet_shards

        return read_jet_shards(path, max_particles=max_particles, max_jets=max_jets, level=level)
    return _JET_READERS[fmt](path, max_particles=max_particles, max_jets=max_jets)


def read_events(
    path: str | Path, format: str | None = None, *, max_particles: int = 700, max_events: int | None = None
) -> EventSample:
    """Read whole events: hepfm event datasets, CMS NanoAOD, or the LHC Olympics R&D set.

    Args:
        path: the file, or for ``hepfm`` a directory of shards.
        format: one of :data:`EVENT_FORMATS`; None (default) detects it from the file's content.
        max_particles: P, the padded length; the hardest P particles (or objects) are kept. Defaults to 700,
            all that LHCO stores; object formats pad to their largest object count below it.
        max_events: read only the first ``max_events`` events; None (default) reads all.

    Returns:
        An :class:`EventSample`: for ``lhco`` and particle-level ``hepfm`` datasets (``content="particles"``)
        particles (N, P, 4) = (pt, eta, phi, energy); for other ``hepfm`` datasets and ``nanoaod`` objects
        (N, P, 7) = (pt, eta, phi, energy, btag, charge, type), with generator truth
        where the data have it. Sorted by pt, with mask (N, P) and labels (N,).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: unknown or undetectable format, or a file that does not hold what its format promises.
    """
    path = _existing(path)
    fmt = _resolve_format(path, format, _EVENT_READERS, "event")
    return _EVENT_READERS[fmt](path, max_particles=max_particles, max_events=max_events)


def detect_format(path: str | Path) -> str:
    """The format of a file or directory, from its first bytes and, failing those, its extension.

    Args:
        path: file or directory.

    Returns:
        One of :data:`JET_FORMATS` or :data:`EVENT_FORMATS`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: the content matches no known format.
    """
    path = _existing(path)
    if path.is_dir():
        return "hepfm"
    with open(path, "rb") as file:
        magic = file.read(8)
    container = next((kind for start, kind in _MAGIC.items() if magic.startswith(start)), None)
    container = container or _SUFFIXES.get(path.suffix.lower())
    if container is None:
        raise DataError(f"{path}: cannot detect the format (not ROOT, HDF5, npz or parquet); pass format=")
    if container == "parquet":
        return "hepfm"
    return {"root": _detect_root, "npz": _detect_npz, "hdf5": _detect_hdf5}[container](path)


# ---------------------------------------------------------------------------------------------- detection


def _detect_root(path: Path) -> str:
    with _library_errors(path, "the ROOT file"), uproot.open(path) as file:
        if "tree" in file and "part_px" in file["tree"].keys():
            return "jetclass"
        if "Events" in file and "Jet_pt" in file["Events"].keys():
            return "nanoaod"
        if "Delphes" in file:
            return "delphes"
    raise DataError(f"{path}: cannot detect the format: a ROOT file with neither tree 'tree' and field 'part_px' "
                    "(jetclass), tree 'Events' and field 'Jet_pt' (nanoaod), nor tree 'Delphes' (delphes)")


def _detect_npz(path: Path) -> str:
    # np.load is handed an open file because on a corrupt archive it leaks the one it opens itself.
    with _library_errors(path, "the npz archive"), open(path, "rb") as raw, np.load(raw) as npz:
        if {"X", "y"} <= set(npz.files):
            return "energyflow"
    raise DataError(f"{path}: cannot detect the format: an npz archive without arrays 'X' and 'y'")


def _detect_hdf5(path: Path) -> str:
    with _library_errors(path, "the HDF5 file"):
        with h5py.File(path, "r") as file:
            if "particle_features" in file and "jet_features" in file:
                return "jetnet"
        with pd.HDFStore(path, "r") as store:
            for key in _pandas_keys(store):
                columns = _pandas_columns(store, key, path)
                if {"E_0", "PX_0", _TOPTAGGING_LABEL} <= set(columns):
                    return "toptagging"
                if key == "/df":
                    return "lhco"
    raise DataError(
        f"{path}: cannot detect the format: an HDF5 file with neither datasets 'particle_features'/"
        f"'jet_features' (jetnet), nor a pandas key with columns 'E_0', 'PX_0', '{_TOPTAGGING_LABEL}' "
        "(toptagging), nor a pandas key 'df' (lhco)"
    )


def _resolve_format(path: Path, name: str | None, readers: dict[str, Callable], kind: str) -> str:
    known = ", ".join(readers)
    if name is None:
        name = detect_format(path)
        if name not in readers:
            raise DataError(f"{path}: holds format {name!r}, which is not among the {kind} formats ({known})")
    elif name not in readers:
        raise DataError(f"{path}: unknown {kind} format {name!r}; known {kind} formats: {known}")
    return name


# ------------------------------------------------------------------------------------------- jet formats


def _read_jetclass(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    label_fields = [f"label_{name}" for name in JETCLASS_CLASSES]
    with _library_errors(path, "tree 'tree'"), uproot.open(path) as file:
        if "tree" not in file:
            raise DataError(f"{path}: no tree 'tree' (JetClass layout)")
        tree = file["tree"]
        names = set(tree.keys())
        missing = [f for f in (*_JETCLASS_P4, *label_fields) if f not in names]
        if missing:
            raise DataError(f"{path}: tree 'tree' lacks fields {missing}")
        # The full JetClass files carry charge and PID flags; preprocessed copies keep only four-momenta.
        pid_fields = _JETCLASS_PID if all(f in names for f in _JETCLASS_PID) else ()
        arrays = tree.arrays([*_JETCLASS_P4, *label_fields, *pid_fields], entry_stop=max_jets)

    counts = ak.to_numpy(ak.num(arrays["part_px"], axis=1))
    for name in (*_JETCLASS_P4[1:], *pid_fields):
        if not np.array_equal(ak.to_numpy(ak.num(arrays[name], axis=1)), counts):
            raise DataError(f"{path}: field {name!r} has other per-jet lengths than 'part_px'")
    flat = {name: ak.to_numpy(ak.flatten(arrays[name])).astype(np.float64) for name in pid_fields}
    for name, values in flat.items():
        _check_finite(path, name, values)

    onehot = np.stack([ak.to_numpy(arrays[f]).astype(np.float64) for f in label_fields], axis=1)  # (N, 10)
    for name, column in zip(label_fields, onehot.T, strict=True):
        _check_finite(path, name, column)
        if not np.isin(column, (0.0, 1.0)).all():
            raise DataError(f"{path}: field {name!r} holds values other than 0/1")
    n_set = onehot.sum(axis=1)
    bad = np.flatnonzero(n_set != 1)
    if len(bad):
        raise DataError(
            f"{path}: fields label_*: jet {bad[0]} has {int(n_set[bad[0]])} labels set, expected exactly one "
            f"({len(bad)} such jets)"
        )

    charge = pid = None
    if pid_fields:
        charge = ak.unflatten(flat["part_charge"], counts)
        pid = ak.unflatten(pid_from_flags(*(flat[f] for f in _JETCLASS_PID)), counts)
    return build_jet_sample(
        *(arrays[f] for f in _JETCLASS_P4), onehot.argmax(axis=1), list(JETCLASS_CLASSES),
        charge=charge, pid=pid, max_particles=max_particles, source=str(path),
    )


def _read_toptagging(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    flats: dict[str, list[np.ndarray]] = {c: [] for c in _TOPTAGGING_P4}
    counts, labels = [], []
    with _library_errors(path, "the pandas table"), pd.HDFStore(path, "r") as store:
        key = _pandas_key(store, "table", path)
        columns = set(_pandas_columns(store, key, path))
        n_max = 0  # constituent slots, 200 in the real files
        while f"E_{n_max}" in columns:
            n_max += 1
        wanted = {c: [f"{c}_{i}" for i in range(max(n_max, 1))] for c in _TOPTAGGING_P4}
        missing = [f for f in (*itertools.chain(*wanted.values()), _TOPTAGGING_LABEL) if f not in columns]
        if missing:
            raise DataError(f"{path}: pandas key {key!r} lacks columns {missing[:8]} (top-tagging layout)")
        for frame in _pandas_chunks(store, key, max_jets):
            # Keep only the real constituents of each chunk: the file pads every jet to n_max.
            p4 = {c: frame[names].to_numpy(np.float64) for c, names in wanted.items()}  # (n, n_max) each
            for c, values in p4.items():
                _check_finite(path, f"{c}_*", values)
            real = p4["E"] > 0
            for c, values in p4.items():
                flats[c].append(values[real])
            counts.append(real.sum(axis=1))
            labels.append(frame[_TOPTAGGING_LABEL].to_numpy(np.float64))

    counts = np.concatenate(counts)
    px, py, pz, energy = (ak.unflatten(np.concatenate(flats[c]), counts) for c in _TOPTAGGING_P4)
    labels = _labels(path, _TOPTAGGING_LABEL, np.concatenate(labels), len(TOPTAGGING_CLASSES))
    return build_jet_sample(
        px, py, pz, energy, labels, list(TOPTAGGING_CLASSES), max_particles=max_particles, source=str(path)
    )


def _read_energyflow(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    with _library_errors(path, "arrays 'X' and 'y'"), open(path, "rb") as raw, np.load(raw) as npz:
        missing = [f for f in ("X", "y") if f not in npz.files]
        if missing:
            raise DataError(f"{path}: npz archive lacks arrays {missing} (EnergyFlow layout)")
        x, y = npz["X"][:max_jets], npz["y"][:max_jets]
    if x.ndim != 3 or x.shape[2] != 4:
        raise DataError(f"{path}: field 'X' has shape {x.shape}, expected (N, M, 4) = (pt, y, phi, pid)")
    if y.shape != x.shape[:1]:
        raise DataError(f"{path}: field 'y' has shape {y.shape}, expected ({len(x)},) to match 'X'")
    _check_finite(path, "X", x)
    labels = _labels(path, "y", y, len(ENERGYFLOW_CLASSES))

    real = x[..., 0] > 0  # (N, M): zero-padded
    pt, rap, phi, pid = (x[..., i][real] for i in range(4))
    counts = real.sum(axis=1)
    # Many EnergyFlow copies dropped the PID column to zeros; then there is no PID to offer.
    has_pid = bool((pid != 0).any())
    if has_pid and (pid != np.round(pid)).any():
        raise DataError(f"{path}: field 'X[..., 3]' (pid) holds non-integer PDG ids")
    pid = pid.astype(np.int64)
    p4 = p4_from_pt_y_phi_m(pt, rap, phi, pdg_mass(pid))
    px, py, pz, energy = (ak.unflatten(v, counts) for v in p4)
    return build_jet_sample(
        px, py, pz, energy, labels, list(ENERGYFLOW_CLASSES),
        charge=ak.unflatten(pdg_charge(pid), counts) if has_pid else None,
        pid=ak.unflatten(pid, counts) if has_pid else None,
        max_particles=max_particles, source=str(path),
    )


def _read_jetnet(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    with _library_errors(path, "datasets 'particle_features' and 'jet_features'"), h5py.File(path, "r") as f:
        missing = [name for name in ("particle_features", "jet_features") if name not in f]
        if missing:
            raise DataError(f"{path}: HDF5 file lacks datasets {missing} (JetNet layout)")
        particles = np.asarray(f["particle_features"][:max_jets], dtype=np.float64)  # (N, 30 or 150, 4)
        jets = np.asarray(f["jet_features"][:max_jets], dtype=np.float64)  # (N, 4) or (N, 5)
    if particles.ndim != 3 or particles.shape[2] != 4:
        raise DataError(
            f"{path}: field 'particle_features' has shape {particles.shape}, "
            "expected (N, M, 4) = (etarel, phirel, ptrel, mask)"
        )
    if jets.ndim != 2 or jets.shape[1] not in (4, 5) or len(jets) != len(particles):
        raise DataError(
            f"{path}: field 'jet_features' has shape {jets.shape}, expected ({len(particles)}, 4) = "
            f"(pt, eta, mass, num_particles) or ({len(particles)}, 5) with the jet type first"
        )
    _check_finite(path, "particle_features", particles)
    _check_finite(path, "jet_features", jets)
    if jets.shape[1] == 5:
        # The layout of jetnet.datasets.JetNet.getData: the type index prepended to the Zenodo columns.
        labels = _labels(path, "jet_features[:, 0] (type)", jets[:, 0], len(JETNET_CLASSES))
        jets = jets[:, 1:]
    else:
        match = _JETNET_FILE_NAME.match(path.stem)
        if match is None:
            raise DataError(
                f"{path}: field 'jet_features' has no type column and the file name is not JetNet's "
                f"<type>[150].hdf5 with type in {JETNET_CLASSES}, so the jet type is unknown"
            )
        labels = np.full(len(jets), JETNET_CLASSES.index(match.group(1)), dtype=np.int64)

    real = particles[..., 3] > 0.5  # (N, M)
    counts = real.sum(axis=1)
    jet_index = np.repeat(np.arange(len(jets)), counts)
    etarel, phirel, ptrel = (particles[..., i][real] for i in range(3))
    # JetNet stores no jet phi; 0 is as good as any, the features are relative to the jet axis anyway.
    p4 = p4_from_pt_eta_phi_m(ptrel * jets[jet_index, 0], etarel + jets[jet_index, 1], phirel)
    px, py, pz, energy = (ak.unflatten(v, counts) for v in p4)
    return build_jet_sample(
        px, py, pz, energy, labels, list(JETNET_CLASSES), max_particles=max_particles, source=str(path)
    )


def _read_hepfm(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    # Imported on use so that storage.py, which may itself use these readers, is no import-time dependency.
    from hepfm.data.storage import read_jet_shards

    return read_jet_shards(path, max_particles=max_particles, max_jets=max_jets)


# ----------------------------------------------------------------------------------------- event formats


def _read_lhco(path: Path, *, max_particles: int, max_events: int | None) -> EventSample:
    with _library_errors(path, "pandas key 'df'"), pd.HDFStore(path, "r") as store:
        key = _pandas_key(store, "df", path)
        n_columns = len(_pandas_columns(store, key, path))
        if n_columns % 3 != 1:
            raise DataError(
                f"{path}: pandas key {key!r} has {n_columns} columns, expected 3k + 1 = k particles x "
                "(pt, eta, phi) then the label"
            )
        n_stored = (n_columns - 1) // 3
        n_events = _pandas_nrows(store, key)
        n_events = n_events if max_events is None else min(n_events, max_events)
        # Filled chunk by chunk, so the full 1.1M-event file never exists twice in memory.
        particles = np.zeros((n_events, max_particles, 4), dtype=np.float32)
        mask = np.zeros((n_events, max_particles), dtype=bool)
        labels = np.zeros(n_events, dtype=np.float64)
        start = 0
        for frame in _pandas_chunks(store, key, n_events):
            values = frame.to_numpy(np.float64)  # (n, 3k + 1)
            stop = start + len(values)
            _check_finite(path, "particles (pt, eta, phi)", values[:, :-1])
            labels[start:stop] = values[:, -1]
            triplets = values[:, :-1].reshape(len(values), n_stored, 3)  # (n, k, 3)
            if (triplets[..., 0] < 0).any():
                raise DataError(f"{path}: field 'pt' (every third column) holds negative values")
            order = np.argsort(-triplets[..., 0], axis=1, kind="stable")[:, :max_particles]
            triplets = np.take_along_axis(triplets, order[..., None], axis=1)  # (n, min(k, P), 3)
            pt, eta, phi = triplets[..., 0], triplets[..., 1], triplets[..., 2]
            real = pt > 0
            kept = triplets.shape[1]
            features = np.stack([pt, eta, phi, pt * np.cosh(eta)], axis=-1)  # (n, kept, 4)
            particles[start:stop, :kept] = features * real[..., None]
            mask[start:stop, :kept] = real
            start = stop
    labels = _labels(path, "label (last column)", labels, len(LHCO_CLASSES))
    return EventSample(particles, mask, labels, list(LHCO_CLASSES), str(path))


_JET_READERS: dict[str, Callable[..., JetSample]] = {
    "jetclass": _read_jetclass,
    "toptagging": _read_toptagging,
    "energyflow": _read_energyflow,
    "jetnet": _read_jetnet,
    "hepfm": _read_hepfm,
}
def _read_hepfm_events(path: Path, *, max_particles: int, max_events: int | None) -> EventSample:
    from hepfm.data.storage import read_event_shards

    return read_event_shards(path, max_objects=max_particles, max_events=max_events)


def _read_nanoaod(path: Path, *, max_particles: int, max_events: int | None) -> EventSample:
    from hepfm.data.nanoaod import read_nanoaod

    return read_nanoaod(path, max_objects=max_particles, max_events=max_events)


def _read_delphes(path: Path, *, max_particles: int, max_events: int | None) -> EventSample:
    from hepfm.data.nanoaod import read_delphes

    return read_delphes(path, max_objects=max_particles, max_events=max_events)


_EVENT_READERS: dict[str, Callable[..., EventSample]] = {
    "lhco": _read_lhco,
    "hepfm": _read_hepfm_events,
    "nanoaod": _read_nanoaod,
    "delphes": _read_delphes,
}
#: Names accepted by ``read_jets(format=...)``.
JET_FORMATS = tuple(_JET_READERS)
#: Names accepted by ``read_events(format=...)``.
EVENT_FORMATS = tuple(_EVENT_READERS)


# ----------------------------------------------------------------------------------------------- helpers


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return path


@contextmanager
def _library_errors(path: Path, what: str) -> Iterator[None]:
    """Re-raise a reading library's exception on a truncated or corrupt file as a DataError naming both."""
    try:
        yield
    except DataError:
        raise
    except _LIBRARY_ERRORS as err:
        # uproot's messages span several lines and PyTables' carry the whole HDF5 back trace.
        detail = " ".join(str(err).split())[:200]
        raise DataError(f"{path}: cannot read {what}: {type(err).__name__}: {detail}") from err


def _check_finite(path: Path, name: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{path}: field {name!r} holds {int(bad.sum())} NaN/inf values")


def _labels(path: Path, name: str, values: np.ndarray, n_classes: int) -> np.ndarray:
    """Stored labels as int64 after checking they are finite integers in ``[0, n_classes)``."""
    values = np.asarray(values, dtype=np.float64)
    _check_finite(path, name, values)
    if (values != np.round(values)).any():
        raise DataError(f"{path}: field {name!r} holds non-integer labels")
    if len(values) and (values.min() < 0 or values.max() >= n_classes):
        raise DataError(
            f"{path}: field {name!r} holds labels outside [0, {n_classes - 1}] "
            f"(found {values.min():g} to {values.max():g})"
        )
    return values.astype(np.int64)


def _pandas_key(store: pd.HDFStore, preferred: str, path: Path) -> str:
    """``preferred`` if the store has it, else its first key (files renamed by hand keep one frame)."""
    keys = _pandas_keys(store)
    if f"/{preferred}" in keys:
        return f"/{preferred}"
    if not keys:
        raise DataError(f"{path}: no pandas frame in the HDF5 file (expected key {preferred!r})")
    return keys[0]


def _pandas_keys(store: pd.HDFStore) -> list[str]:
    # pandas lists the root "/" as a frame when a child group is named "table" (it looks for a `table`
    # attribute), which is exactly the top-tagging layout.
    return [key for key in store.keys() if key != "/"]


def _pandas_columns(store: pd.HDFStore, key: str, path: Path) -> list:
    frame = store.select(key, start=0, stop=0)  # reads no rows, only the column names
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: pandas key {key!r} holds a {type(frame).__name__}, not a DataFrame")
    return frame.columns.tolist()


def _pandas_nrows(store: pd.HDFStore, key: str) -> int:
    storer = store.get_storer(key)
    # pandas reports a table-format frame's length as ``shape`` = nrows, a fixed frame's as (nrows, ncols).
    return int(storer.shape) if storer.is_table else int(storer.shape[0])


def _pandas_chunks(store: pd.HDFStore, key: str, stop: int | None) -> Iterator[pd.DataFrame]:
    """Rows ``[0, stop)`` (all if None) of a pandas frame, in chunks; at least one, possibly empty."""
    start = 0
    while True:
        end = start + _CHUNK_ROWS if stop is None else min(start + _CHUNK_ROWS, stop)
        frame = store.select(key, start=start, stop=end)
        yield frame
        if len(frame) < end - start or end == stop:
            return
        start = end
