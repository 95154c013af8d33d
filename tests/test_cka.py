"""CKA: the defining properties, the unbiased estimator against its definition, and layer hooks."""

from __future__ import annotations

import dataclasses
import itertools
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from hepfm.analysis.cka import (
    CKA_PAIRS,
    MinibatchCKA,
    cka_between,
    cka_figure,
    cka_grids,
    cka_matrix,
    cka_summary,
    hsic_unbiased,
    layer_activations,
    linear_cka,
    probe_batches,
    representations,
    train_cka_models,
)
from hepfm.core.errors import OptionError
from hepfm.data import FeatureNormaliser, JetDataset
from hepfm.models import PET, PETConfig
from hepfm.train import TrainConfig, load_checkpoint


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


@pytest.fixture
def jet_batches(toy_jets):
    return probe_batches(JetDataset(toy_jets, FeatureNormaliser.fit(toy_jets)), 16)


def _pet(seed):
    torch.manual_seed(seed)
    return PET(PETConfig.named("tiny", n_classes=2, generative=False)).eval()


def test_probe_batches_are_full_seeded_and_cover_distinct_examples(toy_jets):
    dataset = JetDataset(toy_jets, FeatureNormaliser.fit(toy_jets))
    batches = probe_batches(dataset, 20)
    assert [len(b) for b in batches] == [20, 20, 20]  # 64 jets: the last 4 are left out
    order = np.random.default_rng(0).permutation(64)
    torch.testing.assert_close(batches[1].y, torch.as_tensor(toy_jets.labels[order[20:40]]))
    again = probe_batches(dataset, 20)
    assert all(torch.equal(a.x, b.x) for a, b in zip(batches, again, strict=True))
    assert not torch.equal(probe_batches(dataset, 20, seed=1)[0].y, batches[0].y)
    with pytest.raises(OptionError, match="at least 4"):
        probe_batches(dataset, 3)
    with pytest.raises(OptionError, match="more than the 64"):
        probe_batches(dataset, 65)


def test_representations_are_pooled_per_jet_from_each_named_layer(jet_batches):
    model = _pet(0)
    batch = jet_batches[0]
    reps = representations(model, batch)
    assert list(reps) == list(model.representation_layers())
    assert all(r.shape == (16, model.config.dim) and r.dtype == torch.float64 for r in reps.values())
    # the last transformer block, by hand: the backbone before its final norm, averaged over real particles
    captured = {}
    model.blocks[-1].register_forward_hook(lambda _m, _i, out: captured.setdefault("h", out))
    model(batch.x, batch.mask)
    m = batch.mask.double().unsqueeze(-1)
    expected = (captured["h"].double() * m).sum(1) / m.sum(1)
    torch.testing.assert_close(reps["blocks.3"], expected)


def test_cka_of_a_model_with_itself_over_its_layers_is_one_on_the_diagonal(jet_batches):
    model = _pet(0)
    grid = cka_between(model, model, jet_batches)
    n = len(model.representation_layers())
    assert grid.shape == (n, n)
    np.testing.assert_allclose(np.diag(grid), 1.0, atol=1e-9)
    np.testing.assert_allclose(grid, grid.T, atol=1e-9)
    # another random start agrees less
    other = cka_between(model, _pet(1), jet_batches)
    assert other.shape == (n, n) and np.diag(other).mean() < 0.999


def test_cka_grids_summary_and_figure(jet_batches):
    a, b = _pet(0), _pet(1)
    models = {"pretrained": a, "finetuned": a, "scratch": b, "scratch_1": b}
    grids = cka_grids(models, jet_batches)
    assert list(grids) == list(CKA_PAIRS)
    np.testing.assert_allclose(np.diag(grids["pretrained vs fine-tuned"]), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.diag(grids["scratch vs scratch (seeds 0, 1)"]), 1.0, atol=1e-9)
    np.testing.assert_allclose(grids["fine-tuned vs scratch"], cka_between(a, b, jet_batches), atol=1e-12)
    layers = list(a.representation_layers())
    summary = cka_summary(grids, layers)
    entry = summary["fine-tuned vs scratch"]
    assert list(entry["diagonal"]) == layers
    assert entry["diagonal"]["blocks.0"] == round(float(grids["fine-tuned vs scratch"][3, 3]), 4)
    assert entry["mean_diagonal"] == pytest.approx(np.diag(grids["fine-tuned vs scratch"]).mean(), abs=1e-12)
    assert summary["pretrained vs fine-tuned"]["mean_diagonal"] == pytest.approx(1.0, abs=1e-9)
    fig = cka_figure(grids, layers, "PET")
    panels = fig.axes[:3]
    assert len(fig.axes) == 4  # three grids and the colour bar
    assert [t.get_text() for t in panels[0].get_xticklabels()] == layers
    assert [ax.get_xlabel() for ax in panels] == ["scratch", "scratch_1", "finetuned"]
    assert panels[2].get_title() == "PET: pretrained vs fine-tuned"
    plt.close(fig)


def test_train_cka_models_trains_three_runs_and_reuses_finished_ones(toy_jets, tmp_path):
    train, test = toy_jets[:48], toy_jets[48:]
    cfg = TrainConfig(epochs=1, batch_size=16, patience=0, progress=False, device="cpu")
    models = train_cka_models("pet-tiny-jetclass", train, test, tmp_path, cfg)
    assert list(models) == ["pretrained", "finetuned", "scratch", "scratch_1"]
    pretrained = load_checkpoint("pet-tiny-jetclass").model()
    assert torch.equal(models["pretrained"].blocks[0].qkv.weight, pretrained.blocks[0].qkv.weight)
    assert all(models[m].head.out_features == 2 for m in ("finetuned", "scratch", "scratch_1"))
    # the fine-tuned backbone stays near the pretrained one; the two from-scratch runs start from other weights
    moved = (models["finetuned"].blocks[0].qkv.weight - pretrained.blocks[0].qkv.weight).abs().max()
    assert 0 < moved < 0.01
    assert not torch.equal(models["scratch"].blocks[0].qkv.weight, models["scratch_1"].blocks[0].qkv.weight)
    for name, seed in (("finetuned", 0), ("scratch", 0), ("scratch_1", 1)):
        assert json.loads((tmp_path / name / "metrics.json").read_text())["seed"] == seed
    stamps = {n: (tmp_path / n / "metrics.json").stat().st_mtime_ns for n in ("finetuned", "scratch", "scratch_1")}
    again = train_cka_models("pet-tiny-jetclass", train, test, tmp_path, cfg)
    assert {n: (tmp_path / n / "metrics.json").stat().st_mtime_ns for n in stamps} == stamps
    assert torch.equal(again["scratch_1"].blocks[0].qkv.weight, models["scratch_1"].blocks[0].qkv.weight)
    # another recipe: the runs are trained afresh
    train_cka_models("pet-tiny-jetclass", train, test, tmp_path, dataclasses.replace(cfg, lr=1e-4))
    assert json.loads((tmp_path / "scratch" / "metrics.json").read_text())["train_config"]["lr"] == 1e-4
