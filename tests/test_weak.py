"""Dijet events and weak supervision: clustering, SIC, weighted training, CWoLa on a toy with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import synthetic_jets

from hepfm.analysis.weak import (
    balanced_weights,
    dijet_scores,
    max_sic,
    regions,
    sic_curve,
    train_dijet_classifier,
)
from hepfm.core.metrics import roc_auc
from hepfm.core.physics import mass
from hepfm.data import EventSample, JetDataset, read_events
from hepfm.data.sample import JetSample
from hepfm.sim.dijets import Dijets, dijets
from hepfm.train import ClassifierObjective, TrainConfig

CHECKPOINT = "checkpoints/pet-tiny-jetclass"


def test_regions_and_balanced_weights():
    mjj = np.array([2800.0, 2950.0, 3350.0, 3699.0, 3700.0, 4050.0, 4200.0])
    sr, sb = regions(mjj)
    assert sr.tolist() == [False, False, True, True, False, False, False]
    assert sb.tolist() == [False, True, False, False, True, True, False]
    labels = np.array([0, 0, 0, 1])
    w = balanced_weights(labels)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum()) and w.mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="every class"):
        balanced_weights(np.array([1, 1, 1]))


def test_sic_known_answers():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(1000, np.int64), np.ones(100, np.int64)]
    perfect = labels + rng.uniform(0, 0.5, len(labels))
    # every signal event passes before any background; the last kept threshold holds 25 of 1000 background
    assert max_sic(labels, perfect, min_background=25) == pytest.approx(1 / np.sqrt(25 / 1000))
    curve = sic_curve(labels, perfect, min_background=25)
    assert curve["eff_b"].min() == pytest.approx(0.025) and curve["eff_s"].max() == 1.0
    big = np.r_[np.zeros(20000, np.int64), np.ones(20000, np.int64)]
    assert 1.0 <= max_sic(big, rng.uniform(size=len(big))) < 1.1  # a random classifier: SIC = sqrt(eps) <= 1
    with pytest.raises(ValueError, match="signal"):
        sic_curve(np.zeros(10, np.int64), np.arange(10.0))


def test_weighted_classifier_loss(toy_jets):
    from hepfm.models import PET, PETConfig

    torch.manual_seed(0)
    model = PET(PETConfig.named("tiny", n_classes=2, generative=False)).eval()
    objective = ClassifierObjective(model)
    plain = JetDataset(toy_jets)
    batch = plain.collate([plain[i] for i in range(16)])
    loss, _ = objective(batch)
    weighted = JetSample.concatenate([toy_jets])
    weighted.weights = np.ones(len(toy_jets))
    data = JetDataset(weighted, plain.normaliser)
    assert torch.allclose(objective(data.collate([data[i] for i in range(16)]))[0], loss)
    weighted.weights = np.r_[np.ones(8), np.zeros(len(toy_jets) - 8)]  # only the first 8 count
    data = JetDataset(weighted, plain.normaliser)
    first8, _ = objective(plain.collate([plain[i] for i in range(8)]))
    assert torch.allclose(objective(data.collate([data[i] for i in range(16)]))[0], first8, atol=1e-6)


def _spray(rng, n, pt, eta, phi, width):
    """n massless particles around (eta, phi) sharing ``pt``."""
    share = rng.dirichlet(np.ones(n)) * pt
    return np.stack([share, eta + rng.normal(0, width, n), phi + rng.normal(0, width, n)], 1)


def _events(rng, n_events, two_jets=True):
    rows = []
    for _ in range(n_events):
        parts = [_spray(rng, 30, 1500.0, 0.3, 0.0, 0.08)]
        if two_jets:
            parts.append(_spray(rng, 20, 1400.0, -0.5, np.pi, 0.15))
        rows.append(np.concatenate(parts))
    width = max(len(r) for r in rows)
    particles = np.zeros((n_events, width, 4), np.float32)
    mask = np.zeros((n_events, width), bool)
    for i, r in enumerate(rows):
        particles[i, : len(r), :3], particles[i, : len(r), 3] = r, r[:, 0] * np.cosh(r[:, 1])
        mask[i, : len(r)] = True
    return particles, mask


def test_dijets_clusters_two_jets_and_rescales():
    rng = np.random.default_rng(1)
    p2, m2 = _events(rng, 6)
    p1, m1 = _events(rng, 2, two_jets=False)
    width = max(p2.shape[1], p1.shape[1])
    particles = np.zeros((8, width, 4), np.float32)
    mask = np.zeros((8, width), bool)
    particles[:6, : p2.shape[1]], mask[:6, : p2.shape[1]] = p2, m2
    particles[6:, : p1.shape[1]], mask[6:, : p1.shape[1]] = p1, m1
    events = EventSample(particles, mask, np.r_[np.zeros(6), np.ones(2)].astype(np.int64), ["two", "one"], "toy")
    out = dijets(events, pt_scale=1000.0)
    assert isinstance(out, Dijets) and len(out) == 6 and out.event_index.tolist() == list(range(6))
    # all particles of an event are in its two jets: mjj is the mass of the whole event
    pt, eta, phi, e = (particles[:6, ..., k].astype(np.float64) * mask[:6] for k in range(4))
    px, py, pz = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1), (pt * np.sinh(eta)).sum(1)
    np.testing.assert_allclose(out.mjj, mass(px, py, pz, e.sum(1)), rtol=1e-6)
    assert (out.jet_pt[:, 0] >= out.jet_pt[:, 1]).all()
    np.testing.assert_allclose(out.jets[0].jet("pt"), 1000.0, rtol=1e-4)  # rescaled ...
    np.testing.assert_allclose(out.jets[0].jet("mass"), out.jet_mass[:, 0] * 1000.0 / out.jet_pt[:, 0], rtol=1e-3)
    assert (out.jets[0].jet("n_particles") == 30).all() and (out.jets[1].jet("n_particles") == 20).all()
    assert not out.jets[0].has_pid
    both = out.as_jets()
    assert len(both) == 12 and both.labels.tolist() == [0] * 12
    assert len(Dijets.concatenate([out, out[:2]])) == 8
    relabelled = out.relabel(1, ["bg", "sig"])
    assert relabelled.jets[1].class_names == ["bg", "sig"] and (relabelled.as_jets().labels == 1).all()
    with pytest.raises(ValueError, match="objects"):
        dijets(
            EventSample(
                particles,
                mask,
                events.labels,
                events.class_names,
                "objs",
                particle_features=("pt", "eta", "phi", "energy", "btag", "charge", "type")[3:],
            )
        )


def test_dijets_of_the_real_lhco_sample(shared_data):
    out = dijets(read_events(shared_data / "lhco_rnd_sample.h5"))
    assert len(out) >= 990
    heavy = out.jet_mass.max(1)
    # the R&D signal is W' (3.5 TeV) -> X (500 GeV) Y (100 GeV)
    assert 450 < np.median(heavy[out.labels == 1]) < 550
    assert np.median(heavy[out.labels == 0]) < 300
    assert 3300 < np.median(out.mjj[out.labels == 1]) < 3700


def test_particle_level_events_with_the_lhco_trigger(tmp_path):
    from hepfm.sim.factory import generate_events
    from hepfm.sim.processes import LHCO_TRIGGER_PT

    path = generate_events(
        ["Wprime_XY"],
        24,
        tmp_path / "wprime",
        seed=3,
        content="particles",
        trigger_pt=LHCO_TRIGGER_PT,
        events_per_shard=12,
        progress=False,
    )
    events = read_events(path)
    assert events.particle_features == ("pt", "eta", "phi", "energy") and len(events) == 24
    assert events.truth is None and (events.mask.sum(1) > 50).all()
    out = dijets(events)
    assert (out.jet_pt[:, 0] > LHCO_TRIGGER_PT).all()
    heavy, light = out.jet_mass.max(1), out.jet_mass.min(1)
    assert 400 < np.median(heavy) < 600 and 60 < np.median(light) < 160
    with pytest.raises(ValueError, match="content"):
        generate_events(["Wprime_XY"], 2, tmp_path / "bad", content="hadrons", progress=False)


def test_cwola_learns_a_localised_signal(tmp_path):
    """Toy with a known answer: 'signal' events (two wide jets) sit only in the signal region; a classifier
    trained on signal region vs sidebands, never told which events are signal, separates signal from
    background."""
    rng = np.random.default_rng(0)

    def toy(n_bkg, n_sig, seed, signal_region):
        jets = synthetic_jets(2 * (n_bkg + n_sig) * 2, seed=seed, max_particles=40)
        narrow, wide = jets[jets.labels == 0], jets[jets.labels == 1]
        pick = [
            JetSample.concatenate([narrow[k * n_bkg : (k + 1) * n_bkg], wide[k * n_sig : (k + 1) * n_sig]])
            for k in range(2)
        ]
        labels = np.r_[np.zeros(n_bkg, np.int64), np.ones(n_sig, np.int64)]
        mjj = np.r_[rng.uniform(2900, 4100, n_bkg), rng.uniform(*signal_region, n_sig)]
        return Dijets(
            (pick[0], pick[1]),
            mjj,
            np.full((len(labels), 2), 1500.0),
            np.full((len(labels), 2), 100.0),
            labels,
            ["background", "signal"],
            np.arange(len(labels)),
            "toy",
        )

    data = toy(600, 90, 1, (3300, 3700))
    in_sr = regions(data.mjj)[0]
    config = TrainConfig(epochs=4, batch_size=64, lr=1e-3, patience=0, progress=False)
    model = train_dijet_classifier(CHECKPOINT, data, in_sr.astype(np.int64), tmp_path / "cwola", train=config)
    test = toy(300, 300, 2, (3300, 3700))
    scores = dijet_scores(model, test, CHECKPOINT, device="cpu")
    assert roc_auc(test.labels, scores) > 0.8
    assert max_sic(test.labels, scores) > 1.5
