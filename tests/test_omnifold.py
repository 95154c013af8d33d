"""OmniFold on Gaussian toys with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hepfm.analysis.omnifold import LogisticClassifier, bootstrap_weights, likelihood_ratio, omnifold

SMEAR = 0.5
N = 20_000


def _toy(rng, mean, cov, n=N):
    truth = rng.multivariate_normal(mean, cov, size=n)
    return truth, truth + SMEAR * rng.normal(size=truth.shape)


def _weighted_moments(x, w):
    mean = np.average(x, axis=0, weights=w)
    cov = np.cov(x.T, aweights=w)
    return mean, cov


def test_omnifold_recovers_a_shifted_correlated_2d_gaussian():
    rng = np.random.default_rng(0)
    sim_truth, sim_reco = _toy(rng, [0.0, 0.0], np.eye(2))
    true_mean, true_cov = np.array([0.5, -0.3]), np.array([[1.44, 0.3], [0.3, 0.81]])
    data_truth, data_reco = _toy(rng, true_mean, true_cov)
    result = omnifold(sim_truth, sim_reco, data_reco, LogisticClassifier(degree=2), iterations=5)
    assert len(result.push) == len(result.pull) == 5
    mean, cov = _weighted_moments(sim_truth, result.weights)
    np.testing.assert_allclose(mean, true_mean, atol=0.05)
    np.testing.assert_allclose(cov, true_cov, atol=0.1)
    # the detector-level pull matches the data at reco level after the first iteration already
    reco_mean, _ = _weighted_moments(sim_reco, result.pull[0])
    np.testing.assert_allclose(reco_mean, data_reco.mean(0), atol=0.03)
    # iterating moves the unfolded answer closer to the truth, and the prior (unweighted sim) is far from it
    first, _ = _weighted_moments(sim_truth, result.push[0])
    assert np.abs(mean - true_mean).sum() <= np.abs(first - true_mean).sum() + 0.01
    assert np.abs(sim_truth.mean(0) - true_mean).sum() > 0.6
    assert result.weights.sum() == pytest.approx(len(data_reco))


def test_omnifold_closure_when_data_is_simulation():
    rng = np.random.default_rng(1)
    sim_truth, sim_reco = _toy(rng, [0.0, 0.0], np.eye(2))
    _, data_reco = _toy(rng, [0.0, 0.0], np.eye(2))
    w = omnifold(sim_truth, sim_reco, data_reco, LogisticClassifier(), iterations=3).weights
    assert np.abs(w - 1).mean() < 0.05


def test_bootstrap_and_likelihood_ratio():
    b = bootstrap_weights(10_000, 3, seed=2)
    assert b.shape == (3, 10_000) and abs(b.mean() - 1) < 0.02 and abs(b.var() - 1) < 0.05
    np.testing.assert_allclose(likelihood_ratio([0.5, 0.75]), [1.0, 3.0])
    assert np.isfinite(likelihood_ratio([0.0, 1.0])).all()
    with pytest.raises(ValueError, match="same events"):
        omnifold(np.zeros((3, 1)), np.zeros((4, 1)), np.zeros((4, 1)), LogisticClassifier())


# ------------------------------------------------------------------------- jets for unfolding, PET classifier


@pytest.fixture(scope="module")
def paired_dataset(tmp_path_factory):
    from hepfm.sim import generate_jets

    out = tmp_path_factory.mktemp("paired") / "qcd"
    return generate_jets(
        ["QCD"],
        30,
        out,
        seed=4,
        jets_per_shard=15,
        paired=True,
        settings=["TimeShower:alphaSvalue = 0.118"],
        progress=False,
    )


def test_paired_jets_hold_both_levels_of_the_same_jets(paired_dataset, tmp_path):
    from hepfm.core.physics import delta_r
    from hepfm.data import DataError, read_jets
    from hepfm.data.storage import read_manifest
    from hepfm.sim import generate_jets

    reco, truth = read_jets(paired_dataset), read_jets(paired_dataset, level="particle")
    assert len(reco) == len(truth) == 30 and truth.has_pid
    # the partner is the particle-level jet along the detector-level one
    assert (delta_r(reco.jet("eta"), reco.jet("phi"), truth.jet("eta"), truth.jet("phi")) < 0.4).all()
    # the detector loses soft particles and merges neutral ones into towers
    assert np.median(truth.jet("n_particles")) > np.median(reco.jet("n_particles"))
    manifest = read_manifest(paired_dataset)
    assert manifest["paired"] and manifest["settings"]["QCD"][-1] == "TimeShower:alphaSvalue = 0.118"
    # pairing draws no random numbers: the detector-level jets equal those of an unpaired production
    plain = generate_jets(
        ["QCD"],
        30,
        tmp_path / "plain",
        seed=4,
        jets_per_shard=15,
        settings=["TimeShower:alphaSvalue = 0.118"],
        progress=False,
    )
    np.testing.assert_array_equal(read_jets(plain).particles, reco.particles)
    with pytest.raises(DataError, match="gen_part_px"):
        read_jets(plain, level="particle")
    with pytest.raises(DataError, match="other settings"):
        generate_jets(["QCD"], 30, plain, seed=4, jets_per_shard=15, progress=False)
    with pytest.raises(ValueError, match="rejected the setting"):
        generate_jets(["QCD"], 5, tmp_path / "bad", settings=["TimeShower:notASetting = 1"], progress=False)


def test_nsubjettiness_and_width_known_answers():
    import awkward as ak

    from hepfm.analysis.observables import jet_observables, nsubjettiness
    from hepfm.core.physics import p4_from_pt_eta_phi_m
    from hepfm.data.sample import build_jet_sample

    # jet 0: two particles; jet 1: three particles in three directions
    pt = np.array([300.0, 100.0, 200.0, 150.0, 50.0])
    eta = np.array([0.1, -0.2, 0.0, 0.3, -0.2])
    phi = np.array([0.0, 0.2, 0.0, 0.1, -0.25])
    counts = np.array([2, 3])
    p4 = [ak.unflatten(a, counts) for a in p4_from_pt_eta_phi_m(pt, eta, phi, 0.0)]
    sample = build_jet_sample(*p4, np.zeros(2, np.int64), ["jets"])
    tau = nsubjettiness(sample, 3)
    assert tau[0, 1] == pytest.approx(0.0, abs=1e-9) and tau[1, 2] == pytest.approx(0.0, abs=1e-9)
    assert tau[0, 2] == 0.0  # fewer constituents than axes
    # one axis along the jet: tau_1 is the pT-weighted distance to it, the width
    obs = jet_observables(sample)
    assert tau[0, 0] == pytest.approx(obs["width"][0], rel=1e-4)
    d = np.hypot(eta[:2] - sample.jet("eta")[0], phi[:2] - sample.jet("phi")[0])
    assert obs["width"][0] == pytest.approx((pt[:2] * d).sum() / pt[:2].sum(), rel=1e-4)
    assert obs["tau21"][0] == pytest.approx(0.0, abs=1e-9) and 0 < obs["tau21"][1] < 1


def test_pet_classifier_learns_weighted_classes(tmp_path):
    from conftest import synthetic_jets

    from hepfm.analysis.omnifold import PETClassifier
    from hepfm.train import TrainConfig

    jets = synthetic_jets(240, seed=3)
    narrow, wide = jets[jets.labels == 0], jets[jets.labels == 1]
    classify = PETClassifier(
        "checkpoints/pet-tiny-jetclass",
        tmp_path,
        train=TrainConfig(epochs=3, batch_size=32, lr=1e-3, patience=0, progress=False),
    )
    p = classify(narrow, np.ones(len(narrow)), wide, np.full(len(wide), 2.0), jets)
    assert p.shape == (len(jets),) and ((p >= 0) & (p <= 1)).all()
    assert p[jets.labels == 1].mean() > p[jets.labels == 0].mean() + 0.3
    assert classify.calls == 1 and (tmp_path / "step-1" / "model.safetensors").exists()


# ------------------------------------------------------------------------- jets: tables, closure, figures


def test_paired_jets_read_both_levels_of_one_production(paired_dataset):
    from hepfm.analysis.omnifold import paired_jets
    from hepfm.data import read_jets

    # 30 jets for one worker: two shards of 15, the production of the fixture, found complete
    truth, reco = paired_jets(
        paired_dataset, 30, seed=4, settings=["TimeShower:alphaSvalue = 0.118"], max_particles=16, progress=False
    )
    assert len(truth) == len(reco) == 30 and truth.mask.shape[1] == reco.mask.shape[1] == 16
    np.testing.assert_array_equal(
        truth.particles, read_jets(paired_dataset, level="particle", max_particles=16).particles
    )
    np.testing.assert_array_equal(reco.particles, read_jets(paired_dataset, max_particles=16).particles)


def test_w1_table_and_closure_summary_known_answers():
    from hepfm.analysis.omnifold import (
        OmniFoldResult,
        closure_summary,
        format_w1_table,
        w1_distances,
        w1_last_over_prior,
        w1_table,
    )

    sim = {"mass": np.array([1.0, 2.0, 3.0, 4.0]), "width": np.array([0.1, 0.2, 0.3, 0.4])}
    truth = {"mass": np.array([2.0, 3.0, 4.0, 5.0]), "width": np.array([0.1, 0.2, 0.3, 0.4])}
    keys = ["mass", "width"]
    assert w1_distances(sim, truth, keys=keys) == {"mass": pytest.approx(1.0), "width": 0.0}
    # weights keeping only {3, 4}: W1 to the uniform {2, 3, 4, 5} is 1/4 + 0 + 1/4
    results = {
        "a": OmniFoldResult(push=[np.ones(4), np.array([0.0, 0.0, 2.0, 2.0])]),
        "b": OmniFoldResult(push=[np.array([0.0, 1.0, 1.0, 2.0])]),
    }
    table = w1_table(sim, truth, results, keys=keys)
    assert list(table) == ["prior", "a iteration 1", "a iteration 2", "b iteration 1"]
    assert table["a iteration 1"] == table["prior"]
    assert table["a iteration 2"]["mass"] == pytest.approx(0.5)
    assert table["a iteration 2"]["width"] == pytest.approx(0.1)  # {0.3, 0.4} against the uniform four
    ratios = w1_last_over_prior(table, results)
    assert ratios["a"]["mass"] == pytest.approx(0.5) and set(ratios) == {"a", "b"}
    assert np.isnan(ratios["a"]["width"])  # the prior already matches: no ratio
    assert ratios["b"]["mass"] == pytest.approx(table["b iteration 1"]["mass"])
    text = format_w1_table(table).splitlines()
    assert len(text) == 5 and text[0].split() == ["W1", "to", "the", "truth", "mass", "width"]
    assert text[3].split()[-2:] == ["0.5", "0.1"]
    closure = closure_summary(np.ones(4), sim, table["prior"], keys=keys)
    assert closure == {
        "weight_mean": 1.0,
        "weight_std": 0.0,
        "w1_to_sim_truth": {"mass": 0.0, "width": 0.0},
        "w1_sim_vs_data_truth": table["prior"],
    }
    assert closure_summary(np.array([0.5, 1.5, 0.5, 1.5]), sim, {}, keys=keys)["weight_std"] == pytest.approx(0.5)


def test_unfolded_and_w1_figures():
    from hepfm.analysis.observables import OBSERVABLE_RANGES
    from hepfm.analysis.omnifold import OmniFoldResult, unfolded_figure, w1_figure, w1_table

    rng = np.random.default_rng(0)
    keys = list(OBSERVABLE_RANGES)
    lo, hi = OBSERVABLE_RANGES["mass"]
    sim = {k: rng.uniform(*OBSERVABLE_RANGES[k], 400) for k in keys}
    truth = {k: rng.uniform(*OBSERVABLE_RANGES[k], 300) for k in keys}
    # weights that make the simulated mass histogram the truth's: each bin reweighted to the truth's fraction
    edges = np.linspace(lo, hi, 26)
    sim_counts, truth_counts = np.histogram(sim["mass"], edges)[0], np.histogram(truth["mass"], edges)[0]
    bin_of = np.clip(np.digitize(sim["mass"], edges) - 1, 0, 24)
    exact = truth_counts[bin_of] / sim_counts[bin_of]
    results = {
        "pretrained": OmniFoldResult(push=[np.ones(400), exact]),
        "scratch": OmniFoldResult(push=[np.ones(400)]),
    }
    fig = unfolded_figure(truth, sim, results)
    axes = np.array(fig.axes).reshape(2, len(keys))
    labels = axes[0, 0].get_legend_handles_labels()[1]
    assert labels == [
        "data truth",
        "simulation (prior)",
        "unfolded, pretrained",
        "unfolded, scratch",
        "pretrained, iteration 1",
    ]
    ratios = {
        line.get_label(): line.get_ydata() for line in axes[1, 0].get_lines() if not line.get_label().startswith("_")
    }
    assert set(ratios) == {"simulation (prior)", "unfolded, pretrained", "unfolded, scratch"}
    np.testing.assert_allclose(ratios["unfolded, pretrained"], 1.0)  # the exact weights close on the truth
    assert np.abs(ratios["simulation (prior)"] - 1).max() > 0.1
    assert axes[1, 0].get_ylim() == (0.5, 1.5) and axes[1, 0].get_xlabel() == "Jet mass [GeV]"
    only = unfolded_figure(truth, sim, results, ranges={"mass": (lo, hi)}, iterations_of=None)
    assert len(only.axes) == 2 and "pretrained, iteration 1" not in only.axes[0].get_legend_handles_labels()[1]

    table = w1_table(sim, truth, results)
    fig = w1_figure(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == keys
    bars = {c.get_label(): [b.get_height() for b in c] for c in ax.containers}
    assert list(bars) == ["prior", "pretrained iteration 1", "pretrained iteration 2", "scratch iteration 1"]
    np.testing.assert_allclose(bars["prior"], 1.0)
    np.testing.assert_allclose(
        bars["pretrained iteration 2"], [table["pretrained iteration 2"][k] / table["prior"][k] for k in keys]
    )


def test_unfold_with_pet_classifiers_closes_on_the_simulation(paired_dataset, tmp_path):
    from hepfm.analysis.omnifold import PETClassifier, pet_classifiers, unfold
    from hepfm.data import read_jets
    from hepfm.train import TrainConfig, load_checkpoint

    truth, reco = (
        read_jets(paired_dataset, level="particle", max_particles=16),
        read_jets(paired_dataset, max_particles=16),
    )
    config = TrainConfig(epochs=1, batch_size=16, lr=1e-3, patience=0, progress=False, device="cpu")
    step1, step2 = pet_classifiers("checkpoints/pet-tiny-jetclass", tmp_path / "c", from_scratch=True, train=config)
    assert isinstance(step1, PETClassifier) and step1.from_scratch and step2.out == tmp_path / "c" / "step2"
    said = []
    result = unfold(
        "checkpoints/pet-tiny-jetclass",
        truth,
        reco,
        reco,
        tmp_path / "u",
        iterations=1,
        train=config,
        progress=said.append,
    )
    assert len(result.push) == len(result.pull) == 1 and result.weights.shape == (30,)
    assert result.weights.sum() == pytest.approx(30.0)  # normalised to the data
    assert said == ["iteration 1: step 1 (detector level)", "iteration 1: step 2 (particle level)"]
    for step in ("step1", "step2"):
        recorded = load_checkpoint(tmp_path / "u" / step / "step-1")
        assert recorded.config["pretrained"] is not None and recorded.config["class_names"] == ["class 0", "class 1"]
