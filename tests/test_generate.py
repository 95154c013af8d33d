"""The Pythia8 data factory: physics of the generated jets, reproducibility, resumption, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import awkward as ak
import numpy as np
import pytest

from hepfm.analysis.validation import MASS_WINDOWS, class_medians
from hepfm.core.errors import OptionError
from hepfm.data import DataError, read_jets
from hepfm.sim.detector import DETECTORS
from hepfm.sim.factory import generate_jets
from hepfm.sim.jets import make_jets
from hepfm.sim.processes import JET_RECIPES, get_recipe
from hepfm.sim.pythia import EventBatch, make_pythia

pytestmark = pytest.mark.slow


def test_resonance_jets_peak_at_their_masses(physics_dataset):
    medians = class_medians(read_jets(physics_dataset))
    for name in ("Wqq", "Zqq", "Hbb", "Tbqq"):
        lo, hi = MASS_WINDOWS[name]
        assert lo <= medians[name]["mass"] <= hi, (name, medians[name])
    assert medians["QCD"]["mass"] < 100  # QCD jets are light: Sudakov peak well below the W
    # the top jet contains the W: its median multiplicity exceeds that of a W jet
    assert medians["Tbqq"]["n_particles"] > medians["Wqq"]["n_particles"]


def test_jets_are_in_window_and_truth_matched(physics_dataset):
    from hepfm.data.storage import iter_jet_shards

    for _, jets, attrs in iter_jet_shards(physics_dataset):
        name = attrs["class_names"][int(jets.label[0])]
        recipe = get_recipe(name)
        assert np.all((jets.jet_pt >= recipe.pt_min) & (jets.jet_pt < recipe.pt_max))
        assert np.all(np.abs(jets.jet_eta) < recipe.eta_max)
        dr = np.hypot(jets.jet_eta - jets.truth_eta, (jets.jet_phi - jets.truth_phi + np.pi) % (2 * np.pi) - np.pi)
        assert np.all(dr < recipe.radius)
        if recipe.match == "resonance":
            assert np.all(np.abs(jets.truth_pid) == recipe.resonance)
            # the resonance's own mass is the Breit-Wigner pole within a few widths
            assert np.median(jets.truth_mass) == pytest.approx(
                {6: 172.5, 23: 91.19, 24: 80.38, 25: 125.0}[recipe.resonance], rel=0.02
            )
        # the jet four-momentum is the sum of its constituents
        px = ak.sum(jets.part_px, axis=1).to_numpy()
        py = ak.sum(jets.part_py, axis=1).to_numpy()
        np.testing.assert_allclose(np.hypot(px, py), jets.jet_pt.to_numpy(), rtol=1e-3)


def test_events_conserve_momentum():
    pythia = make_pythia(get_recipe("Tbqq").settings(), seed=3)
    batch = EventBatch.from_awkward(pythia.nextBatch(20))
    final = batch.status > 0
    event = batch.event_index[final]
    for name, total in (("px", 0.0), ("py", 0.0), ("pz", 0.0), ("energy", 13000.0)):
        sums = np.bincount(event, weights=getattr(batch, name)[final], minlength=batch.n_events)
        np.testing.assert_allclose(sums, total, atol=1e-3 * 13000)


def test_particle_level_jets_carry_generator_ids():
    jets, stats = make_jets(get_recipe("Wqq"), 10, label=0, seed=4, detector=DETECTORS["none"])
    pid = np.abs(ak.flatten(jets.part_pid).to_numpy())
    assert len(jets) == 10 and stats["events"] >= 10
    assert not np.isin(pid, [12, 14, 16]).any()
    assert np.isin(pid, [211, 321, 2212]).any() and not np.isin(pid, [130]).all()
    assert 60 < np.median(jets.jet_mass) < 100


def test_hqql_parity_settings_give_both_lepton_charges():
    charges = []
    for shard in (0, 1):
        jets, _ = make_jets(get_recipe("Hqql"), 4, label=0, seed=5, detector=DETECTORS["none"], shard_index=shard)
        pid = ak.flatten(jets.part_pid).to_numpy()
        leptons = pid[np.isin(np.abs(pid), [11, 13])]
        charges.append(np.sign(-leptons).sum())
    assert charges[0] * charges[1] < 0


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = generate_jets(["Wqq"], 12, tmp_path / "a", seed=7, jets_per_shard=6, progress=False)
    b = generate_jets(["Wqq"], 12, tmp_path / "b", seed=7, jets_per_shard=6, progress=False)
    c = generate_jets(["Wqq"], 12, tmp_path / "c", seed=8, jets_per_shard=6, progress=False)
    for shard in sorted((a / "shards").iterdir()):
        assert shard.read_bytes() == (b / "shards" / shard.name).read_bytes()
        assert shard.read_bytes() != (c / "shards" / shard.name).read_bytes()


def test_dask_workers_and_external_scheduler_give_the_same_files(tmp_path):
    import logging

    from distributed import LocalCluster

    a = generate_jets(["Zqq", "QCD"], 10, tmp_path / "local", seed=2, jets_per_shard=5, progress=False)
    b = generate_jets(["Zqq", "QCD"], 10, tmp_path / "dask", seed=2, jets_per_shard=5, workers=2, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR) as cl:
        c = generate_jets(
            ["Zqq", "QCD"],
            10,
            tmp_path / "external",
            seed=2,
            jets_per_shard=5,
            scheduler=cl.scheduler_address,
            progress=False,
        )
    names = sorted(p.name for p in (a / "shards").iterdir())
    assert len(names) == 4
    for other in (b, c):
        assert names == sorted(p.name for p in (other / "shards").iterdir())
        for name in names:
            assert (a / "shards" / name).read_bytes() == (other / "shards" / name).read_bytes()


def test_resume_after_kill_keeps_finished_shards(tmp_path):
    out = tmp_path / "jets"
    cmd = [
        sys.executable,
        "-m",
        "hepfm.cli",
        "generate",
        "jets",
        "--classes",
        "Wqq",
        "--jets-per-class",
        "40",
        "--jets-per-shard",
        "10",
        "--seed",
        "9",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "shards").glob("*.parquet")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "shards").glob("*.parquet")}
    assert 1 <= len(finished) < 4, "the job should have been killed part-way"
    assert not json.loads((out / "dataset.json").read_text())["complete"]

    generate_jets(["Wqq"], 40, out, seed=9, jets_per_shard=10, progress=False)
    for name, (mtime, data) in finished.items():
        path = out / "shards" / name
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == data  # not redone
    assert json.loads((out / "dataset.json").read_text())["complete"]
    assert not list((out / "shards").glob(".*"))  # no temporary files left behind
    # the resumed production equals an uninterrupted one
    fresh = generate_jets(["Wqq"], 40, tmp_path / "fresh", seed=9, jets_per_shard=10, progress=False)
    for path in sorted((fresh / "shards").iterdir()):
        assert path.read_bytes() == (out / "shards" / path.name).read_bytes()


def test_other_settings_in_existing_directory_are_refused(tmp_path):
    out = generate_jets(["Wqq"], 5, tmp_path / "jets", seed=1, progress=False)
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    manifest = (out / "dataset.json").read_bytes()
    with pytest.raises(DataError, match=r"dataset\.json.*seed"):
        generate_jets(["Wqq"], 5, out, seed=2, progress=False)
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before
    assert (out / "dataset.json").read_bytes() == manifest


def test_unknown_class_is_a_clear_error(tmp_path):
    with pytest.raises(OptionError, match="unknown jet class or recipe 'Tbqqq'.*Tbqq"):
        generate_jets(["Tbqq", "Tbqqq"], 10, tmp_path, seed=1)
    assert not (tmp_path / "dataset.json").exists()


def test_every_recipe_initialises():
    for recipe in JET_RECIPES.values():
        make_pythia(recipe.settings(), seed=1)
