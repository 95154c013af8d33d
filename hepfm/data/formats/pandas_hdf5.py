"""pandas HDF5 frames read with h5py alone, so that no pickle in the file is ever loaded.

pandas (through PyTables) stores a frame's column names as pickles in HDF5 attributes
(``values_block_0_kind``, ``non_index_axes``) and object columns as pickled rows; reading such a file with
``pandas.read_hdf`` unpickles them, and a pickle can run any code. :class:`PandasFrame` reads the two
layouts pandas writes — ``format="table"`` (a compound ``table`` dataset with ``values_block_*`` fields)
and ``format="fixed"`` (``axis0`` labels, ``block*_items`` and ``block*_values`` arrays) — with h5py:

* column names come from the ``*_kind`` attributes through :func:`string_list_pickle`, which walks the
  pickle's opcodes (``pickletools``) without executing any and accepts only a list of strings or numbers;
* numeric blocks are read as arrays; an object block (pickled rows, a ``VLARRAY`` of objects) is refused
  with a :class:`~hepfm.core.errors.DataError` naming the file and its columns, before any row is read.
"""

from __future__ import annotations

import pickletools
from pathlib import Path

import h5py
import numpy as np

from hepfm.core.errors import DataError

__all__ = ["PandasFrame", "pandas_keys", "string_list_pickle"]

# Opcodes that push a string or a number, and the opcodes that only build a list (or tuple) of them: a pickled
# list of column names uses nothing else, while any object would need GLOBAL, REDUCE, BUILD, INST, OBJ, ...
_VALUE_OPCODES = {
    "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING",
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
}  # fmt: skip
_SAFE_OPCODES = _VALUE_OPCODES | {
    "PROTO", "FRAME", "STOP", "MARK", "LIST", "EMPTY_LIST", "APPEND", "APPENDS", "TUPLE", "EMPTY_TUPLE", "TUPLE1",
    "TUPLE2", "TUPLE3", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET", "NONE",
}  # fmt: skip


def string_list_pickle(data: bytes, where: str) -> list:
    """The flat list of strings or numbers a pickle holds, read from its opcodes without unpickling.

    pandas pickles column lists as ``[name, ...]`` (or, in ``non_index_axes``, ``[(axis, [name, ...])]``):
    the values are collected in order. Any opcode that could build another object is refused.

    >>> import pickle
    >>> string_list_pickle(pickle.dumps(["E_0", "PX_0"], 0), "attr")
    ['E_0', 'PX_0']
    >>> string_list_pickle(pickle.dumps(print, 0), "attr")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hepfm.core.errors.DataError: attr: holds a pickled object (opcode GLOBAL), ...
    """
    values: list = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name not in _SAFE_OPCODES:
                raise DataError(
                    f"{where}: holds a pickled object (opcode {opcode.name}), not a list of column "
                    "names; refused unread"
                )
            if opcode.name in _VALUE_OPCODES:
                values.append(arg.decode() if isinstance(arg, bytes) else arg)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any malformed pickle is bad input
        raise DataError(f"{where}: not a pickled list of column names ({type(err).__name__}: {err})") from err
    return values


def pandas_keys(file: h5py.File) -> list[str]:
    """Keys (``/name``) of the pandas frames in an open HDF5 file, in file order."""
    keys = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and _attr(obj, "pandas_type") in ("frame", "frame_table"):
            keys.append(f"/{name}")

    file.visititems(visit)
    return keys


def _attr(obj, name: str) -> str | None:
    value = obj.attrs.get(name)
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode(errors="replace")
    return None if value is None else str(value)


class PandasFrame:
    """One pandas frame of an open HDF5 file: its column names, row count, and numeric columns by name.

    Args:
        file: the open ``h5py.File``.
        key: the frame's key, e.g. ``"/table"``.
        path: the file's path, for messages.

    Raises:
        DataError: ``key`` is not a pandas frame, its column names are not plain strings or numbers, or
            the layout is not one pandas writes.
    """

    def __init__(self, file: h5py.File, key: str, path: Path):
        # registers the Blosc and other filters PyTables writes with; imported where a frame is read, so that
        # commands that never read one do not load its 46 MB of compression libraries
        import hdf5plugin  # noqa: F401

        self.path, self.key = path, key
        if key not in file or not isinstance(file[key], h5py.Group):
            raise DataError(f"{path}: no pandas frame at key {key!r}")
        group = file[key]
        self.kind = _attr(group, "pandas_type")
        # blocks: (reader of rows [start, stop) -> (n, width) array, column names, numpy dtype or None if object)
        self._blocks: list[tuple] = []
        if self.kind == "frame_table":
            self._table(group)
        elif self.kind == "frame":
            self._fixed(group)
        else:
            raise DataError(f"{path}: key {key!r} is not a pandas frame (attribute 'pandas_type' is {self.kind!r})")
        self.columns = [c for _, names, _ in self._blocks for c in names]
        self._where = {c: (b, i) for b, (_, names, _) in enumerate(self._blocks) for i, c in enumerate(names)}

    def _table(self, group: h5py.Group) -> None:
        if "table" not in group or not isinstance(group["table"], h5py.Dataset):
            raise DataError(f"{self.path}: pandas table {self.key!r} has no 'table' dataset")
        table = group["table"]
        self.nrows = int(table.shape[0])
        for field in table.dtype.names or ():
            if field == "index":
                continue
            kind = table.attrs.get(f"{field}_kind")
            where = f"{self.path}: pandas key {self.key!r}, attribute '{field}_kind'"
            names = string_list_pickle(bytes(kind), where) if kind is not None else [field]
            dtype = table.dtype.fields[field][0]
            if dtype.subdtype is not None:
                dtype = dtype.subdtype[0]
            numeric = dtype if dtype.kind in "biuf" else None
            width = len(names)
            self._blocks.append(
                (
                    lambda a, b, f=field, w=width: (
                        table.fields(f)[a:b].reshape(b - a, w) if b > a else np.zeros((0, w))
                    ),
                    names,
                    numeric,
                )
            )

    def _fixed(self, group: h5py.Group) -> None:
        nblocks = group.attrs.get("nblocks")
        if nblocks is None:
            raise DataError(f"{self.path}: pandas frame {self.key!r} lacks attribute 'nblocks'")
        for k in range(int(nblocks)):
            items, values = group.get(f"block{k}_items"), group.get(f"block{k}_values")
            if not isinstance(items, h5py.Dataset) or not isinstance(values, h5py.Dataset):
                raise DataError(f"{self.path}: pandas frame {self.key!r} lacks 'block{k}_items'/'block{k}_values'")
            names = self._labels(items, f"block{k}_items")
            obj = values.dtype.kind == "O" or _attr(values, "CLASS") == "VLARRAY"
            if obj:
                self._blocks.append((None, names, None))
                continue
            # pandas writes blocks transposed: the dataset is (rows, columns) with attribute transposed=1
            if values.ndim != 2 or values.shape[1] != len(names):
                raise DataError(
                    f"{self.path}: pandas frame {self.key!r}: 'block{k}_values' has shape {values.shape},"
                    f" expected (rows, {len(names)})"
                )
            self._blocks.append(
                (lambda a, b, v=values: v[a:b], names, values.dtype if values.dtype.kind in "biuf" else None)
            )
        axis1 = group.get("axis1")
        self.nrows = int(axis1.shape[0]) if isinstance(axis1, h5py.Dataset) else 0

    def _labels(self, dataset: h5py.Dataset, name: str) -> list:
        if dataset.dtype.kind == "O" or _attr(dataset, "CLASS") == "VLARRAY":
            raise DataError(
                f"{self.path}: pandas frame {self.key!r}: column labels '{name}' are pickled objects; refused unread"
            )
        raw = dataset[()]
        return [v.decode() if isinstance(v, bytes) else v.item() for v in np.asarray(raw).reshape(-1)]

    def read(self, columns: list, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` of ``columns`` as a float64 array (rows, len(columns)).

        Raises:
            DataError: a column is missing, or holds objects or strings rather than numbers.
        """
        stop = self.nrows if stop is None else min(stop, self.nrows)
        start = min(start, stop)
        missing = [c for c in columns if c not in self._where]
        if missing:
            raise DataError(f"{self.path}: pandas key {self.key!r} lacks columns {missing[:8]}")
        out = np.empty((stop - start, len(columns)), dtype=np.float64)
        by_block: dict[int, list[tuple[int, int]]] = {}
        for j, c in enumerate(columns):
            b, i = self._where[c]
            by_block.setdefault(b, []).append((j, i))
        for b, pairs in by_block.items():
            reader, names, dtype = self._blocks[b]
            if dtype is None:
                bad = [names[i] for _, i in pairs]
                raise DataError(
                    f"{self.path}: pandas key {self.key!r}: column(s) {bad[:4]} hold objects or strings "
                    "(pickled by pandas), expected numbers; refused unread"
                )
            block = np.asarray(reader(start, stop))
            for j, i in pairs:
                out[:, j] = block[:, i]
        return out

    def check_numeric(self, columns: list) -> None:
        """Refuse, before any row is read, columns that are missing or not numeric."""
        self.read(columns, 0, 0)
