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
