"""Writing and reading the ``metrics.json`` each notebook and command leaves behind."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from hepfm.data.storage import atomic_write_json

__all__ = ["write_metrics", "read_metrics"]


def _plain(obj):
    """numpy scalars/arrays to plain JSON types; NaN/inf become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_metrics(output_dir: str | Path, metrics: dict, name: str = "metrics.json") -> Path:
    """Write ``metrics`` as JSON into ``output_dir`` atomically; returns the path."""
    path = Path(output_dir) / name
    atomic_write_json(path, _plain(metrics))
    return path


def read_metrics(output_dir: str | Path, name: str = "metrics.json") -> dict:
    return json.loads((Path(output_dir) / name).read_text())
