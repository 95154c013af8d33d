"""Time to a target accuracy and one pretraining amortised over tasks, on hand-made scan tables."""

from __future__ import annotations

import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest

from hepfm.analysis.amortisation import (
    Amortisation,
    amortisation_figure,
    amortise,
    pretraining_seconds,
    target_accuracy,
    task_auc_figure,
    task_efficiency,
    task_scan_figure,
    time_to_target,
)
from hepfm.analysis.scan import summarise
from hepfm.core.errors import CheckpointError, DataError, OptionError
from hepfm.train.checkpoint import load_checkpoint


def _run(mode, size, seed, accuracies, seconds, auc=0.8):
    history = [
        {"epoch": i, "val_accuracy": a, "wall_seconds": s}
        for i, (a, s) in enumerate(zip(accuracies, seconds, strict=True))
    ]
    return {
        "mode": mode,
        "size": size,
        "seed": seed,
        "history": history,
        "auc": auc,
        "accuracy": max(accuracies),
        "rej30": 10.0,
        "rej50": 5.0,
    }


@pytest.fixture
def rows():
    return [
        # the largest size: scratch's best accuracies 0.8 and 0.9, so a 0.9 target fraction asks for 0.765
        _run("scratch", 100, 0, [0.6, 0.7, 0.8], [1.0, 2.0, 3.0], auc=0.70),
        _run("scratch", 100, 1, [0.5, 0.9], [1.5, 3.0], auc=0.74),
        _run("pretrained", 100, 0, [0.85, 0.9], [0.5, 1.0], auc=0.90),
        _run("pretrained", 100, 1, [0.7, 0.75], [0.6, 1.2], auc=0.86),  # never reaches 0.765
        _run("frozen", 100, 0, [0.6, 0.62], [0.2, 0.4], auc=0.80),  # never either
        # a smaller size, which the target at 100 must not see
        _run("scratch", 10, 0, [1.0], [0.1], auc=0.60),
        _run("pretrained", 10, 0, [0.9], [0.1], auc=0.85),
        _run("frozen", 10, 0, [0.9], [0.1], auc=0.82),
    ]


def test_target_accuracy_is_a_fraction_of_the_references_mean_best(rows):
    assert target_accuracy(rows, 100, 0.9) == pytest.approx(0.9 * 0.85)
    assert target_accuracy(rows, 100, 1.0, reference="pretrained") == pytest.approx((0.9 + 0.75) / 2)
    assert target_accuracy(rows, 10, 0.5) == pytest.approx(0.5)
    with pytest.raises(DataError, match="no 'scratch' run at size 1000"):
        target_accuracy(rows, 1000, 0.9)


def test_time_to_target_counts_seeds_and_takes_medians_of_those_that_reach_it(rows):
    reach = time_to_target(rows, 100, 0.765)
    assert reach["scratch"] == {"reached": 2, "of": 2, "median_seconds": 3.0, "median_epochs": 2.5}
    assert reach["pretrained"] == {"reached": 1, "of": 2, "median_seconds": 0.5, "median_epochs": 1.0}
    assert reach["frozen"] == {"reached": 0, "of": 1, "median_seconds": None, "median_epochs": None}
    eff = task_efficiency(rows, 100, 0.9)
    assert eff["target_accuracy"] == pytest.approx(0.765)
    assert {k: v for k, v in eff.items() if k != "target_accuracy"} == reach


def test_amortise_adds_one_pretraining_to_the_pretrained_modes_only(rows):
    other = {
        "target_accuracy": 0.7,
        "pretrained": {"reached": 1, "of": 1, "median_seconds": 2.0, "median_epochs": 1.0},
        "scratch": {"reached": 1, "of": 1, "median_seconds": 10.0, "median_epochs": 5.0},
        "frozen": {"reached": 1, "of": 1, "median_seconds": 4.0, "median_epochs": 2.0},
    }
    efficiency = {"a": task_efficiency(rows, 100, 0.9), "b": other}
    shared = amortise(efficiency, 100.0, ["pretrained", "scratch", "frozen"])
    assert shared.totals == {"pretrained": 2.5, "scratch": 13.0}  # frozen misses the target in task a
    assert shared.with_pretraining == {"pretrained": 102.5, "scratch": 13.0}
    assert shared.pretraining_seconds == {"pretrained": 100.0, "frozen": 100.0} and shared.efficiency == efficiency
    text = str(shared)
    assert "a: target accuracy 0.765; reached by scratch 2/2 in 3.0 s, pretrained 1/2 in 0.5 s, frozen 0/1" in text
    assert "one pretraining: 100 s" in text
    assert "with pretraining:    102.5 s" in text
    # 10.5 s saved over two tasks: 100 s of pretraining pays for itself after 100 / 5.25 tasks like these
    assert shared.break_even() == {"pretrained": pytest.approx(100 / 5.25)}
    assert "pays for itself after 19.0 tasks" in text
    slower = amortise(
        {"b": {**other, "pretrained": {**other["pretrained"], "median_seconds": 12.0}}},
        100.0,
        ["pretrained", "scratch"],
    )
    assert slower.break_even() == {"pretrained": None} and "never pays for itself" in str(slower)
    # whichever modes do not start from the pretraining pay nothing for it
    both = amortise(efficiency, 100.0, ["pretrained", "scratch"], from_scratch=("scratch", "pretrained"))
    assert both.with_pretraining == both.totals
    assert amortise(efficiency, 100.0, ["pretrained", "not run"]).totals == {"pretrained": 2.5}
    # two pretrainings of different cost (multiclass and multilabel): each mode pays for its own
    apart = amortise(efficiency, {"pretrained": 100.0, "frozen": 40.0}, ["pretrained", "frozen", "scratch"])
    assert apart.with_pretraining == {"pretrained": 102.5, "scratch": 13.0}
    assert "pretraining: pretrained 100 s, frozen 40 s" in str(apart)
    with pytest.raises(OptionError, match="pretraining_seconds: .*'frozen'"):
        amortise(efficiency, {"pretrained": 100.0}, ["pretrained", "frozen", "scratch"])


def test_pretraining_seconds_of_a_checkpoint(tmp_path):
    recorded = json.loads((load_checkpoint("event-gnn-multiclass").path / "metrics.json").read_text())
    assert pretraining_seconds("event-gnn-multiclass") == recorded["wall_seconds"] > 0
    copy = tmp_path / "ckpt"
    shutil.copytree(load_checkpoint("event-gnn-multiclass").path, copy)
    (copy / "metrics.json").write_text(json.dumps({"epochs_run": 3}))
    with pytest.raises(CheckpointError, match="'wall_seconds' is None"):
        pretraining_seconds(copy)
    (copy / "metrics.json").unlink()
    with pytest.raises(CheckpointError, match="metrics.json: missing"):
        pretraining_seconds(copy)


def test_figures_of_the_tasks_and_the_amortisation(rows):
    summary = summarise(rows)
    fig = task_scan_figure(summary, "task a")
    assert [ax.get_title() for ax in fig.axes] == ["task a", "task a"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["Labelled training events"] * 2
    assert len(fig.axes[0].lines) == 3  # one line per mode
    plt.close(fig)
    modes = ["pretrained", "scratch", "frozen"]
    fig = task_auc_figure({"a": summary, "b": summary}, modes, (10, 100))
    assert [ax.get_title() for ax in fig.axes] == ["10 labelled events", "100 labelled events"]
    heights = [p.get_height() for p in fig.axes[1].patches]
    np.testing.assert_allclose(heights, [0.88, 0.88, 0.72, 0.72, 0.80, 0.80])  # per mode, then per task
    plt.close(fig)
    shared = Amortisation(100.0, {"pretrained": 2.5, "scratch": 13.0}, {"pretrained": 102.5, "scratch": 13.0})
    fig = amortisation_figure(shared)
    bars = [(p.get_y(), p.get_height()) for p in fig.axes[0].patches]
    assert bars == [(0.0, 2.5), (0.0, 13.0), (2.5, 100.0), (13.0, 0.0)]
    plt.close(fig)
