"""Diffusion sampling, EFPs and JetNet's W1 metrics against known answers."""

from __future__ import annotations

import itertools
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from hepfm.analysis.generation import (
    EFP_GRAPHS,
    efp,
    jet_efps,
    pet_velocity,
    sample,
    w1,
    w1efp,
    w1m,
    w1p,
)
from hepfm.models import PET, PETConfig
from hepfm.train.diffusion import alpha_sigma

MU, S = 1.5, 0.5


def oracle(z, t):
    """The exact v-prediction for data x ~ N(MU, S^2) in every coordinate."""
    a, s = (x.view(-1, 1, 1) for x in alpha_sigma(t))
    x_mean = MU + a * S**2 / (a**2 * S**2 + s**2) * (z - a * MU)
    eps_mean = (z - a * x_mean) / s.clamp_min(1e-8)
    return a * eps_mean - s * x_mean


def test_ddim_with_the_exact_velocity_samples_the_data_distribution():
    mask = torch.ones(4000, 6, dtype=torch.bool)
    mask[:, 4:] = False
    x = sample(oracle, (4000, 6, 2), mask, steps=40, generator=torch.Generator().manual_seed(0))
    real = x[mask]
    assert real.mean().item() == pytest.approx(MU, abs=0.02)
    assert real.std().item() == pytest.approx(S, abs=0.02)
    assert (x[~mask] == 0).all()
    with pytest.raises(ValueError, match="steps"):
        sample(oracle, (2, 2, 1), mask[:2, :2], steps=0)


def test_pet_velocity_sampling_is_seeded_masked_and_guided():
    torch.manual_seed(0)
    model = PET(PETConfig.named("tiny", n_classes=3, generative=True))
    mask = torch.zeros(5, 12, dtype=torch.bool)
    mask[:, :7] = True
    jet, label = torch.zeros(5, model.config.n_jet_features), torch.tensor([0, 1, 2, 0, 1])

    def draw(guidance, seed=1):
        v = pet_velocity(model, mask, jet, label, guidance)
        return sample(v, (5, 12, model.config.n_features), mask, steps=4, generator=torch.Generator().manual_seed(seed))

    a, b = draw(0.0), draw(0.0)
    assert torch.equal(a, b) and (a[~mask] == 0).all() and torch.isfinite(a).all()
    assert not torch.equal(a, draw(0.0, seed=2)) and not torch.equal(a, draw(2.0))


def test_efps_of_two_particles_have_the_closed_form():
    r = 0.3
    z = np.array([[0.5, 0.5]])
    theta = np.array([[[0.0, r], [r, 0.0]]])
    expected = {
        "square": r**4 / 8,
        "triangle+leg": 0.0,
        "path, doubled end": r**4 / 8,
        "path, doubled middle": r**4 / 8,
        "star, doubled edge": r**4 / 8,
    }
    for name, edges in EFP_GRAPHS.items():
        assert efp(z, theta, edges)[0] == pytest.approx(expected[name], rel=1e-12), name


def test_efps_match_the_sum_over_particle_tuples():
    rng = np.random.default_rng(0)
    z = rng.random((1, 5))
    z /= z.sum()
    pts = rng.normal(size=(5, 2))
    theta = np.linalg.norm(pts[:, None] - pts[None], axis=-1)[None]
    for name, edges in EFP_GRAPHS.items():
        brute = 0.0
        for idx in itertools.product(range(5), repeat=4):
            term = np.prod(z[0, list(idx)])
            for i, j in edges:
                term *= theta[0, idx[i], idx[j]]
            brute += term
        assert efp(z, theta, edges)[0] == pytest.approx(brute, rel=1e-10), name


def test_jet_observables_are_invariant_under_rotations_about_the_beam():
    rng = np.random.default_rng(1)
    pt, eta, phi = rng.uniform(1, 50, (20, 8)), rng.normal(0, 0.3, (20, 8)), rng.normal(0, 0.3, (20, 8))
    mask = rng.random((20, 8)) < 0.8
    np.testing.assert_allclose(jet_efps(pt, eta, phi + 2.5, mask), jet_efps(pt, eta, phi, mask), rtol=1e-9)


def test_w1_metrics():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 20_000)
    assert w1(a, a) == 0.0 and w1m(a, b) == pytest.approx(0.5, abs=0.03)
    x = rng.normal(size=(100, 10, 3))
    mask = rng.random((100, 10)) < 0.7
    assert w1p(x, mask, x, mask) == [0.0, 0.0, 0.0]
    assert w1p(x, mask, x + [0.0, 1.0, 0.0], mask)[1] == pytest.approx(1.0)
    e = rng.random((50, 5))
    assert w1efp(e, e) == [0.0] * 5


def test_to_sample_inverts_the_normalisation(toy_jets):
    from hepfm.analysis.generation import to_sample
    from hepfm.data import FeatureNormaliser

    normaliser = FeatureNormaliser.fit(toy_jets)
    x, _ = normaliser.transform(toy_jets)
    back = to_sample(x, toy_jets.mask, toy_jets, normaliser)
    np.testing.assert_allclose(back.jet("mass"), toy_jets.jet("mass"), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(back.jet("pt"), toy_jets.jet("pt"), rtol=1e-4)
    assert back.labels.tolist() == toy_jets.labels.tolist()


def test_generate_like_keeps_classes_and_multiplicities(toy_jets):
    from hepfm.analysis.generation import generate_like
    from hepfm.data import FeatureNormaliser

    torch.manual_seed(0)
    model = PET(PETConfig.named("tiny", n_classes=2, generative=True))
    ref = toy_jets[:10]
    gen = generate_like(model, ref, FeatureNormaliser.fit(toy_jets), steps=3, batch_size=4)
    assert len(gen) == 10 and gen.labels.tolist() == ref.labels.tolist()
    assert gen.mask.sum(1).tolist() == ref.mask.sum(1).tolist()
    assert np.isfinite(gen.particles).all()


def test_constituent_kinematics_inverts_the_coordinates_of_to_sample(toy_jets):
    from hepfm.analysis.generation import constituent_kinematics, to_sample
    from hepfm.data import FeatureNormaliser

    normaliser = FeatureNormaliser.fit(toy_jets)
    x, _ = normaliser.transform(toy_jets)
    rebuilt = to_sample(x, toy_jets.mask, toy_jets, normaliser)
    pt, eta, phi = constituent_kinematics(rebuilt)
    assert pt.shape == eta.shape == phi.shape == toy_jets.mask.shape
    # the four-momenta the constituents were built from, back from (pt, eta, phi) of the rebuilt sample
    m = rebuilt.mask
    np.testing.assert_allclose(pt[m], np.exp(rebuilt.particles[..., 2][m]), rtol=1e-6)
    pt0, eta0, phi0 = constituent_kinematics(toy_jets)
    np.testing.assert_allclose(pt[m], pt0[toy_jets.mask], rtol=1e-3)
    np.testing.assert_allclose(eta[m], eta0[toy_jets.mask], atol=1e-3)
    np.testing.assert_allclose(np.cos(phi[m] - phi0[toy_jets.mask]), 1.0, atol=1e-6)
    # sum of constituent pT x cos/sin(phi) is the jet's transverse momentum
    px, py = (np.where(m, pt * f(phi), 0).sum(1) for f in (np.cos, np.sin))
    np.testing.assert_allclose(np.hypot(px, py), rebuilt.jet("pt"), rtol=1e-4)


def test_generation_scores_vanish_for_the_real_jets_and_measure_a_shift(toy_jets):
    from hepfm.analysis.generation import W1P_FEATURES, constituent_kinematics, generation_scores, score_table

    same = generation_scores(toy_jets, toy_jets)
    assert same["w1m"] == 0.0 and same["w1p"] == dict.fromkeys(W1P_FEATURES, 0.0) and same["w1efp"] == [0.0] * 5
    assert same["w1p_mean"] == 0.0 and same["w1efp_mean"] == 0.0
    shifted = toy_jets[np.arange(len(toy_jets))]
    shifted.particles = shifted.particles.copy()
    k = shifted.particle_features.index("deta")
    shifted.particles[..., k] = np.where(shifted.mask, shifted.particles[..., k] + 0.2, 0.0)
    shifted.jets = shifted.jets.copy()
    shifted.jets[:, shifted.jet_features.index("mass")] += 5.0
    scores = generation_scores(toy_jets, shifted)
    assert scores["w1m"] == pytest.approx(5.0, rel=1e-4)
    assert scores["w1p"]["deta"] == pytest.approx(0.2, rel=1e-4) and scores["w1p"]["dphi"] == 0.0
    assert scores["w1p_mean"] == pytest.approx(0.2 / 3, rel=1e-4)
    # a common shift in eta leaves the EFPs as they were, up to the float32 rounding of the shifted coordinates
    scale = jet_efps(*constituent_kinematics(toy_jets), toy_jets.mask).mean(0)
    assert (np.array(scores["w1efp"]) < 1e-4 * scale).all()
    table = score_table(toy_jets, {"same": toy_jets, "shifted": shifted})
    assert list(table) == ["same", "shifted"] and table["shifted"] == scores


def test_two_sample_halves_pair_real_and_generated_jets_without_pid(toy_jets):
    from hepfm.analysis.generation import two_sample_halves, without_pid
    from hepfm.data import DataError
    from hepfm.data.schema import PID_FEATURES

    real, gen = toy_jets[:20], toy_jets[20:40]
    first, second = two_sample_halves(real, gen)
    assert len(first) == len(second) == 20 and first.class_names == ["real", "generated"]
    assert first.labels.tolist() == [0] * 10 + [1] * 10
    order = np.random.default_rng(0).permutation(20)
    np.testing.assert_array_equal(first.jets[:10], real.jets[order[:10]])
    np.testing.assert_array_equal(first.jets[10:], gen.jets[order[:10]])
    np.testing.assert_array_equal(second.mask[10:], gen.mask[order[10:]])
    assert not first.has_pid and (first.particles[..., list(PID_FEATURES)] == 0).all()
    assert (toy_jets.particles[..., list(PID_FEATURES)] != 0).any()  # the input had them
    np.testing.assert_array_equal(without_pid(real)[..., :7], real.particles[..., :7])
    with pytest.raises(DataError, match="19 generated jets for 20 real ones"):
        two_sample_halves(real, gen[:19])


def test_two_sample_auc_of_jets_against_themselves_is_one_half(toy_jets, tmp_path):
    from hepfm.analysis.generation import two_sample_auc
    from hepfm.train import TrainConfig

    jets = toy_jets[:24]
    cfg = TrainConfig(epochs=1, batch_size=16, patience=0, progress=False, device="cpu")
    auc = two_sample_auc("pet-tiny-jetclass", jets, jets, tmp_path / "test", cfg)
    # every real jet has an identical generated twin: only the twins' order is left to chance (1 / 12 each)
    assert auc == pytest.approx(0.5, abs=0.5 / 12 + 1e-9)
    assert json.loads((tmp_path / "test" / "metrics.json").read_text())["n_test"] == 24


def test_generation_figures(toy_jets):
    from hepfm.analysis.generation import jet_mass_figure, score_table, scores_figure

    generated = {"a": toy_jets, "b": toy_jets[np.arange(len(toy_jets))[::-1]]}
    fig = jet_mass_figure(toy_jets, generated)
    assert [ax.get_title() for ax in fig.axes] == ["narrow", "wide"]
    assert len(fig.axes[0].get_legend().get_texts()) == 3  # real and two generators
    plt.close(fig)
    fig = scores_figure(score_table(toy_jets, {"a": toy_jets}))
    assert [ax.get_ylabel() for ax in fig.axes] == ["W1M [GeV]", "W1P (mean)", "W1EFP (mean)"]
    assert [p.get_height() for p in fig.axes[0].patches] == [0.0]
    plt.close(fig)
