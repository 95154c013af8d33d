"""Shard storage: round trip, atomic writes, corrupt and foreign files."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest

from hepfm.core.io import atomic_write_json
from hepfm.data import DataError, read_jets
from hepfm.data.schema import SCHEMA_VERSION
from hepfm.data.storage import read_shard, shard_paths, write_shard


def toy_jets(n=5):
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 6, n)
    total = counts.sum()
    px, py = rng.normal(0, 20, total), rng.normal(0, 20, total)
    pz = rng.normal(0, 50, total)
    e = np.sqrt(px**2 + py**2 + pz**2)
    return ak.zip(
        {
            "label": np.arange(n, dtype=np.int32) % 2,
            "part_px": ak.unflatten(px.astype(np.float32), counts),
            "part_py": ak.unflatten(py.astype(np.float32), counts),
            "part_pz": ak.unflatten(pz.astype(np.float32), counts),
            "part_energy": ak.unflatten(e.astype(np.float32), counts),
            "part_charge": ak.unflatten(np.ones(total, np.int8), counts),
            "part_pid": ak.unflatten(np.full(total, 211, np.int32), counts),
        },
        depth_limit=1,
    )


def test_round_trip(tmp_path):
    jets = toy_jets()
    write_shard(jets, tmp_path / "a.parquet", {"class_names": ["b", "s"]})
    back, attrs = read_shard(tmp_path / "a.parquet")
    assert attrs == {"schema_version": SCHEMA_VERSION, "class_names": ["b", "s"]}
    assert ak.to_list(back) == ak.to_list(jets)
    sample = read_jets(tmp_path / "a.parquet")
    assert len(sample) == 5 and sample.class_names == ["b", "s"] and sample.has_pid
    np.testing.assert_allclose(sample.jet("n_particles"), ak.num(jets.part_px).to_numpy())


def test_generated_dataset_round_trip(small_dataset):
    sample = read_jets(small_dataset)
    assert len(sample) == 48 and sample.class_names == ["Tbqq", "QCD"]
    assert np.bincount(sample.labels).tolist() == [24, 24]
    assert len(shard_paths(small_dataset)) == 6
    manifest = json.loads((small_dataset / "dataset.json").read_text())
    assert manifest["complete"] and manifest["jets_per_class"] == {"Tbqq": 24, "QCD": 24}
    assert manifest["schema_version"] == SCHEMA_VERSION and "normalisation" in manifest
    # padded slots are zero and real particles are sorted by pt
    assert np.all(sample.particles[~sample.mask] == 0)
    log_pt = np.where(sample.mask, sample.particles[..., 2], -1e9)
    assert np.all(np.diff(log_pt, axis=1)[sample.mask[:, 1:]] <= 0)


def test_truncated_shard_is_a_clear_error(tmp_path):
    write_shard(toy_jets(), tmp_path / "a.parquet", {"class_names": ["b", "s"]})
    data = (tmp_path / "a.parquet").read_bytes()
    (tmp_path / "a.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="a.parquet.*cannot read"):
        read_shard(tmp_path / "a.parquet")


def test_foreign_parquet_and_schema_version(tmp_path):
    ak.to_parquet(toy_jets(), tmp_path / "plain.parquet")
    with pytest.raises(DataError, match="plain.parquet.*'hepfm'"):
        read_shard(tmp_path / "plain.parquet")
    ak.to_parquet(ak.Array(toy_jets(), attrs={"hepfm": json.dumps({"schema_version": 99})}), tmp_path / "v99.parquet")
    with pytest.raises(DataError, match="v99.parquet.*schema_version"):
        read_shard(tmp_path / "v99.parquet")


def test_missing_fields_and_files(tmp_path):
    write_shard(toy_jets()[["label", "part_px"]], tmp_path / "s" / "x.parquet", {"class_names": ["b", "s"]})
    with pytest.raises(DataError, match=r"x.parquet.*missing field.*part_py"):
        read_jets(tmp_path / "s" / "x.parquet")
    with pytest.raises(FileNotFoundError, match="nope"):
        read_shard(tmp_path / "nope.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no parquet shards"):
        shard_paths(tmp_path / "empty")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_labels_out_of_range_are_refused(tmp_path):
    jets = ak.with_field(toy_jets(), np.full(5, 7, np.int32), "label")
    write_shard(jets, tmp_path / "a.parquet", {"class_names": ["b", "s"]})
    with pytest.raises(DataError, match="a.parquet.*'label'.*outside"):
        read_jets(tmp_path / "a.parquet")


def test_nan_momenta_are_refused(tmp_path):
    jets = toy_jets()
    px = ak.to_numpy(ak.flatten(jets.part_px)).copy()
    px[3] = np.nan
    jets = ak.with_field(jets, ak.unflatten(px, ak.num(jets.part_px)), "part_px")
    write_shard(jets, tmp_path / "a.parquet", {"class_names": ["b", "s"]})
    with pytest.raises(DataError, match="a.parquet.*'part_px'.*NaN"):
        read_jets(tmp_path / "a.parquet")


def test_per_shard_subset_covers_every_class(small_dataset):
    # regression: the factory fitted its normalisation on the first 50k jets in shard-name order,
    # i.e. on the first classes only
    from hepfm.data.storage import read_jet_shards

    sample = read_jet_shards(small_dataset, max_jets_per_shard=2)
    assert len(sample) == 12 and np.bincount(sample.labels).tolist() == [6, 6]
    assert np.bincount(read_jet_shards(small_dataset, max_jets=12).labels, minlength=2).tolist() == [0, 12]
