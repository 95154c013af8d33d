"""Validation tables, event content and what the event models make of events they were not trained on."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_SAMPLES, synthetic_jets

from hepfm.analysis.validation import (
    class_fractions,
    classification_table,
    classify_file,
    compare_to_reference,
    object_counts,
    object_multiplicities,
    reference_table,
    truth_table,
)
from hepfm.core.metrics import multiclass_metrics
from hepfm.data.sample import EventSample
from hepfm.data.schema import OBJECT_COLUMNS, OBJECT_TYPES
from hepfm.train import evaluate_checkpoint

JET, ELECTRON, MUON, PHOTON, MET = (OBJECT_TYPES.index(t) for t in ("jet", "electron", "muon", "photon", "met"))


@pytest.fixture
def three_events() -> EventSample:
    """Three object-level events with known content; padded slots are zeros, i.e. look like untagged jets."""
    events = [  # (pt, eta, phi, energy, btag, charge, type)
        [
            (120, 0.1, 0.2, 130, 1, 0, JET),
            (80, -0.5, 2.0, 90, 1, 0, JET),
            (40, 1.2, -1.0, 70, 0, 0, JET),
            (35, 0.3, 1.1, 36, 0, -1, ELECTRON),
            (50, 0.0, 3.0, 50, 0, 0, MET),
        ],  # two b-tagged jets, a third jet and an electron: ttbar-like
        [(60, 0.4, -2.0, 65, 0, 0, JET), (30, -1.0, 0.5, 46, 0, 1, MUON), (25, 0.2, 2.5, 25, 0, 0, PHOTON)],
        [(45, 0.0, 1.0, 45, 0, -1, ELECTRON), (38, 0.9, -1.5, 55, 0, 1, ELECTRON), (10, 0.0, 0.1, 10, 0, 0, MET)],
    ]
    particles = np.zeros((3, 6, len(OBJECT_COLUMNS)), np.float32)  # (N, P, F)
    mask = np.zeros((3, 6), bool)
    for i, objects in enumerate(events):
        particles[i, : len(objects)] = objects
        mask[i, : len(objects)] = True
    return EventSample(particles, mask, np.array([0, 0, 1]), ["ttH", "WZ"], "three-events", OBJECT_COLUMNS)


def test_object_counts_skip_padding(three_events):
    counts = object_counts(three_events)
    assert list(counts) == ["jets", "btag", "leptons"]
    np.testing.assert_array_equal(counts["jets"], [3, 1, 0])  # the padded zeros (type 0 = jet) do not count
    np.testing.assert_array_equal(counts["btag"], [2, 0, 0])
    np.testing.assert_array_equal(counts["leptons"], [1, 1, 2])  # electrons and muons; photons and MET are not


def test_object_multiplicities_are_means_per_class(three_events):
    assert object_multiplicities(three_events) == {
        "ttH": {"jets": 2.0, "btag": 1.0, "leptons": 1.0},
        "WZ": {"jets": 0.0, "btag": 0.0, "leptons": 2.0},
    }
    alone = object_multiplicities(three_events[:2])  # no WZ event left
    assert alone["ttH"]["jets"] == 2.0 and np.isnan(alone["WZ"]["jets"])


def test_class_fractions():
    probabilities = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]
    result = class_fractions(probabilities, ["ttbar", "Wjets", "Zjets"])
    assert result["n_events"] == 4
    assert result["fraction_called"] == {"ttbar": 0.5, "Wjets": 0.25, "Zjets": 0.25}
    assert result["mean_probability"] == pytest.approx({"ttbar": 0.4, "Wjets": 0.375, "Zjets": 0.225})


def test_classify_file_on_a_sample_without_truth(three_events):
    result = classify_file("event-gnn-multiclass", "event-gnn-multilabel", three_events, device="cpu")
    probabilities, _, ckpt = evaluate_checkpoint("event-gnn-multiclass", three_events, device="cpu")
    assert result == {"file": "three-events", **class_fractions(probabilities, ckpt.class_names)}
    assert list(result["fraction_called"]) == ckpt.class_names and len(ckpt.class_names) == 12
    assert sum(result["mean_probability"].values()) == pytest.approx(1.0)
    # the shipped model calls the event with two b-tagged jets and an electron top-pair production
    assert result["fraction_called"]["ttbar"] == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def nanoaod_result():
    path = SHARED_SAMPLES.parent / "nanoaod" / "cms_opendata_2015_ttbar_nanoaod.root"
    if not path.exists():
        pytest.fail(f"the shared NanoAOD sample is missing: {path}", pytrace=False)
    return path, classify_file("event-gnn-multiclass", "event-gnn-multilabel", path, device="cpu")


@pytest.mark.slow
def test_classify_file_on_cms_nanoaod(nanoaod_result):
    path, result = nanoaod_result
    assert result["file"] == str(path) and result["n_events"] == 200
    assert sum(result["fraction_called"].values()) == pytest.approx(1.0)
    truth = result["multilabel"]
    # the file's generator record: every event has a lepton and a neutrino (W -> l nu), none a top quark
    assert truth["truth_fraction"]["lepton"] == 1.0 and truth["truth_fraction"]["neutrino"] == 1.0
    assert truth["truth_fraction"]["W"] > 0.95 and truth["truth_fraction"]["top"] == 0.0
    assert set(truth["mean_predicted"]) == set(truth["truth_fraction"])
    assert 0.5 < truth["label_accuracy"] < 1.0
    without = classify_file("event-gnn-multiclass", None, path, device="cpu")
    assert "multilabel" not in without and without["fraction_called"] == result["fraction_called"]


def test_classification_table():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    table = classification_table(multiclass_metrics(labels, probabilities, ["QCD", "Tbqq"]))
    lines = table.splitlines()
    assert lines[0] == "accuracy 0.750, mean one-vs-rest AUC 1.000"
    assert lines[3:] == ["| QCD | 1.000 |", "| Tbqq | 1.000 |"]


def test_truth_table_marks_labels_without_auc():
    truth = {
        "auc_per_label": {"W": 0.5},
        "label_accuracy": 0.80875,
        "target_correlation": {"W_pt": 0.42},
        "mean_predicted": {"top": 0.0647, "W": 0.6667},
        "truth_fraction": {"top": 0.0, "W": 0.99},
    }
    lines = truth_table(truth).splitlines()
    assert lines[0] == "labels predicted right: 0.809"
    assert lines[3:5] == ["| top | - | 0.000 | 0.065 |", "| W | 0.500 | 0.990 | 0.667 |"]
    assert lines[-1] == "| W_pt | 0.420 |"
    no_targets = truth_table({**truth, "target_correlation": {}})
    assert "correlation" not in no_targets and no_targets.count("\n") == 4


def test_reference_table_rows():
    jets = synthetic_jets(40, seed=3)  # 20 narrow jets of ~22 GeV, 20 wide ones of ~170 GeV
    jets.class_names = ["QCD", "Wqq"]
    checks = compare_to_reference(jets, jets)
    lines = reference_table(checks).splitlines()
    assert len(lines) == 2 + 2 + 1  # header, separator, one row per class, the verdict
    qcd, wqq = (line.split(" | ") for line in lines[2:4])
    assert qcd[0] == "| QCD" and qcd[1] == "20" and qcd[3] == "-" and qcd[7] == "1.00 |"  # no window; own reference
    assert wqq[3] == "75-90" and float(wqq[2]) == pytest.approx(checks["classes"]["Wqq"]["mass"], abs=0.05)
    assert float(wqq[2]) > 150 and float(wqq[5]) == float(wqq[6])
    assert lines[-1] == "all masses in their window: False; all multiplicities within tolerance: True"
    swapped = jets[np.arange(len(jets))]
    swapped.labels = 1 - swapped.labels  # the reference's QCD jets are now the wide, busy ones
    lines = reference_table(compare_to_reference(jets, swapped)).splitlines()
    ratio = float(lines[2].split(" | ")[7].rstrip(" |"))
    expected = checks["classes"]["QCD"]["n_particles"] / checks["classes"]["Wqq"]["n_particles"]
    assert ratio == pytest.approx(expected, abs=0.005)  # printed to two decimals
    assert ratio < 0.75 and lines[-1].endswith("all multiplicities within tolerance: False")
    unreferenced = reference_table(compare_to_reference(jets)).splitlines()[2].split(" | ")
    assert unreferenced[4] == unreferenced[6] == "-"
