"""CKA: the defining properties, the unbiased estimator against its definition, and layer hooks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from hepfm.analysis.cka import MinibatchCKA, cka_matrix, hsic_unbiased, layer_activations, linear_cka


@pytest.fixture
def reps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12))
    y = np.tanh(x @ rng.normal(size=(12, 7))) + 0.3 * rng.normal(size=(300, 7))
    return x, y


def test_cka_of_a_representation_with_itself_is_one(reps):
    x, _ = reps
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(reps):
    x, y = reps
    q = ortho_group.rvs(12, random_state=1)
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x + 5.0, y - 2.0) == pytest.approx(base, abs=1e-10)  # centring
    # but not invariant to an anisotropic rescaling of the features
    assert abs(linear_cka(x * np.linspace(0.1, 10, 12), y) - base) > 1e-3


def test_cka_closed_form_on_small_matrices():
    # HSIC(K, L) = tr(K H L H) / (n-1)^2 with H the centring matrix; CKA is its normalised form
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, -1.0]])
    y = np.array([[2.0], [0.5], [1.0], [-1.0]])
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l = x @ x.T, y @ y.T  # noqa: E741

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    expected = hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))
    assert linear_cka(x, y) == pytest.approx(expected, abs=1e-12)
    # orthogonal one-dimensional representations: zero alignment
    assert linear_cka([[1.0], [-1.0], [1.0], [-1.0]], [[1.0], [1.0], [-1.0], [-1.0]]) == pytest.approx(0.0)


def test_unbiased_hsic_matches_its_u_statistic_definition():
    # Song et al. (2012): HSIC_1 = 1/(n)_4 * sum over distinct (i, j, q, r) of h(i, j, q, r) with
    # h = 1/4! * sum over permutations of k_tu * (l_tu + l_vw - 2 l_tv)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    k, l = x @ x.T, y @ y.T  # noqa: E741
    n = len(k)
    total = 0.0
    for idx in itertools.permutations(range(n), 4):
        t, u, v, w = idx
        total += k[t, u] * l[t, u] + k[t, u] * l[v, w] - 2 * k[t, u] * l[t, v]
    expected = total / (n * (n - 1) * (n - 2) * (n - 3))
    got = hsic_unbiased(torch.as_tensor(k), torch.as_tensor(l)).item()
    assert got == pytest.approx(expected, rel=1e-10)


def test_minibatch_cka_agrees_with_the_full_estimate(reps):
    x, y = reps
    rng = np.random.default_rng(5)
    z = rng.normal(size=x.shape)  # unrelated representation
    acc = MinibatchCKA()
    for start in range(0, 300, 60):
        sl = slice(start, start + 60)
        acc.update([x[sl], z[sl]], [y[sl], x[sl]])
    grid = acc.compute()
    assert grid.shape == (2, 2)
    assert grid[0, 1] == pytest.approx(1.0, abs=1e-9)  # x against itself
    assert grid[0, 0] == pytest.approx(linear_cka(x, y), abs=0.05)
    assert abs(grid[1, 0]) < 0.05 and linear_cka(z, y) < 0.1  # unbiased: near 0 for unrelated data


def test_layer_activations_and_cka_matrix_over_a_model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    layers = {"hidden": net[1], "out": net[2]}
    acts = layer_activations(net, layers, torch.randn(40, 5))
    assert acts["hidden"].shape == (40, 16) and acts["out"].shape == (40, 3)
    batches = [torch.randn(50, 5) for _ in range(4)]
    grid = cka_matrix(net, layers, net, layers, batches)
    np.testing.assert_allclose(np.diag(grid), 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="did not run"):
        layer_activations(net, {"other": torch.nn.Linear(2, 2)}, torch.randn(4, 5))
