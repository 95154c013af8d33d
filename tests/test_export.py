"""ONNX export of both model families: ONNX Runtime agrees with PyTorch to 1e-5 on padded batches of shapes
other than the export's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import synthetic_jets
from typer.testing import CliRunner

from hepfm.cli import app
from hepfm.core.errors import OutputError
from hepfm.data.graphs import EventGraphDataset
from hepfm.data.sample import EventSample
from hepfm.data.schema import OBJECT_COLUMNS
from hepfm.models.event_gnn import EventGNN, EventGNNConfig
from hepfm.train import load_checkpoint, save_checkpoint
from hepfm.train.export import export_onnx

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.slow


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _events(n: int, seed: int) -> EventSample:
    """Object-level events of 1 to 7 objects (jets, leptons, MET) with random kinematics."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 8, n)
    width = counts.max()
    objects = np.zeros((n, width, len(OBJECT_COLUMNS)), np.float32)
    mask = np.arange(width)[None] < counts[:, None]
    objects[..., 0] = rng.exponential(60, (n, width)) + 20  # pt
    objects[..., 1] = rng.normal(0, 1.5, (n, width))  # eta
    objects[..., 2] = rng.uniform(-np.pi, np.pi, (n, width))  # phi
    objects[..., 3] = objects[..., 0] * np.cosh(objects[..., 1])
    objects[..., 4] = rng.integers(0, 2, (n, width))
    objects[..., 6] = rng.integers(0, 5, (n, width))
    objects *= mask[..., None]
    return EventSample(objects, mask, rng.integers(0, 2, n), ["a", "b"], "toy", particle_features=OBJECT_COLUMNS)


def test_pet_onnx_matches_pytorch_on_padded_jets(tmp_path):
    ckpt = load_checkpoint("pet-tiny-jetclass")
    path = export_onnx(ckpt, tmp_path / "pet.onnx")
    session = _session(path)
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["class_names"] == ckpt.class_names and meta["family"] == "jets"
    model = ckpt.classifier()
    for n, particles in ((5, 40), (23, 70)):  # other batch sizes and lengths than the export's 2 x 16
        sample = synthetic_jets(n, seed=n, max_particles=particles)
        assert (~sample.mask).any(1).all()  # every jet padded
        dataset = ckpt.dataset(sample)
        with torch.no_grad():
            expected = model(dataset.x, dataset.mask).numpy()
        raw = {"x": sample.particles.astype(np.float32), "mask": sample.mask}
        got = session.run(None, raw)[0]
        assert got.shape == (n, len(ckpt.class_names))
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_event_gnn_onnx_matches_pytorch_on_batched_graphs(tmp_path):
    torch.manual_seed(0)
    model = EventGNN(EventGNNConfig.named("tiny", n_outputs=2)).eval()
    save_checkpoint(tmp_path / "ckpt", model, {"class_names": ["a", "b"], "task": "pretrain-multiclass"})
    path = export_onnx(tmp_path / "ckpt", tmp_path / "gnn.onnx")
    session = _session(path)
    for n, seed in ((4, 1), (31, 2)):
        batch = EventGraphDataset(_events(n, seed)).collate(list(range(n)))
        g = batch.graph
        with torch.no_grad():
            expected = model(g).numpy()
        feeds = {
            "x": g.x.numpy(),
            "edge_index": g.edge_index.numpy(),
            "edge_attr": g.edge_attr.numpy(),
            "u": g.u.numpy(),
            "batch": g.batch.numpy(),
        }
        got = session.run(None, feeds)[0]
        assert got.shape == (n, 2)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_cli_export(tmp_path):
    result = CliRunner().invoke(app, ["export", "pet-tiny-jetclass", "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "m.onnx").stat().st_size > 500_000
    result = CliRunner().invoke(app, ["export", "pet-tiny-jetclass", "--onnx", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.stderr
    with pytest.raises(OutputError, match="is a directory"):
        export_onnx("pet-tiny-jetclass", tmp_path)
