"""Readers for the public jet and event datasets, each returning hepfm's in-memory samples.

One entry point per kind of sample: :func:`read_jets` returns a :class:`~hepfm.data.sample.JetSample`
and :func:`read_events` an :class:`~hepfm.data.sample.EventSample`, whatever the file format. The format
is detected from the file's content (and its extension) or named explicitly; each has one small module:

==============  ==========================================================================================
format          dataset and layout
==============  ==========================================================================================
``jetclass``    JetClass (Qu, Li, Qian, arXiv:2202.03772): ROOT tree ``tree`` with jagged ``part_*``
``toptagging``  top-tagging reference set (Kasieczka et al., arXiv:1902.09914): pandas HDF5 ``table``
``energyflow``  EnergyFlow quark/gluon jets (Komiske, Metodiev, Thaler, arXiv:1810.05165): ``.npz``
``jetnet``      JetNet (Kansal et al., arXiv:2106.11535): HDF5 ``particle_features``, ``jet_features``
``pfnano``      CMS PFNano: NanoAOD plus ``PFCands`` linked to ``FatJet``/``Jet`` (:mod:`.pfnano`)
``hepfm``       hepfm's own parquet shards, a directory or a ``.parquet`` file (:mod:`hepfm.data.storage`)
``lhco``        LHC Olympics 2020 R&D events (Kasieczka et al., arXiv:2101.08320): pandas HDF5 ``df``
``nanoaod``     CMS NanoAOD: ROOT tree ``Events``, read with coffea (:mod:`.nanoaod`), events only
``delphes``     Delphes ROOT output: tree ``Delphes``, read with coffea's ``DelphesSchema``, events only
==============  ==========================================================================================

Every jet reader only turns its layout into jagged constituent four-momenta (plus charge and particle id
where the format has them) and hands them to :func:`~hepfm.data.sample.build_jet_sample`. No reader runs
code from a file: pandas HDF5 is read with h5py (:mod:`.pandas_hdf5`), npz with ``allow_pickle=False``.
Bad input raises :class:`~hepfm.core.errors.DataError` (:class:`~hepfm.core.errors.MissingInputError` for a
path that does not exist) naming the file and field. A new format is a module with ``read`` (and a probe
for :func:`detect_format`), registered in ``_JET_READERS`` or ``_EVENT_READERS`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import uproot

from hepfm.core.errors import DataError
from hepfm.data import storage
from hepfm.data.formats import energyflow, jetclass, jetnet, lhco, pfnano, toptagging
from hepfm.data.formats.checks import check_limits, existing, library_errors
from hepfm.data.formats.energyflow import ENERGYFLOW_CLASSES
from hepfm.data.formats.jetnet import JETNET_CLASSES
from hepfm.data.formats.lhco import LHCO_CLASSES
from hepfm.data.formats.pandas_hdf5 import PandasFrame, pandas_keys
from hepfm.data.formats.toptagging import TOPTAGGING_CLASSES
from hepfm.data.sample import EventSample, JetSample
from hepfm.data.schema import MAX_EVENT_PARTICLES, MAX_PARTICLES

__all__ = [
    "JET_FORMATS",
    "EVENT_FORMATS",
    "ENERGYFLOW_CLASSES",
    "JETNET_CLASSES",
    "LHCO_CLASSES",
    "TOPTAGGING_CLASSES",
    "detect_format",
    "read_jets",
    "read_events",
]

# Containers by their first bytes, and by extension for files whose first bytes are damaged.
_MAGIC = {b"root": "root", b"PK": "npz", b"\x89HDF\r\n\x1a\n": "hdf5", b"PAR1": "parquet"}
_SUFFIXES = {
    ".root": "root",
    ".npz": "npz",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".parquet": "parquet",
}


def _read_nanoaod(path: Path, *, max_particles: int, max_events: int | None) -> EventSample:
    from hepfm.data.formats.nanoaod import read_nanoaod  # coffea: imported only when needed

    return read_nanoaod(path, max_objects=max_particles, max_events=max_events)


def _read_delphes(path: Path, *, max_particles: int, max_events: int | None) -> EventSample:
    from hepfm.data.formats.nanoaod import read_delphes

    return read_delphes(path, max_objects=max_particles, max_events=max_events)


_JET_READERS: dict[str, Callable[..., JetSample]] = {
    "jetclass": jetclass.read,
    "toptagging": toptagging.read,
    "energyflow": energyflow.read,
    "jetnet": jetnet.read,
    "pfnano": pfnano.read,
    "hepfm": storage.read_jet_shards,
}
_EVENT_READERS: dict[str, Callable[..., EventSample]] = {
    "lhco": lhco.read,
    "hepfm": storage.read_event_shards,
    "nanoaod": _read_nanoaod,
    "pfnano": _read_nanoaod,
    "delphes": _read_delphes,
}
#: Names accepted by ``read_jets(format=...)``.
JET_FORMATS = tuple(_JET_READERS)
#: Names accepted by ``read_events(format=...)``.
EVENT_FORMATS = tuple(_EVENT_READERS)


def read_jets(
    path: str | Path,
    format: str | None = None,
    *,
    max_particles: int = MAX_PARTICLES,
    max_jets: int | None = None,
    level: str = "detector",
    allow_incomplete: bool = False,
    **options,
) -> JetSample:
    """Read jets from any supported format (see the module docstring).

    Args:
        path: file, or for ``hepfm`` a directory of shards.
        format: one of :data:`JET_FORMATS`; None (default) detects it from the file's content.
        max_particles: P, the padded constituent length; the hardest P constituents are kept, while the
            jet four-momentum still sums all of them.
        max_jets: read only the first ``max_jets`` jets of the file; None (default) reads all.
        level: ``"detector"``, or ``"particle"`` for the particle-level partners of a paired hepfm
            production (``generate_jets(..., paired=True)``), in the same order.
        allow_incomplete: read a hepfm production whose ``dataset.json`` says it is unfinished (the shards
            written so far); refused otherwise.
        options: format-specific options (:func:`hepfm.data.formats.pfnano.read` takes the jet collection,
            selection and labelling).

    Returns:
        A :class:`JetSample` with particles (N, P, F), mask (N, P), jets (N, J) and labels (N,).

    Raises:
        MissingInputError: ``path`` does not exist.
        DataError: unknown or undetectable format, or a file that does not hold what its format promises.
        OptionError: a non-positive ``max_particles`` or ``max_jets``.
    """
    check_limits(max_particles, max_jets, "max_jets")
    path = existing(path)
    fmt = _resolve_format(path, format, _JET_READERS, "jet")
    if fmt == "hepfm":
        options = {**options, "level": level, "allow_incomplete": allow_incomplete}
    elif level != "detector":
        raise DataError(
            f"{path}: the {fmt} format holds one level of jets; level={level!r} needs a paired hepfm dataset"
        )
    elif options and fmt != "pfnano":
        raise DataError(f"{path}: the {fmt} format takes no options {sorted(options)}")
    return _JET_READERS[fmt](path, max_particles=max_particles, max_jets=max_jets, **options)


def read_events(
    path: str | Path,
    format: str | None = None,
    *,
    max_particles: int = MAX_EVENT_PARTICLES,
    max_events: int | None = None,
    allow_incomplete: bool = False,
) -> EventSample:
    """Read whole events: hepfm event datasets, CMS NanoAOD (and PFNano), Delphes, or the LHC Olympics R&D set.

    Args:
        path: the file, or for ``hepfm`` a directory of shards.
        format: one of :data:`EVENT_FORMATS`; None (default) detects it from the file's content.
        max_particles: P, the padded length; the hardest P particles (or objects) are kept. Defaults to 700,
            all that LHCO stores; object formats pad to their largest object count below it.
        max_events: read only the first ``max_events`` events; None (default) reads all.
        allow_incomplete: read an unfinished hepfm production (see :func:`read_jets`).

    Returns:
        An :class:`EventSample`: for ``lhco`` and particle-level ``hepfm`` datasets (``content="particles"``)
        particles (N, P, 4) = (pt, eta, phi, energy); for other ``hepfm`` datasets and ``nanoaod`` objects
        (N, P, 7) = (pt, eta, phi, energy, btag, charge, type), with generator truth
        where the data have it. Sorted by pt, with mask (N, P) and labels (N,).

    Raises:
        MissingInputError: ``path`` does not exist.
        DataError: unknown or undetectable format, or a file that does not hold what its format promises.
        OptionError: a non-positive ``max_particles`` or ``max_events``.
    """
    check_limits(max_particles, max_events, "max_events")
    path = existing(path)
    fmt = _resolve_format(path, format, _EVENT_READERS, "event")
    options = {"allow_incomplete": allow_incomplete} if fmt == "hepfm" else {}
    return _EVENT_READERS[fmt](path, max_particles=max_particles, max_events=max_events, **options)


def detect_format(path: str | Path) -> str:
    """The format of a file or directory, from its first bytes and, failing those, its extension.

    Args:
        path: file or directory.

    Returns:
        One of :data:`JET_FORMATS` or :data:`EVENT_FORMATS`.

    Raises:
        MissingInputError: ``path`` does not exist.
        DataError: the content matches no known format.
    """
    path = existing(path)
    if path.is_dir():
        return "hepfm"
    try:
        with open(path, "rb") as file:
            magic = file.read(8)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    container = next((kind for start, kind in _MAGIC.items() if magic.startswith(start)), None)
    container = container or _SUFFIXES.get(path.suffix.lower())
    if container is None:
        raise DataError(f"{path}: cannot detect the format (not ROOT, HDF5, npz or parquet); pass format=")
    if container == "parquet":
        return "hepfm"
    return {"root": _detect_root, "npz": _detect_npz, "hdf5": _detect_hdf5}[container](path)


def _detect_root(path: Path) -> str:
    with library_errors(path, "the ROOT file"), uproot.open(path) as file:
        if jetclass.detect(file):
            return "jetclass"
        if pfnano.detect(file):
            return "pfnano"
        if "Events" in file and "Jet_pt" in file["Events"].keys():
            return "nanoaod"
        if "Delphes" in file:
            return "delphes"
    raise DataError(
        f"{path}: cannot detect the format: a ROOT file with neither tree 'tree' and field 'part_px' "
        "(jetclass), tree 'Events' and field 'Jet_pt' (nanoaod, pfnano), nor tree 'Delphes' (delphes)"
    )


def _detect_npz(path: Path) -> str:
    # np.load is handed an open file because on a corrupt archive it leaks the one it opens itself.
    with library_errors(path, "the npz archive"), open(path, "rb") as raw, np.load(raw) as npz:
        if energyflow.detect(npz):
            return "energyflow"
    raise DataError(f"{path}: cannot detect the format: an npz archive without arrays 'X' and 'y'")


def _detect_hdf5(path: Path) -> str:
    with library_errors(path, "the HDF5 file"), h5py.File(path, "r") as file:
        if jetnet.detect(file):
            return "jetnet"
        for key in pandas_keys(file):
            frame = PandasFrame(file, key, path)
            if toptagging.detect(frame):
                return "toptagging"
            if lhco.detect(frame):
                return "lhco"
    raise DataError(
        f"{path}: cannot detect the format: an HDF5 file with neither datasets 'particle_features'/"
        "'jet_features' (jetnet), nor a pandas key with columns 'E_0', 'PX_0', 'is_signal_new' "
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
