"""JetNet (Kansal et al., arXiv:2106.11535): HDF5 datasets ``particle_features`` and ``jet_features``."""

from __future__ import annotations

import re
from pathlib import Path

import awkward as ak
import h5py
import numpy as np

from hepfm.core.errors import DataError
from hepfm.core.physics import p4_from_pt_eta_phi_m
from hepfm.data.formats.checks import check_finite, checked_labels, library_errors
from hepfm.data.sample import JetSample, build_jet_sample

__all__ = ["read", "detect", "JETNET_CLASSES"]

#: JetNet jet types in the order of ``jetnet.datasets.JetNet.jet_types``.
JETNET_CLASSES = ("g", "q", "t", "w", "z")
# JetNet's Zenodo files are one jet type each (g.hdf5, t150.hdf5, ...) and carry no type column.
_JETNET_FILE_NAME = re.compile(r"^([gqtwz])(?:150)?$")


def detect(file: h5py.File) -> bool:
    """Whether an open HDF5 file has JetNet's datasets."""
    return "particle_features" in file and "jet_features" in file


def read(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    with library_errors(path, "datasets 'particle_features' and 'jet_features'"), h5py.File(path, "r") as f:
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
    check_finite(path, "particle_features", particles)
    check_finite(path, "jet_features", jets)
    if jets.shape[1] == 5:
        # The layout of jetnet.datasets.JetNet.getData: the type index prepended to the Zenodo columns.
        labels = checked_labels(path, "jet_features[:, 0] (type)", jets[:, 0], len(JETNET_CLASSES))
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
