"""The top-tagging reference set (Kasieczka et al., arXiv:1902.09914): a pandas HDF5 frame ``table`` with
200 constituent slots ``E_i, PX_i, PY_i, PZ_i`` and the label ``is_signal_new``, read with h5py
(:mod:`hepfm.data.formats.pandas_hdf5`): no pickle in the file is ever loaded."""

from __future__ import annotations

import itertools
from pathlib import Path

import awkward as ak
import h5py
import numpy as np

from hepfm.core.errors import DataError
from hepfm.data.formats.checks import check_finite, checked_labels, library_errors
from hepfm.data.formats.pandas_hdf5 import PandasFrame, pandas_keys
from hepfm.data.sample import JetSample, build_jet_sample

__all__ = ["read", "detect", "TOPTAGGING_CLASSES", "frame_key"]

#: Top-tagging classes, indexed by the file's ``is_signal_new``.
TOPTAGGING_CLASSES = ("QCD", "top")
_P4 = ("PX", "PY", "PZ", "E")
_LABEL = "is_signal_new"
# Rows per read: at most ~85 MB of float64 for this layout, so a 1M-row file costs little beyond its result.
CHUNK_ROWS = 5_000


def detect(frame: PandasFrame) -> bool:
    """Whether a pandas frame has the top-tagging columns."""
    return {"E_0", "PX_0", _LABEL} <= set(frame.columns)


def frame_key(file: h5py.File, preferred: str, path: Path) -> str:
    """``/preferred`` if the file has that frame, else its first frame (files renamed by hand keep one)."""
    keys = pandas_keys(file)
    if f"/{preferred}" in keys:
        return f"/{preferred}"
    if not keys:
        raise DataError(f"{path}: no pandas frame in the HDF5 file (expected key {preferred!r})")
    return keys[0]


def read(path: Path, *, max_particles: int, max_jets: int | None) -> JetSample:
    flats: dict[str, list[np.ndarray]] = {c: [] for c in _P4}
    count_chunks: list[np.ndarray] = []
    label_chunks: list[np.ndarray] = []
    with library_errors(path, "the pandas table"), h5py.File(path, "r") as file:
        frame = PandasFrame(file, frame_key(file, "table", path), path)
        columns = set(frame.columns)
        n_max = 0  # constituent slots, 200 in the real files
        while f"E_{n_max}" in columns:
            n_max += 1
        wanted = {c: [f"{c}_{i}" for i in range(max(n_max, 1))] for c in _P4}
        missing = [f for f in (*itertools.chain(*wanted.values()), _LABEL) if f not in columns]
        if missing:
            raise DataError(f"{path}: pandas key {frame.key!r} lacks columns {missing[:8]} (top-tagging layout)")
        names = [*itertools.chain(*wanted.values()), _LABEL]
        frame.check_numeric(names)
        stop = frame.nrows if max_jets is None else min(frame.nrows, max_jets)
        for start in range(0, max(stop, 1), CHUNK_ROWS):
            values = frame.read(names, start, min(start + CHUNK_ROWS, stop))
            # Keep only the real constituents of each chunk: the file pads every jet to n_max.
            p4 = {c: values[:, k * n_max : (k + 1) * n_max] for k, c in enumerate(_P4)}  # (n, n_max) each
            for c, block in p4.items():
                check_finite(path, f"{c}_*", block)
            real = p4["E"] > 0
            for c, block in p4.items():
                flats[c].append(block[real])
            count_chunks.append(real.sum(axis=1))
            label_chunks.append(values[:, -1])

    counts = np.concatenate(count_chunks)
    px, py, pz, energy = (ak.unflatten(np.concatenate(flats[c]), counts) for c in _P4)
    labels = checked_labels(path, _LABEL, np.concatenate(label_chunks), len(TOPTAGGING_CLASSES))
    return build_jet_sample(
        px, py, pz, energy, labels, list(TOPTAGGING_CLASSES), max_particles=max_particles, source=str(path)
    )
