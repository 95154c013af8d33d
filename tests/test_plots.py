"""Figures of classifiers and event content: what each panel shows, where, and at which size."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from hepfm.analysis.plots import class_fraction_plot, confusion_plot, label_auc_plot, multiplicity_plot


@pytest.fixture(autouse=True)
def _no_display():
    plt.switch_backend("Agg")
    yield
    plt.close("all")


def _ticks(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def test_confusion_plot_puts_true_class_on_x_and_predicted_on_y():
    confusion = np.array([[0.8, 0.2, 0.0], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])  # [true, predicted]
    fig = confusion_plot(confusion, ["QCD", "Wqq", "Tbqq"])
    ax, colorbar = fig.axes
    width, height = fig.get_size_inches()
    assert height == 8.0 and 9.0 <= width <= 10.0  # mplhep widens the figure for the colour bar beside it
    assert colorbar.get_ylim() == pytest.approx((0.0, 1.0))
    assert ax.get_xlabel() == "True class" and ax.get_ylabel() == "Predicted class (fraction of the true class)"
    assert _ticks(ax.xaxis) == _ticks(ax.yaxis) == ["QCD", "Wqq", "Tbqq"]
    cells = np.asarray(ax.collections[0].get_array()).reshape(3, 3)  # [row = y = predicted, column = x = true]
    np.testing.assert_allclose(cells, confusion.T)
    assert cells[1, 0] == 0.2  # true QCD called Wqq: above the QCD tick, level with Wqq
    np.testing.assert_allclose(cells.sum(0), 1.0)  # each true class (column) is a distribution


def test_confusion_plot_of_processes_with_counts():
    fig = confusion_plot([[3, 1], [0, 4]], ["ttH", "ttbar"], what="process", normalised=False, figsize=(10, 9))
    ax = fig.axes[0]
    width, height = fig.get_size_inches()
    assert height == 9.0 and 10.0 <= width <= 11.0
    assert ax.get_xlabel() == "True process" and ax.get_ylabel() == "Predicted process"
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).reshape(2, 2), [[3, 0], [1, 4]])


def test_multiplicity_plot_normalises_each_class_per_panel():
    counts = {"jets": np.array([3, 1, 0, 5]), "btag": np.array([2, 0, 0, 1]), "leptons": np.array([1, 1, 2, 12])}
    fig = multiplicity_plot(counts, [0, 0, 1, 1], ["ttH", "WZ"])
    assert tuple(fig.get_size_inches()) == (21.0, 6.0) and len(fig.axes) == 3
    assert [ax.get_xlabel() for ax in fig.axes] == ["Jets", "b-tagged jets", "Isolated leptons"]
    jets = [p.get_data() for p in fig.axes[0].patches]  # one histogram per class
    np.testing.assert_array_equal(jets[0].edges, np.arange(11))
    np.testing.assert_allclose(jets[0].values[[1, 3]], [0.5, 0.5])  # ttH: one event with 1 jet, one with 3
    np.testing.assert_allclose(jets[1].values[[0, 5]], [0.5, 0.5])
    leptons = [p.get_data().values for p in fig.axes[2].patches]
    assert leptons[1][2] == 1.0  # WZ's 12-lepton event lies beyond the last bin and is left out
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["ttH", "WZ"]
    assert fig.axes[1].get_legend() is None


def test_label_auc_plot_bars_and_range():
    aucs = {"top": 0.9, "W": 0.75, "photon": 0.3}
    fig = label_auc_plot(aucs)
    ax = fig.axes[0]
    assert tuple(fig.get_size_inches()) == (9.0, 5.5)
    assert [b.get_height() for b in ax.patches] == [0.9, 0.75, 0.3]
    assert _ticks(ax.xaxis) == ["top", "W", "photon"]
    assert ax.get_ylim() == pytest.approx((0.25, 1.0))  # a bar below a random guess still shows
    assert ax.get_ylabel() == "AUC on fresh events"
    assert label_auc_plot({"top": 0.9, "W": 0.8}).axes[0].get_ylim() == pytest.approx((0.5, 1.0))


def test_class_fraction_plot_with_and_without_truth():
    called = {"ttbar": 0.25, "Wjets": 0.75}
    truth = {"truth_fraction": {"top": 0.0, "W": 0.99}, "mean_predicted": {"top": 0.1, "W": 0.6}}
    fig = class_fraction_plot(called, truth)
    left, right = fig.axes
    assert tuple(fig.get_size_inches()) == (19.0, 5.8)
    assert [b.get_height() for b in left.patches] == [0.25, 0.75] and _ticks(left.xaxis) == ["ttbar", "Wjets"]
    assert [b.get_height() for b in right.patches] == [0.0, 0.99, 0.1, 0.6]  # truth bars, then the model's
    assert _ticks(right.xaxis) == ["top", "W"]
    assert [t.get_text() for t in right.get_legend().get_texts()] == [
        "generator truth of the file",
        "multilabel model, mean",
    ]
    alone = class_fraction_plot(called)
    assert alone.axes[0].get_visible() and not alone.axes[1].get_visible()
