"""Deploying a checkpoint: its classifier as an ONNX model with dynamic batch and particle (object) axes.

``hepfm export CHECKPOINT --onnx FILE`` (:func:`export_onnx`) writes a self-contained model for ONNX Runtime
or any ONNX consumer:

* **jets (PET)**: inputs ``x`` (B, N, F) float32 — the raw particle features :data:`hepfm.data.PARTICLE_FEATURES`
  as :func:`hepfm.data.read_jets` computes them, zero on padding — and ``mask`` (B, N) bool (True = real
  particle); the checkpoint's feature normalisation is part of the graph. Output ``logits`` (B, C).
* **events (EventGNN)**: inputs of one batch of event graphs as :class:`~hepfm.data.graphs.EventGraphDataset`
  builds them — ``x`` (nodes, F), ``edge_index`` (2, edges) int64, ``edge_attr`` (edges, 3), ``u`` (B, G),
  ``batch`` (nodes,) int64 — and output ``logits`` (B, K).

The class names, feature names and the hepfm version are stored in the model's metadata (``metadata_props``).
The ONNX tools are an optional extra: ``pip install 'hepfm[onnx]'``, or ``pip install -e '.[onnx]'`` in a checkout
(``make test`` installs it).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

import hepfm
from hepfm.core.errors import DependencyError, OutputError
from hepfm.core.io import atomic_path
from hepfm.data.schema import EDGE_FEATURES, GLOBAL_FEATURES, NODE_FEATURES, PARTICLE_FEATURES
from hepfm.train.checkpoint import Checkpoint, load_checkpoint

__all__ = ["export_onnx", "OPSET"]

#: The ONNX opset written.
OPSET = 18


class _NormalisedPET(nn.Module):
    """PET reading raw features: the checkpoint's normalisation on real particles, then the classifier."""

    def __init__(self, model: nn.Module, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = (x - self.get_buffer("mean")) / self.get_buffer("std")  # (B, N, F)
        z = torch.where(mask.unsqueeze(-1), z, torch.zeros_like(z))  # padding stays exactly zero
        return self.model(z, mask)


class _GraphGNN(nn.Module):
    """The event model on the tensors of a batch of graphs instead of a torch-geometric Batch."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, edge_index, edge_attr, u, batch) -> torch.Tensor:
        return self.model(SimpleNamespace(x=x, edge_index=edge_index, edge_attr=edge_attr, u=u, batch=batch))


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError as err:
        raise DependencyError(
            f"ONNX export needs the onnx extra ({err.name} is missing): pip install 'hepfm[onnx]', or in a hepfm "
            "checkout pip install -e '.[onnx]'"
        ) from err
    return onnx, torch.onnx


def _example(ckpt: Checkpoint) -> tuple[nn.Module, tuple, dict, list[str], dict]:
    """(module to export, example inputs, dynamic shapes, input names, metadata) of a checkpoint."""
    model = ckpt.classifier().eval()
    meta: dict[str, Any] = {
        "hepfm_version": hepfm.__version__,
        "family": ckpt.family.name,
        "class_names": ckpt.class_names,
    }
    if ckpt.family.name == "jets":
        assert ckpt.normaliser is not None
        module: nn.Module = _NormalisedPET(model, ckpt.normaliser.particle_mean, ckpt.normaliser.particle_std)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 16, len(PARTICLE_FEATURES), generator=g)
        mask = torch.ones(2, 16, dtype=torch.bool)
        axes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("particles", min=12)}
        meta["particle_features"] = list(PARTICLE_FEATURES)
        return module, (x, mask), {"x": axes, "mask": axes}, ["x", "mask"], meta
    module = _GraphGNN(model)
    nodes, graphs = 7, 3  # 3, 2 and 2 objects
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    pairs = [(i, j) for i in range(nodes) for j in range(nodes) if i != j and batch[i] == batch[j]]
    edge_index = torch.tensor(pairs).T.contiguous()
    g = torch.Generator().manual_seed(0)
    example = (
        torch.randn(nodes, len(NODE_FEATURES), generator=g),
        edge_index,
        torch.randn(edge_index.shape[1], len(EDGE_FEATURES), generator=g),
        torch.randn(graphs, len(GLOBAL_FEATURES), generator=g),
        batch,
    )
    n, e, b = torch.export.Dim("nodes", min=2), torch.export.Dim("edges", min=2), torch.export.Dim("events")
    shapes = {"x": {0: n}, "edge_index": {1: e}, "edge_attr": {0: e}, "u": {0: b}, "batch": {0: n}}
    meta.update(
        node_features=list(NODE_FEATURES), edge_features=list(EDGE_FEATURES), global_features=list(GLOBAL_FEATURES)
    )
    return module, example, shapes, ["x", "edge_index", "edge_attr", "u", "batch"], meta


def export_onnx(checkpoint: str | Path | Checkpoint, path: str | Path, opset: int = OPSET) -> Path:
    """Write a checkpoint's classifier to ``path`` as ONNX (see the module docstring for its inputs).

    Raises:
        DependencyError: the onnx extra is not installed.
        OutputError: ``path`` cannot be written.
    """
    onnx, torch_onnx = _onnx_modules()
    ckpt = load_checkpoint(checkpoint)
    module, example, shapes, names, meta = _example(ckpt)
    module.eval()
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, expected the .onnx file to write")
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR  # the exporter logs every optional library it lacks
    with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's own notes (shape constraints, deprecations in torch)
        torch_onnx.export(
            module,
            example,
            str(tmp),
            dynamo=True,
            verbose=False,
            external_data=False,
            input_names=names,
            output_names=["logits"],
            opset_version=opset,
            dynamic_shapes=shapes,
        )
        model = onnx.load(str(tmp))
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(model, str(tmp))
    quiet.level = level
    return path
