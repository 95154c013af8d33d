"""EnergyFlow quark/gluon jets (Komiske, Metodiev, Thaler, arXiv:1810.05165): ``.npz`` with ``X`` (pt, y, phi,
pid) and ``y``. Read with ``allow_pickle=False``: an object array is refused, never unpickled."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from hepfm.core.errors import DataError
from hepfm.core.physics import p4_from_pt_y_phi_m, pdg_charge, pdg_mass
from hepfm.data.formats.checks import check_finite, checked_labels, library_errors
from hepfm.data.sample import JetSample, build_jet_sample

__all__ = ["read", "detect", "ENERGYFLOW_CLASSES"]

#: EnergyFlow quark/gluon classes, indexed by the file's ``y`` (1 = quark).
ENERGYFLOW_CLASSES = ("gluon", "quark")


def detect(npz) -> bool:
    """Whether an open npz archive has EnergyFlow's arrays."""
    return {"X", "y"} <= set(npz.files)


def read(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    with library_errors(path, "arrays 'X' and 'y'"), open(path, "rb") as raw, np.load(raw) as npz:
        missing = [f for f in ("X", "y") if f not in npz.files]
        if missing:
            raise DataError(f"{path}: npz archive lacks arrays {missing} (EnergyFlow layout)")
        x, y = npz["X"][:max_jets], npz["y"][:max_jets]
    if x.ndim != 3 or x.shape[2] != 4:
        raise DataError(f"{path}: field 'X' has shape {x.shape}, expected (N, M, 4) = (pt, y, phi, pid)")
    if y.shape != x.shape[:1]:
        raise DataError(f"{path}: field 'y' has shape {y.shape}, expected ({len(x)},) to match 'X'")
    check_finite(path, "X", x)
    labels = checked_labels(path, "y", y, len(ENERGYFLOW_CLASSES))

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
        px,
        py,
        pz,
        energy,
        labels,
        list(ENERGYFLOW_CLASSES),
        charge=ak.unflatten(pdg_charge(pid), counts) if has_pid else None,
        pid=ak.unflatten(pid, counts) if has_pid else None,
        max_particles=max_particles,
        source=str(path),
    )
