"""The LHC Olympics 2020 R&D events (Kasieczka et al., arXiv:2101.08320): a pandas HDF5 frame ``df`` of
700 hadrons (pt, eta, phi) per event and the label, read with h5py
(:mod:`hepfm.data.formats.pandas_hdf5`): no pickle in the file is ever loaded."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from hepfm.core.errors import DataError
from hepfm.data.formats.checks import check_finite, checked_labels, library_errors
from hepfm.data.formats.pandas_hdf5 import PandasFrame
from hepfm.data.formats.toptagging import frame_key
from hepfm.data.sample import EventSample

__all__ = ["read", "detect", "LHCO_CLASSES"]

#: LHC Olympics R&D classes, indexed by the frame's last column.
LHCO_CLASSES = ("background", "signal")
# Rows per read: ~56 MB of float64 for the 2101 columns.
CHUNK_ROWS = 5_000


def detect(frame: PandasFrame) -> bool:
    """Whether a pandas frame is LHCO's ``df``."""
    return frame.key == "/df"


def read(path: Path, *, max_particles: int, max_events: int | None) -> EventSample:
    with library_errors(path, "pandas key 'df'"), h5py.File(path, "r") as file:
        frame = PandasFrame(file, frame_key(file, "df", path), path)
        n_columns = len(frame.columns)
        if n_columns % 3 != 1:
            raise DataError(
                f"{path}: pandas key {frame.key!r} has {n_columns} columns, expected 3k + 1 = k particles x "
                "(pt, eta, phi) then the label"
            )
        frame.check_numeric(frame.columns)
        n_stored = (n_columns - 1) // 3
        n_events = frame.nrows if max_events is None else min(frame.nrows, max_events)
        # Filled chunk by chunk, so the full 1.1M-event file never exists twice in memory.
        particles = np.zeros((n_events, max_particles, 4), dtype=np.float32)
        mask = np.zeros((n_events, max_particles), dtype=bool)
        labels = np.zeros(n_events, dtype=np.float64)
        for start in range(0, n_events, CHUNK_ROWS):
            values = frame.read(frame.columns, start, min(start + CHUNK_ROWS, n_events))  # (n, 3k + 1)
            stop = start + len(values)
            check_finite(path, "particles (pt, eta, phi)", values[:, :-1])
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
    labels = checked_labels(path, "label (last column)", labels, len(LHCO_CLASSES))
    return EventSample(particles, mask, labels, list(LHCO_CLASSES), str(path))
