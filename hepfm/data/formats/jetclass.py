"""JetClass (Qu, Li, Qian, arXiv:2202.03772): ROOT tree ``tree`` with jagged ``part_*`` and ``label_*``."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hepfm.core.errors import DataError
from hepfm.data.formats.checks import check_finite, library_errors
from hepfm.data.sample import JetSample, build_jet_sample, pid_from_flags
from hepfm.data.schema import JETCLASS_CLASSES

__all__ = ["read", "detect"]

_JETCLASS_P4 = ("part_px", "part_py", "part_pz", "part_energy")
_JETCLASS_PID = (
    "part_charge",
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
)


def detect(file) -> bool:
    """Whether an open uproot file has JetClass's layout."""
    return "tree" in file and "part_px" in file["tree"].keys()


def read(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    label_fields = [f"label_{name}" for name in JETCLASS_CLASSES]
    with library_errors(path, "tree 'tree'"), uproot.open(path) as file:
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
        check_finite(path, name, values)

    onehot = np.stack([ak.to_numpy(arrays[f]).astype(np.float64) for f in label_fields], axis=1)  # (N, 10)
    for name, column in zip(label_fields, onehot.T, strict=True):
        check_finite(path, name, column)
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
    px, py, pz, energy = (arrays[f] for f in _JETCLASS_P4)
    return build_jet_sample(
        px,
        py,
        pz,
        energy,
        onehot.argmax(axis=1),
        list(JETCLASS_CLASSES),
        charge=charge,
        pid=pid,
        max_particles=max_particles,
        source=str(path),
    )
