"""Shared pytest fixtures and the helpers that write them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import pytest
import uproot

from hepfm.data.schema import JETCLASS_CLASSES

# ======================================================================================================
# Public-format readers (tests/test_readers.py): the shared real samples, and tiny files in each public
# layout whose jets have analytically known mass and pt.
# ======================================================================================================

#: Small real samples of public datasets, kept beside the repository checkout (see their README.md).
SHARED_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "public-samples"

#: Jets of massless constituents (E, px, py, pz) in GeV with their invariant mass and pt, for any
#: Cartesian layout: label, constituents, mass, pt.
KNOWN_JETS = (
    (0, ((500.0, 300.0, 400.0, 0.0), (500.0, 300.0, -400.0, 0.0)), 800.0, 600.0),  # 1000^2 - 600^2 = 800^2
    (1, ((13.0, 12.0, 0.0, 5.0), (13.0, 12.0, 0.0, -5.0)), 10.0, 24.0),  # 26^2 - 24^2 = 10^2
    (1, ((5.0, 3.0, 4.0, 0.0),), 0.0, 5.0),  # a lone massless particle
)

#: JetNet jets (jet pt, jet eta, constituents (etarel, phirel, ptrel)) with their massless-constituent
#: mass and pt: m^2 = 2 pt1 pt2 (cosh(deta) - cos(dphi)).
KNOWN_JETNET_JETS = (
    (1000.0, 0.5, ((0.0, 0.1, 0.5), (0.0, -0.1, 0.5)), 1000.0 * np.sin(0.1), 1000.0 * np.cos(0.1)),
    (800.0, -1.0, ((0.2, 0.0, 0.25), (-0.2, 0.0, 0.75)), np.sqrt(2 * 200 * 600 * (np.cosh(0.4) - 1)), 800.0),
    (300.0, 1.5, ((0.0, 0.0, 1.0),), 0.0, 300.0),
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public samples; a missing folder fails the test rather than skipping it."""
    if not SHARED_SAMPLES.is_dir():
        pytest.fail(
            f"real public samples not found at {SHARED_SAMPLES}; the reader tests need the shared "
            "checkout's data/public-samples folder beside this repository",
            pytrace=False,
        )
    return SHARED_SAMPLES


def write_toptagging(path: Path, jets, labels, *, key: str = "table", format: str = "table", n_max: int = 200) -> Path:
    """Write jets in the top-tagging reference layout (pandas HDF5, as the Zenodo 2603256 files are).

    Args:
        path: output file.
        jets: per jet, a sequence of constituents (E, px, py, pz).
        labels: (N,) ``is_signal_new``; floats allowed so that tests can plant NaN.
        key: pandas key; the real files use "table".
        format: pandas storage; the real files are PyTables tables (``values_block_0`` holding the floats,
            ``values_block_1`` the integer ``ttv``, ``is_signal_new``).
        n_max: constituent slots per jet, 200 in the real files.
    """
    p4 = np.zeros((len(jets), n_max, 4), dtype=np.float32)  # (N, n_max, (E, px, py, pz))
    for i, constituents in enumerate(jets):
        p4[i, : len(constituents)] = constituents
    names = ("E", "PX", "PY", "PZ")
    # Column order as in the real files: E_0, PX_0, PY_0, PZ_0, E_1, ..., then the truth top and labels.
    columns = {f"{name}_{j}": p4[:, j, k] for j in range(n_max) for k, name in enumerate(names)}
    columns |= {f"truth{name}": p4[:, :, k].sum(axis=1) for k, name in enumerate(names)}
    columns |= {"ttv": np.zeros(len(jets), dtype=np.int64), "is_signal_new": np.asarray(labels)}
    pd.DataFrame(columns).to_hdf(path, key=key, format=format)
    return path


def write_jetnet(path: Path, particle_features, jet_features) -> Path:
    """Write JetNet datasets ``particle_features`` (N, M, 4) and ``jet_features`` (N, 4 or 5) as float32."""
    with h5py.File(path, "w") as file:
        file["particle_features"] = np.asarray(particle_features, dtype=np.float32)
        file["jet_features"] = np.asarray(jet_features, dtype=np.float32)
    return path


def jetnet_arrays(n_max: int = 30, with_type: bool = False):
    """:data:`KNOWN_JETNET_JETS` as JetNet arrays; types 0, 3, 4 (g, w, z) when ``with_type``."""
    particles = np.zeros((len(KNOWN_JETNET_JETS), n_max, 4))  # (N, M, (etarel, phirel, ptrel, mask))
    jets = []
    for i, (pt, eta, constituents, mass, _) in enumerate(KNOWN_JETNET_JETS):
        particles[i, : len(constituents), :3] = constituents
        particles[i, : len(constituents), 3] = 1.0
        jets.append([pt, eta, mass, len(constituents)])
    jets = np.asarray(jets)
    if with_type:
        jets = np.concatenate([[[0.0], [3.0], [4.0]], jets], axis=1)
    return particles, jets


def write_jetclass_tree(path: Path, jets, class_index, *, with_pid: bool = True, onehot=None) -> Path:
    """Write jets in the full JetClass layout: a TTree ``tree`` with jagged ``part_*`` and ``label_*``.

    Args:
        path: output ROOT file.
        jets: per jet, a sequence of constituents (E, px, py, pz).
        class_index: (N,) index into the ten JetClass classes.
        with_pid: add ``part_charge`` and ``part_is*`` (alternating charged hadron +1, photon, electron -1).
        onehot: (N, 10) label booleans overriding ``class_index``, to plant bad labels.
    """
    p4 = [np.asarray(c, dtype=np.float64).reshape(-1, 4) for c in jets]  # per jet (n, (E, px, py, pz))
    names = ("part_energy", "part_px", "part_py", "part_pz")
    jagged = {name: [c[:, k] for c in p4] for k, name in enumerate(names)}
    if with_pid:
        kind = [np.arange(len(c)) % 3 for c in p4]  # 0 charged hadron, 1 photon, 2 electron
        flags = {"part_isChargedHadron": 0, "part_isPhoton": 1, "part_isElectron": 2}
        jagged |= {name: [(k == v).astype(np.float64) for k in kind] for name, v in flags.items()}
        jagged |= {name: [np.zeros(len(k)) for k in kind] for name in ("part_isNeutralHadron", "part_isMuon")}
        jagged["part_charge"] = [np.select([k == 0, k == 2], [1.0, -1.0], 0.0) for k in kind]
    if onehot is None:
        onehot = np.eye(len(JETCLASS_CLASSES), dtype=bool)[np.asarray(class_index)]
    labels = {
        f"label_{name}": np.asarray(column, dtype=bool)
        for name, column in zip(JETCLASS_CLASSES, np.asarray(onehot).T, strict=True)
    }
    branches = {name: ak.Array(v) for name, v in jagged.items()} | labels
    types = {name: "var * float64" for name in jagged} | {name: "bool" for name in labels}
    with uproot.recreate(path) as file:
        file.mktree("tree", types).extend(branches)
    return path


@pytest.fixture(scope="session")
def public_layouts() -> SimpleNamespace:
    """The known jets and the writers above, for tests that plant bad values in a layout."""
    return SimpleNamespace(
        KNOWN_JETS=KNOWN_JETS,
        KNOWN_JETNET_JETS=KNOWN_JETNET_JETS,
        write_toptagging=write_toptagging,
        write_jetnet=write_jetnet,
        jetnet_arrays=jetnet_arrays,
        write_jetclass_tree=write_jetclass_tree,
    )


@pytest.fixture(scope="session")
def toptagging_file(tmp_path_factory) -> Path:
    """:data:`KNOWN_JETS` in the top-tagging layout, ``toptagging.h5``."""
    path = tmp_path_factory.mktemp("toptagging") / "toptagging.h5"
    return write_toptagging(path, [c for _, c, _, _ in KNOWN_JETS], [label for label, *_ in KNOWN_JETS])


@pytest.fixture(scope="session")
def jetnet_file(tmp_path_factory) -> Path:
    """:data:`KNOWN_JETNET_JETS` as JetNet's Zenodo file for top jets, ``t.hdf5`` (no type column)."""
    return write_jetnet(tmp_path_factory.mktemp("jetnet") / "t.hdf5", *jetnet_arrays())


@pytest.fixture(scope="session")
def jetnet_typed_file(tmp_path_factory) -> Path:
    """:data:`KNOWN_JETNET_JETS` as ``jetnet.datasets.JetNet.getData`` returns them (type column first)."""
    return write_jetnet(tmp_path_factory.mktemp("jetnet") / "jets.hdf5", *jetnet_arrays(with_type=True))


@pytest.fixture(scope="session")
def jetclass_tree_file(tmp_path_factory) -> Path:
    """:data:`KNOWN_JETS` as a full JetClass TTree with PID, classes QCD, Tbqq, Wqq."""
    path = tmp_path_factory.mktemp("jetclass") / "jetclass_full.root"
    return write_jetclass_tree(path, [c for _, c, _, _ in KNOWN_JETS], [0, 8, 7])


# ======================================================================================================
# Generated data (tests of the factory, storage and datasets): tiny productions made once per session.
# ======================================================================================================

#: Jets per class of the session's physics sample: enough for medians to within a few GeV.
PHYSICS_JETS = 80


@pytest.fixture(scope="session")
def physics_dataset(tmp_path_factory) -> Path:
    """Detector-level jets of the resonance classes with known mass windows, plus QCD."""
    from hepfm.sim.factory import generate_jets

    out = tmp_path_factory.mktemp("physics") / "jets"
    return generate_jets(
        ["QCD", "Wqq", "Zqq", "Hbb", "Tbqq"], PHYSICS_JETS, out, seed=11, jets_per_shard=PHYSICS_JETS, progress=False
    )


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """Two classes in several small shards, for storage and streaming tests."""
    from hepfm.sim.factory import generate_jets

    out = tmp_path_factory.mktemp("small") / "jets"
    return generate_jets(["Tbqq", "QCD"], 24, out, seed=5, jets_per_shard=8, progress=False)


# ======================================================================================================
# Models and training: synthetic jets whose two classes differ in multiplicity and spread.
# ======================================================================================================


def synthetic_jets(n: int = 64, seed: int = 0, max_particles: int = 40):
    """A JetSample of two separable classes built from random massless constituents."""
    from hepfm.core.physics import p4_from_pt_eta_phi_m
    from hepfm.data.sample import build_jet_sample

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    counts = np.where(labels == 1, rng.integers(20, 35, n), rng.integers(8, 20, n))
    total = counts.sum()
    spread = np.repeat(np.where(labels == 1, 0.3, 0.1), counts)
    pt = rng.exponential(15.0, total) + 0.5
    px, py, pz, e = p4_from_pt_eta_phi_m(pt, rng.normal(0, spread), rng.normal(0, spread), 0.0)
    charge = rng.choice([-1.0, 0.0, 1.0], total)
    pid = np.where(charge == 0, 22, 211 * charge).astype(np.int32)
    jag = [ak.unflatten(a, counts) for a in (px, py, pz, e, charge, pid)]
    return build_jet_sample(
        *jag[:4],
        labels,
        ["narrow", "wide"],
        charge=jag[4],
        pid=jag[5],
        max_particles=max_particles,
        source=f"synthetic(seed={seed})",
    )


@pytest.fixture
def toy_jets():
    return synthetic_jets()


@pytest.fixture(scope="session")
def event_dataset(tmp_path_factory) -> Path:
    """Whole events of three processes with distinct hard processes, in two shards per process."""
    from hepfm.sim.factory import generate_events

    out = tmp_path_factory.mktemp("events") / "ttH-ttbar-WZ"
    return generate_events(["ttH", "ttbar", "WZ"], 100, out, seed=5, events_per_shard=50, progress=False)
