"""Tests of hepfm.data.formats on the shared real samples and on tiny files in each public layout."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import uproot

import hepfm.data.formats.lhco as lhco_format
from hepfm.core.errors import DataError
from hepfm.data.formats import (
    ENERGYFLOW_CLASSES,
    EVENT_FORMATS,
    JET_FORMATS,
    JETNET_CLASSES,
    TOPTAGGING_CLASSES,
    detect_format,
    read_events,
    read_jets,
)
from hepfm.data.schema import JETCLASS_CLASSES, PARTICLE_FEATURES

JETCLASS = "jetclass_sample.root"
ENERGYFLOW = "qg_jets_energyflow_format.npz"
LHCO = "lhco_rnd_sample.h5"
# README reference medians of the shared JetClass sample: jet mass (GeV), constituent multiplicity.
JETCLASS_REFERENCE = {
    "QCD": (66, 33),
    "Hbb": (122, 36),
    "Hcc": (123, 37),
    "Hgg": (124, 56),
    "H4q": (121, 47),
    "Hqql": (96, 23),
    "Zqq": (93, 33),
    "Wqq": (87, 31),
    "Tbqq": (170, 51),
    "Tbl": (121, 25),
}


@pytest.fixture(scope="module")
def jetclass(shared_data):
    return read_jets(shared_data / JETCLASS)


@pytest.fixture(scope="module")
def lhco(shared_data):
    return read_events(shared_data / LHCO)


def feature(sample, name: str) -> np.ndarray:
    """One particle feature over the real particles only, flat."""
    return sample.particles[..., PARTICLE_FEATURES.index(name)][sample.mask]


# ---------------------------------------------------------------------------------------- real samples


def test_jetclass_sample_matches_readme_reference(jetclass):
    assert len(jetclass) == 500
    assert jetclass.class_names == list(JETCLASS_CLASSES)
    assert not jetclass.has_pid  # the shared copy went through ParT preprocessing, which drops PID
    counts = np.bincount(jetclass.labels, minlength=len(JETCLASS_CLASSES))
    assert counts.min() >= 33 and counts.max() <= 65
    for index, name in enumerate(jetclass.class_names):
        jets = jetclass[jetclass.labels == index]
        ref_mass, ref_multiplicity = JETCLASS_REFERENCE[name]
        assert np.median(jets.jet("mass")) == pytest.approx(ref_mass, rel=0.05), name
        # The README rounds half-integer medians up (QCD 32.5 -> 33).
        assert abs(np.median(jets.jet("n_particles")) - ref_multiplicity) <= 0.5, name
    assert np.median(jetclass.jet("pt")) == pytest.approx(590, rel=0.05)
    np.testing.assert_array_equal(jetclass.mask.sum(axis=1), jetclass.jet("n_particles"))


def test_jetclass_max_jets_and_max_particles(shared_data, jetclass):
    small = read_jets(shared_data / JETCLASS, max_jets=20, max_particles=16)
    assert small.particles.shape == (20, 16, len(PARTICLE_FEATURES))
    # Jet features sum all constituents, not only the kept 16.
    np.testing.assert_allclose(small.jets, jetclass.jets[:20])
    np.testing.assert_array_equal(small.particles, jetclass.particles[:20, :16])
    np.testing.assert_array_equal(small.labels, jetclass.labels[:20])


def test_energyflow_sample_quark_gluon_multiplicity(shared_data):
    sample = read_jets(shared_data / ENERGYFLOW)
    assert len(sample) == 2000
    assert sample.class_names == list(ENERGYFLOW_CLASSES)
    assert np.bincount(sample.labels).tolist() == [1010, 990]
    assert not sample.has_pid  # the pid column of this copy is all zero
    gluon = np.median(sample.jet("n_particles")[sample.labels == 0])
    quark = np.median(sample.jet("n_particles")[sample.labels == 1])
    assert gluon > quark
    assert (gluon, quark) == (52, 31)  # README reference
    assert 500 <= np.median(sample.jet("pt")) <= 550


def test_lhco_sample_events(shared_data, lhco):
    assert len(lhco) == 1000
    assert lhco.class_names == ["background", "signal"]
    assert int(lhco.labels.sum()) == 93
    assert lhco.particles.shape == (1000, 700, 4)
    pt, eta, energy = lhco.particles[..., 0], lhco.particles[..., 1], lhco.particles[..., 3]
    np.testing.assert_array_equal(lhco.mask, pt > 0)
    assert (np.diff(pt, axis=1) <= 0).all()  # sorted by pt, padding last
    assert (lhco.particles[~lhco.mask] == 0).all()
    np.testing.assert_allclose(energy, pt * np.cosh(eta), rtol=1e-5)
    raw = pd.read_hdf(shared_data / LHCO, key="df").to_numpy()
    for event in (0, 1, 500, 999):
        stored = raw[event, :-1].reshape(-1, 3)
        stored = stored[stored[:, 0] > 0]
        np.testing.assert_allclose(np.sort(stored[:, 0])[::-1], pt[event][lhco.mask[event]], rtol=1e-6)


def test_lhco_chunked_read_matches_single_read(shared_data, lhco, monkeypatch):
    monkeypatch.setattr(lhco_format, "CHUNK_ROWS", 300)
    chunked = read_events(shared_data / LHCO)
    np.testing.assert_array_equal(chunked.particles, lhco.particles)
    np.testing.assert_array_equal(chunked.labels, lhco.labels)
    first = read_events(shared_data / LHCO, max_events=450, max_particles=50)
    assert first.particles.shape == (450, 50, 4)
    np.testing.assert_array_equal(first.particles, lhco.particles[:450, :50])


# -------------------------------------------------------------------- tiny files with known four-vectors


def assert_known_jets(sample, known) -> None:
    np.testing.assert_allclose(sample.jet("mass"), [mass for *_, mass, _ in known], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(sample.jet("pt"), [pt for *_, pt in known], rtol=1e-5)


@pytest.mark.parametrize("storage", ["table", "fixed"])
def test_toptagging_recovers_known_jets(toptagging_file, public_layouts, tmp_path, storage):
    known = public_layouts.KNOWN_JETS
    # The real files are PyTables tables under "table"; a fixed frame under another key must read too.
    path = toptagging_file
    if storage == "fixed":
        jets, labels = [c for _, c, _, _ in known], [label for label, *_ in known]
        path = public_layouts.write_toptagging(tmp_path / "top.h5", jets, labels, key="jets", format="fixed")
    sample = read_jets(path)
    assert sample.class_names == list(TOPTAGGING_CLASSES)
    assert sample.labels.tolist() == [label for label, *_ in known]
    assert sample.jet("n_particles").tolist() == [len(c) for _, c, _, _ in known]
    assert_known_jets(sample, known)
    assert not sample.has_pid


def test_jetnet_zenodo_file_recovers_known_jets(jetnet_file, public_layouts):
    sample = read_jets(jetnet_file)
    assert sample.class_names == list(JETNET_CLASSES)
    assert sample.labels.tolist() == [JETNET_CLASSES.index("t")] * 3  # from the file name t.hdf5
    assert_known_jets(sample, public_layouts.KNOWN_JETNET_JETS)
    assert sample.jet("eta")[2] == pytest.approx(1.5)  # a lone constituent is the jet axis


def test_jetnet_file_with_type_column(jetnet_typed_file, public_layouts):
    sample = read_jets(jetnet_typed_file, max_particles=4)
    assert sample.labels.tolist() == [0, 3, 4]
    assert sample.particles.shape[1] == 4
    assert_known_jets(sample, public_layouts.KNOWN_JETNET_JETS)


def test_jetclass_tree_with_pid(jetclass_tree_file, public_layouts):
    sample = read_jets(jetclass_tree_file)
    assert sample.has_pid
    assert sample.labels.tolist() == [0, 8, 7]
    assert_known_jets(sample, public_layouts.KNOWN_JETS)
    # The writer alternates charged hadron (+1) and photon within each jet: 3 hadrons, 2 photons.
    assert feature(sample, "charge").sum() == 3
    assert feature(sample, "is_charged_hadron").sum() == 3
    assert feature(sample, "is_photon").sum() == 2
    assert feature(sample, "is_neutral_hadron").sum() == 0


def test_energyflow_pid_gives_mass_and_charge(tmp_path):
    x = np.zeros((2, 3, 4))
    x[0, 0] = (3.0, 0.0, 0.0, 211)  # a lone pi+ at rest in y: the jet mass is the pion mass
    x[1, :2] = ((10.0, 0.5, 1.0, 22), (5.0, 0.4, 1.1, -211))
    path = tmp_path / "qg.npz"
    np.savez(path, X=x, y=np.array([1.0, 0.0]))
    sample = read_jets(path)
    assert sample.has_pid
    assert sample.jet("mass")[0] == pytest.approx(0.13957, rel=1e-4)
    assert sample.labels.tolist() == [1, 0]
    assert feature(sample, "charge").tolist() == [1.0, 0.0, -1.0]
    assert feature(sample, "is_photon").sum() == 1


# ---------------------------------------------------------------------------------- format detection


@pytest.mark.parametrize(("name", "expected"), [(JETCLASS, "jetclass"), (ENERGYFLOW, "energyflow"), (LHCO, "lhco")])
def test_detect_real_samples_by_content(shared_data, tmp_path, name, expected):
    assert detect_format(shared_data / name) == expected
    renamed = tmp_path / "no_extension"  # the first bytes decide, not the name
    shutil.copy(shared_data / name, renamed)
    assert detect_format(renamed) == expected


def test_detect_tiny_layouts(toptagging_file, jetnet_file, jetnet_typed_file, jetclass_tree_file, tmp_path):
    assert detect_format(toptagging_file) == "toptagging"
    assert detect_format(jetnet_file) == detect_format(jetnet_typed_file) == "jetnet"
    assert detect_format(jetclass_tree_file) == "jetclass"
    assert detect_format(tmp_path) == "hepfm"
    (tmp_path / "shard.parquet").write_bytes(b"PAR1")
    assert detect_format(tmp_path / "shard.parquet") == "hepfm"


def test_explicit_format_equals_detected(shared_data, toptagging_file, jetnet_file):
    for path, fmt in (
        (shared_data / ENERGYFLOW, "energyflow"),
        (toptagging_file, "toptagging"),
        (jetnet_file, "jetnet"),
    ):
        np.testing.assert_array_equal(read_jets(path, fmt).particles, read_jets(path).particles)
    explicit = read_events(shared_data / LHCO, "lhco", max_events=5)
    np.testing.assert_array_equal(explicit.particles, read_events(shared_data / LHCO, max_events=5).particles)


def test_hepfm_format_reads_shards_like_storage(small_dataset):
    from hepfm.data.storage import read_jet_shards

    direct = read_jet_shards(small_dataset, max_particles=7, max_jets=3)
    sample = read_jets(small_dataset, max_particles=7, max_jets=3)
    assert detect_format(small_dataset) == "hepfm" and sample.particles.shape == (3, 7, len(PARTICLE_FEATURES))
    np.testing.assert_array_equal(sample.particles, direct.particles)
    np.testing.assert_array_equal(sample.labels, direct.labels)


# --------------------------------------------------------------------------------------------- bad input
# Each case builds a bad file from ``c`` (c.tmp: tmp_path, c.shared: shared_data, c.layouts: the writers)
# and returns (reader, path, format); the DataError must name the file and hold every fragment.


def truncated(c, name: str, n_bytes: int):
    path = c.tmp / f"truncated_{name}"
    path.write_bytes((c.shared / name).read_bytes()[:n_bytes])
    return path


def energyflow_file(c, x=None, y=None):
    x = np.ones((2, 3, 4)) if x is None else x
    path = c.tmp / "bad_qg.npz"
    np.savez(path, X=x, **({} if y is None else {"y": y}))
    return path


def lhco_file(c, labels=(0, 1, 0), pt: float = 100.0, n_columns: int = 13):
    values = np.zeros((3, n_columns))  # 3 events of 4 x (pt, eta, phi), then the label
    values[:, 0:3] = (pt, 0.5, 1.0)
    values[:, -1] = labels
    path = c.tmp / "bad_lhco.h5"
    pd.DataFrame(values).to_hdf(path, key="df", format="fixed")
    return path


def jetnet_file(c, name="jets.hdf5", *, particles_dim=4, jet_type=None, inf=False):
    particles, jets = c.layouts.jetnet_arrays(with_type=jet_type is not None)
    if jet_type is not None:
        jets[0, 0] = jet_type
    if inf:
        jets[1, 1] = np.inf
    return c.layouts.write_jetnet(c.tmp / name, particles[..., :particles_dim], jets)


def toptagging_file(c, labels=(0, 1, 1), energy=None, drop_label=False):
    jets = [list(constituents) for _, constituents, _, _ in c.layouts.KNOWN_JETS]
    if energy is not None:
        jets[0][0] = (energy, *jets[0][0][1:])
    path = c.layouts.write_toptagging(c.tmp / "bad_top.h5", jets, np.asarray(labels))
    if drop_label:
        frame = pd.read_hdf(path, key="table").drop(columns="is_signal_new")
        frame.to_hdf(path, key="table", format="table", mode="w")
    return path


def jetclass_file(c, *, onehot=None, px=None):
    jets = [list(constituents) for _, constituents, _, _ in c.layouts.KNOWN_JETS]
    if px is not None:
        jets[1][0] = (jets[1][0][0], px, *jets[1][0][2:])
    path = c.tmp / "bad_jetclass.root"
    return c.layouts.write_jetclass_tree(path, jets, [0, 1, 2], onehot=onehot, with_pid=False)


def two_labels() -> np.ndarray:
    onehot = np.eye(10, dtype=bool)[[0, 1, 2]]
    onehot[1, 5] = True
    return onehot


BAD_INPUTS = {
    "truncated-root": (lambda c: (read_jets, truncated(c, JETCLASS, 300_000), None), ["cannot read"]),
    "truncated-root-explicit": (
        lambda c: (read_jets, truncated(c, JETCLASS, 300_000), "jetclass"),
        ["cannot read", "tree 'tree'"],
    ),
    "truncated-npz": (lambda c: (read_jets, truncated(c, ENERGYFLOW, 1_000_000), None), ["cannot read"]),
    "truncated-npz-explicit": (
        lambda c: (read_jets, truncated(c, ENERGYFLOW, 1_000_000), "energyflow"),
        ["cannot read", "'X'"],
    ),
    "truncated-lhco": (lambda c: (read_events, truncated(c, LHCO, 1_000_000), None), ["cannot read"]),
    "truncated-lhco-explicit": (
        lambda c: (read_events, truncated(c, LHCO, 1_000_000), "lhco"),
        ["cannot read", "'df'"],
    ),
    "energyflow-nan": (
        lambda c: (read_jets, energyflow_file(c, np.full((2, 3, 4), np.nan), np.zeros(2)), None),
        ["'X'", "NaN"],
    ),
    "energyflow-3-features": (
        lambda c: (read_jets, energyflow_file(c, np.ones((2, 3, 3)), np.zeros(2)), None),
        ["'X'", "(N, M, 4)"],
    ),
    "energyflow-label-2": (
        lambda c: (read_jets, energyflow_file(c, y=np.array([0.0, 2.0])), None),
        ["'y'", "outside [0, 1]"],
    ),
    "energyflow-label-half": (
        lambda c: (read_jets, energyflow_file(c, y=np.array([0.0, 0.5])), None),
        ["'y'", "non-integer"],
    ),
    "energyflow-label-nan": (
        lambda c: (read_jets, energyflow_file(c, y=np.array([0.0, np.nan])), None),
        ["'y'", "NaN"],
    ),
    "energyflow-no-y": (lambda c: (read_jets, energyflow_file(c), "energyflow"), ["'y'"]),
    "toptagging-label-nan": (
        lambda c: (read_jets, toptagging_file(c, labels=(0, np.nan, 1)), None),
        ["is_signal_new", "NaN"],
    ),
    "toptagging-label-3": (
        lambda c: (read_jets, toptagging_file(c, labels=(0, 3, 1)), None),
        ["is_signal_new", "outside"],
    ),
    "toptagging-energy-inf": (lambda c: (read_jets, toptagging_file(c, energy=np.inf), None), ["E_*", "NaN/inf"]),
    "toptagging-no-label": (
        lambda c: (read_jets, toptagging_file(c, drop_label=True), "toptagging"),
        ["is_signal_new"],
    ),
    "jetnet-3-features": (
        lambda c: (read_jets, jetnet_file(c, particles_dim=3), "jetnet"),
        ["particle_features", "(etarel, phirel, ptrel, mask)"],
    ),
    "jetnet-type-7": (lambda c: (read_jets, jetnet_file(c, jet_type=7), None), ["type", "outside"]),
    "jetnet-type-half": (lambda c: (read_jets, jetnet_file(c, jet_type=0.5), None), ["type", "non-integer"]),
    "jetnet-inf": (lambda c: (read_jets, jetnet_file(c, jet_type=0, inf=True), None), ["jet_features", "NaN/inf"]),
    "jetnet-unknown-type": (lambda c: (read_jets, jetnet_file(c, "mystery.hdf5"), None), ["jet_features", "jet type"]),
    "jetclass-px-nan": (lambda c: (read_jets, jetclass_file(c, px=np.nan), None), ["px", "NaN"]),
    "jetclass-two-labels": (
        lambda c: (read_jets, jetclass_file(c, onehot=two_labels()), None),
        ["label_", "jet 1 has 2 labels"],
    ),
    "jetclass-no-label": (
        lambda c: (read_jets, jetclass_file(c, onehot=np.zeros((3, 10), bool)), None),
        ["label_", "jet 0 has 0 labels"],
    ),
    "lhco-columns": (lambda c: (read_events, lhco_file(c, n_columns=12), None), ["12 columns", "3k + 1"]),
    "lhco-nan": (lambda c: (read_events, lhco_file(c, pt=np.nan), None), ["pt", "NaN"]),
    "lhco-label-2": (lambda c: (read_events, lhco_file(c, labels=(0, 2, 0)), None), ["label", "outside"]),
    "jets-from-event-file": (lambda c: (read_jets, c.shared / LHCO, None), ["'lhco'", "not among the jet formats"]),
    "events-from-jet-file": (
        lambda c: (read_events, c.shared / JETCLASS, None),
        ["'jetclass'", "not among the event formats"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_data_error_naming_file_and_field(tmp_path, shared_data, public_layouts, case):
    builder, fragments = BAD_INPUTS[case]
    read, path, fmt = builder(SimpleNamespace(tmp=tmp_path, shared=shared_data, layouts=public_layouts))
    with pytest.raises(DataError) as info:
        read(path, fmt)
    message = str(info.value)
    assert path.name in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("read", [read_jets, read_events])
@pytest.mark.parametrize("fmt", [None, "lhco", "jetclass"])
def test_missing_file_raises_file_not_found(tmp_path, read, fmt):
    with pytest.raises(FileNotFoundError, match="missing_file.h5"):
        read(tmp_path / "missing_file.h5", fmt)


def test_unknown_format_name_lists_known_formats(shared_data):
    with pytest.raises(DataError) as info:
        read_jets(shared_data / JETCLASS, format="root")
    assert "'root'" in str(info.value) and JETCLASS in str(info.value)
    assert all(name in str(info.value) for name in JET_FORMATS)
    with pytest.raises(DataError, match="known event formats: lhco") as info:
        read_events(shared_data / LHCO, format="jetclass")
    assert all(name in str(info.value) for name in EVENT_FORMATS)


@pytest.mark.parametrize("name", ["notes.txt", "empty.h5", "other.root", "other.npz", "other.h5"])
def test_undetectable_format(tmp_path, name):
    path = tmp_path / name
    if name == "other.npz":
        np.savez(path, a=np.zeros(3))
    elif name == "other.h5":
        pd.DataFrame({"a": [1.0]}).to_hdf(path, key="frame")
    elif name == "other.root":
        with uproot.recreate(path) as file:
            file["histogram"] = np.histogram([1.0, 2.0])
    else:
        path.write_text("not a data file\n" if name == "notes.txt" else "")
    with pytest.raises(DataError, match="cannot (detect|read)") as info:
        read_jets(path)
    assert name in str(info.value)
