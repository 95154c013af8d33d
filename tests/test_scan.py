"""Training-size scans, convergence bookkeeping and the two-fold check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from conftest import synthetic_jets

from hepfm.analysis.scan import convergence_summary, epochs_to_reach, size_scan, summarise, two_fold
from hepfm.core.errors import OutputError
from hepfm.train import TrainConfig, pretrain

FAST = TrainConfig(epochs=2, batch_size=16, patience=0, progress=False, lr=1e-3)


def _history(losses):
    return [{"epoch": i, "val_loss": v, "wall_seconds": 10.0 * (i + 1)} for i, v in enumerate(losses)]


def test_epochs_to_reach():
    h = _history([1.0, 0.8, 0.5, 0.4])
    assert epochs_to_reach(h, 0.8) == 2 and epochs_to_reach(h, 0.1) is None


def test_summary_and_convergence_bookkeeping():
    rows = [
        {
            "mode": "scratch",
            "size": 100,
            "seed": 0,
            "auc": 0.70,
            "accuracy": 0.6,
            "rej30": 5.0,
            "rej50": 3.0,
            "history": _history([0.9, 0.7, 0.6, 0.55, 0.5, 0.5]),
        },
        {
            "mode": "scratch",
            "size": 100,
            "seed": 1,
            "auc": 0.74,
            "accuracy": 0.62,
            "rej30": 6.0,
            "rej50": 3.2,
            "history": _history([0.9, 0.7, 0.6, 0.52, 0.5, 0.49]),
        },
        {
            "mode": "pretrained",
            "size": 100,
            "seed": 0,
            "auc": 0.80,
            "accuracy": 0.7,
            "rej30": 9.0,
            "rej50": 4.0,
            "history": _history([0.55, 0.48, 0.45]),
        },
        {
            "mode": "pretrained",
            "size": 100,
            "seed": 1,
            "auc": 0.82,
            "accuracy": 0.72,
            "rej30": 10.0,
            "rej50": 4.5,
            "history": _history([0.6, 0.49, 0.47]),
        },
    ]
    s = summarise(rows)
    assert s["scratch"][100]["auc"][0] == pytest.approx(0.72)
    assert s["pretrained"][100]["auc"][1] == pytest.approx(0.0141421, rel=1e-4)  # sample std of 0.80, 0.82
    assert "rej30_lower_bound" not in s["scratch"][100]
    # no background jet passed in one seed: its rejection counts as the lower bound n_background
    rows[1] = {**rows[1], "rej30": None, "n_background": 400}
    s = summarise(rows)
    assert s["scratch"][100]["rej30"][0] == pytest.approx((5.0 + 400) / 2)
    assert s["scratch"][100]["rej30_lower_bound"] == 1
    # the fewest background jets a seed's rejection rests on, where every run records it
    assert "rej30_passing" not in s["scratch"][100]
    rows[0], rows[1] = {**rows[0], "rej30_passing": 40}, {**rows[1], "rej30_passing": 12}
    assert summarise(rows)["scratch"][100]["rej30_passing"] == 12
    rows[0] = {**rows[0], "rej30": None}  # without n_background: left out as before
    assert summarise(rows)["scratch"][100]["rej30"] == [400.0, 0.0]
    c = convergence_summary(rows)[100]
    assert [r["pretrained_epochs"] for r in c["runs"]] == [2, 2]  # 0.48 <= 0.5 and 0.49 <= 0.49
    assert [r["scratch_epochs"] for r in c["runs"]] == [5, 6]
    assert c["median_epoch_ratio"] == pytest.approx((2 / 5 + 2 / 6) / 2)


@pytest.mark.slow
def test_scan_resumes_and_two_fold(tmp_path):
    pretrain(synthetic_jets(32, seed=1), tmp_path / "pre", train=FAST)
    train, test = synthetic_jets(80, seed=2), synthetic_jets(40, seed=3)
    rows = size_scan(tmp_path / "pre", train, test, [20, 40], [0], tmp_path / "scan", FAST)
    assert {(r["mode"], r["size"]) for r in rows} == {(m, n) for m in ("pretrained", "scratch") for n in (20, 40)}
    assert all(r["n_train"] + r["n_val"] == r["size"] for r in rows)
    stamp = (tmp_path / "scan" / "scratch-n20-s0" / "metrics.json").stat().st_mtime_ns
    again = size_scan(tmp_path / "pre", train, test, [20, 40], [0], tmp_path / "scan", FAST, resume=True)
    assert (tmp_path / "scan" / "scratch-n20-s0" / "metrics.json").stat().st_mtime_ns == stamp  # not redone
    assert [r["auc"] for r in again] == [r["auc"] for r in rows]
    # the same directory with another recipe: refused before anything is trained or mixed
    with pytest.raises(ValueError, match=r"n20-s0/metrics.json: finished with another recipe .*\(epochs=2 -> 7\)"):
        size_scan(tmp_path / "pre", train, test, [20, 40], [0], tmp_path / "scan", replace(FAST, epochs=7), resume=True)
    # ... and so with another start of the new head (the runs recorded the default, auto)
    with pytest.raises(ValueError, match=r"finished with another recipe .*\(head_init='auto' -> 'probe'\)"):
        size_scan(tmp_path / "pre", train, test, [20, 40], [0], tmp_path / "scan", FAST, resume=True, head_init="probe")
    # ... and so from a retrained checkpoint of the same name, or on other test data
    pretrain(synthetic_jets(32, seed=5), tmp_path / "pre", train=FAST, overwrite=True)
    with pytest.raises(ValueError, match=r"finished with another recipe .*\(other checkpoint weights"):
        size_scan(tmp_path / "pre", train, test, [20, 40], [0], tmp_path / "scan", FAST, resume=True)
    with pytest.raises(ValueError, match=r"finished with another recipe .*other test data"):
        size_scan(tmp_path / "pre", train, synthetic_jets(40, seed=6), [20], [0], tmp_path / "scan", FAST, resume=True)
    # without resume, a directory holding runs is refused and left as it was
    with pytest.raises(OutputError, match="scan: holds 4 run.*--resume"):
        size_scan(tmp_path / "pre", train, test, [20, 40], [0], tmp_path / "scan", FAST)
    assert (tmp_path / "scan" / "scratch-n20-s0" / "metrics.json").stat().st_mtime_ns == stamp

    folds = two_fold(tmp_path / "pre", synthetic_jets(60, seed=4), tmp_path / "folds", FAST)
    for mode in ("pretrained", "scratch"):
        assert len(folds[mode]["auc_per_fold"]) == 2
        assert folds[mode]["mean_auc"] == pytest.approx(sum(folds[mode]["auc_per_fold"]) / 2)
        n_test = [
            json.loads((tmp_path / "folds" / f"{mode}-fold{k}" / "metrics.json").read_text())["n_test"] for k in (0, 1)
        ]
        assert n_test == [30, 30]


def test_scan_plot_with_infinite_rejections():
    # regression: a panel whose every rejection was infinite (stored as None) crashed the log axis
    import matplotlib

    matplotlib.use("Agg")
    from hepfm.analysis.plots import scan_plot

    summary = {
        "pretrained": {30: {"rej30": [None, None]}, 60: {"rej30": [None, None]}},
        "scratch": {30: {"rej30": [5.0, 1.0]}, 60: {"rej30": [7.0, 1.0]}},
    }
    assert len(scan_plot(summary, "rej30").axes[0].lines) == 1
    assert not scan_plot({"pretrained": summary["pretrained"]}, "rej30").axes[0].lines


@pytest.mark.parametrize("who", ["group", "scan"])  # Ctrl-C in a terminal; SIGTERM to the scan process alone
def test_a_signal_stops_a_parallel_scan_with_the_running_runs_saved(small_dataset, tmp_path, who):
    pretrain(synthetic_jets(32, seed=1), tmp_path / "pre", train=FAST)
    out = tmp_path / "scan"
    cmd = [sys.executable, "-m", "hepfm", "scan", "--checkpoint", str(tmp_path / "pre"), "--train", str(small_dataset)]
    cmd += ["--test", str(small_dataset), "--sizes", "20", "--seeds", "0,1", "--parallel-runs", "2", "--out", str(out)]
    cmd += ["--epochs", "10000", "--patience", "0", "--batch-size", "8", "--device", "cpu"]
    # its own session: Ctrl-C in a terminal signals the whole process group, the scan and its runs
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ})
    deadline = time.monotonic() + 180
    while len(list(out.glob("*/training/latest.json"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    signum = signal.SIGINT if who == "group" else signal.SIGTERM
    if who == "group":
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"stopped: {out}: stopped by {signum.name}" in err and "--resume" in err
    # the two runs in progress saved their state; the other two never started
    assert sorted(p.name for p in out.iterdir()) == ["pretrained-n20-s0", "scratch-n20-s0"], err
    assert all((out / name / "training" / "latest.json").exists() for name in ("pretrained-n20-s0", "scratch-n20-s0"))
