"""Dijet events and weak supervision: clustering, SIC, weighted training, CWoLa on a toy with a known answer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import synthetic_jets

from hepfm.analysis.weak import (
    SIDEBAND_WIDTH,
    SIGNAL_REGION,
    CWoLaHunt,
    balanced_weights,
    cwola_hunt,
    cwola_splits,
    dijet_comparison_figure,
    dijet_medians,
    dijet_scores,
    generate_dijets,
    hunt_metrics,
    max_sic,
    real_data_aucs,
    regions,
    sic_curve,
    sic_figure,
    sic_limit,
    sic_summary,
    splits_figure,
    train_dijet_classifier,
)
from hepfm.core.errors import OptionError
from hepfm.core.metrics import roc_auc
from hepfm.core.physics import mass
from hepfm.data import EventSample, JetDataset, read_events
from hepfm.data.sample import JetSample
from hepfm.sim.dijets import Dijets, dijets
from hepfm.train import ClassifierObjective, TrainConfig, load_checkpoint

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
    # the same production (two shards of 12 for one worker) is found complete and clustered alike
    again = generate_dijets("Wprime_XY", 24, tmp_path / "wprime", seed=3, max_particles=16, progress=False)
    np.testing.assert_array_equal(again.mjj, out.mjj)
    assert again.jets[0].mask.shape[1] == 16 and (again.jets[0].mask.sum(1) <= 16).all()
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


# ------------------------------------------------------------------------- a hunt: splits, training, summary


def _toy_dijets(n, label, mjj, seed, first_index=0, wide=False):
    """``n`` events of two synthetic jets each (narrow, or wide with ``wide``) at the given ``mjj``."""
    jets = synthetic_jets(4 * n, seed=seed, max_particles=40)
    kind = jets[jets.labels == int(wide)]
    pair = (kind[:n], kind[n : 2 * n])
    masses = np.stack([np.full(n, 100.0 + 400.0 * wide), np.full(n, 80.0 + 20.0 * wide)], 1)
    return Dijets(
        pair,
        np.asarray(mjj, dtype=np.float64),
        np.full((n, 2), 1500.0),
        masses,
        np.full(n, label, np.int64),
        ["background", "signal"],
        np.arange(first_index, first_index + n),
        "toy",
    )


@pytest.fixture(scope="module")
def toy_events():
    """Background spread over 2.7-4.3 TeV (some outside the sidebands), signal in and around the signal region."""
    rng = np.random.default_rng(5)
    background = _toy_dijets(1000, 0, rng.uniform(2700, 4300, 1000), seed=11)
    signal = _toy_dijets(120, 1, rng.normal(3500, 250, 120), seed=12, first_index=10_000, wide=True)
    return background, signal


def test_cwola_splits_keep_every_event_once_in_its_region(toy_events):
    background, signal = toy_events
    splits = cwola_splits(background, signal, seed=0)
    sr_b, sb_b = regions(background.mjj)
    sr_s, sb_s = regions(signal.mjj)
    kept_b, kept_s = background.event_index[sr_b | sb_b], signal.event_index[sr_s | sb_s]
    data, ref, pool, test = splits.data_background, splits.reference, splits.pool, splits.test
    test_b, test_s = test.event_index[test.labels == 0], test.event_index[test.labels == 1]
    # sizes: half of the kept background is the data, half of the kept signal the pool
    assert len(data) == len(kept_b) // 2 and len(pool) == len(kept_s) // 2
    # the samples are disjoint, drawn from the kept events, and each keeps input order
    b_parts, s_parts = [data.event_index, ref.event_index, test_b], [pool.event_index, test_s]
    for parts, kept in ((b_parts, kept_b), (s_parts, kept_s)):
        joined = np.concatenate(parts)
        assert len(np.unique(joined)) == len(joined) and np.isin(joined, kept).all()
        assert all((np.diff(p) > 0).all() for p in parts)
    # every background event of the signal region is in exactly one sample; sideband events only in the data
    in_sr_b = background.event_index[sr_b]
    np.testing.assert_array_equal(
        np.sort(np.concatenate([data.event_index[splits.regions(data)[0]], ref.event_index, test_b])), in_sr_b
    )
    assert splits.regions(ref)[0].all() and splits.regions(test)[0].all()
    assert splits.regions(data)[1].any() and splits.regions(pool)[1].any()
    # every signal event of the signal region is in the pool or the test sample
    np.testing.assert_array_equal(
        np.sort(np.concatenate([pool.event_index[splits.regions(pool)[0]], test_s])), signal.event_index[sr_s]
    )
    # the split is the seeded shuffle of the kept events: background first, then signal
    rng = np.random.default_rng(0)
    order = rng.permutation(len(kept_b))
    np.testing.assert_array_equal(data.event_index, np.sort(kept_b[order[: len(kept_b) // 2]]))
    np.testing.assert_array_equal(pool.event_index, np.sort(kept_s[rng.permutation(len(kept_s))[: len(kept_s) // 2]]))
    assert not np.array_equal(cwola_splits(background, signal, seed=1).data_background.event_index, data.event_index)
    text = str(splits).splitlines()
    assert len(text) == 4 and text[1] == f"IAD reference background (signal region): {len(ref)}"
    # injection: the data background and n pool events, drawn by the seed
    injected = splits.inject(30, seed=2)
    assert len(injected) == len(data) + 30 and (injected.labels == 1).sum() == 30
    assert np.isin(injected.event_index[injected.labels == 1], pool.event_index).all()
    np.testing.assert_array_equal(injected.event_index, splits.inject(30, seed=2).event_index)
    with pytest.raises(OptionError, match="n_inject"):
        splits.inject(len(pool) + 1, seed=0)


def test_sic_summary_on_a_hand_made_table():
    def row(method, n, seed, sic, auc, s, b):
        return {
            "method": method,
            "n_inject": n,
            "seed": seed,
            "max_sic": sic,
            "auc": auc,
            "signal_in_sr": s,
            "background_in_sr": b,
        }

    rows = [
        row("pretrained", 60, 0, 2.0, 0.7, 30, 300),
        row("scratch", 60, 0, 1.0, 0.5, 30, 300),
        row("pretrained", 60, 1, 3.0, 0.8, 20, 400),
        row("scratch", 60, 1, 1.5, 0.6, 20, 400),
        row("pretrained", 200, 0, 5.0, 0.9, 100, 250),
        row("scratch", 200, 0, 4.0, 0.85, 100, 250),
        row("pretrained", 200, 1, 5.0, 0.95, 90, 300),
        row("scratch", 200, 1, 2.0, 0.75, 1, 1),  # only the first method's S/B counts
    ]
    summary = sic_summary(rows, n_test_background=1000)
    assert summary.methods == ["pretrained", "scratch"] and summary.n_inject == [60, 200]
    assert summary.max_sic["pretrained"][60] == {
        "max_sic_mean": 2.5,
        "max_sic_std": 0.5,
        "max_sic": [2.0, 3.0],
        "auc_mean": pytest.approx(0.75),
    }
    assert summary.max_sic["pretrained"][200]["max_sic_std"] == 0.0
    assert (
        summary.max_sic["scratch"][200]["max_sic_mean"] == 3.0 and summary.max_sic["scratch"][200]["max_sic_std"] == 1.0
    )
    assert summary.s_over_b == {60: pytest.approx((0.1 + 0.05) / 2), 200: pytest.approx((0.4 + 0.3) / 2)}
    assert summary.sic_limit == pytest.approx(1 / np.sqrt(25 / 1000)) == sic_limit(1000)
    assert sic_limit(400, min_background=100) == pytest.approx(2.0)
    assert str(summary).splitlines()[0] == "pretrained n=60: 2.50 ± 0.50  n=200: 5.00 ± 0.00"


def test_sic_figure_draws_the_summary_and_the_test_sample_limit():
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(400, np.int64), np.ones(100, np.int64)]
    rows, curves = [], {}
    for n in (60, 200):
        for seed in (0, 1):
            for method, strength in (("pretrained", 1.0), ("IAD", 2.0)):
                scores = rng.normal(size=len(labels)) + strength * labels * n / 200
                curves[method, n, seed] = sic_curve(labels, scores)
                rows.append(
                    {
                        "method": method,
                        "n_inject": n,
                        "seed": seed,
                        "max_sic": max_sic(labels, scores),
                        "auc": roc_auc(labels, scores),
                        "signal_in_sr": n // 2,
                        "background_in_sr": 500,
                    }
                )
    hunt = CWoLaHunt(rows, curves)
    assert hunt.methods == ["pretrained", "IAD"] and hunt.n_inject == [60, 200] and hunt.seeds == [0, 1]
    summary = sic_summary(rows, n_test_background=400)
    fig = sic_figure(hunt, summary)
    left, right = fig.axes[:2]
    lines = {line.get_label(): line for line in left.get_lines()}
    assert set(lines) == {"pretrained", "IAD", "random", "limit of the test sample"}
    np.testing.assert_allclose(lines["IAD"].get_xdata(), [60, 200])
    np.testing.assert_allclose(lines["IAD"].get_ydata(), [summary.max_sic["IAD"][n]["max_sic_mean"] for n in (60, 200)])
    np.testing.assert_allclose(lines["limit of the test sample"].get_ydata(), [sic_limit(400)] * 2)
    np.testing.assert_allclose(lines["random"].get_ydata(), [1.0, 1.0])
    assert [line.get_label() for line in right.get_lines()][:2] == ["pretrained", "IAD"]
    assert right.get_title() == "200 injected, S/B in SR = 0.200"
    # the right panel is the seed mean of the SIC curves at the largest injection
    grid = right.get_lines()[1].get_xdata()
    sics = []
    for seed in (0, 1):
        c = curves["IAD", 200, seed]
        order = np.argsort(c["eff_s"])
        sics.append(np.interp(grid, c["eff_s"][order], c["sic"][order], left=np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # efficiencies below every seed's curve
        expected = np.nanmean(sics, 0)
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), expected)
    assert sic_figure(hunt, summary, n_inject=60).axes[1].get_title().startswith("60 injected")


def test_splits_and_comparison_figures_and_medians(toy_events):
    background, signal = toy_events
    splits = cwola_splits(background, signal)
    fig = splits_figure(splits, n_show=40)
    left, right = fig.axes[:2]
    # the stack's legend lists its top first
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["W' → XY (40 injected)", "QCD dijets"]
    assert [t.get_text() for t in right.get_legend().get_texts()] == [
        "heavier jet, background",
        "heavier jet, signal",
        "lighter jet, background",
        "lighter jet, signal",
    ]
    (lo, hi), width = SIGNAL_REGION, SIDEBAND_WIDTH
    assert left.get_xlim()[0] <= lo - width and left.get_xlim()[1] >= hi + width
    samples = {
        "toy": Dijets.concatenate([background, signal]),
        "other": Dijets.concatenate([background[:50], signal[:20]]),
    }
    medians = dijet_medians(samples)
    assert list(medians) == ["toy background", "other background", "toy signal", "other signal"]
    assert medians["toy signal"] == {
        "mjj": pytest.approx(np.median(signal.mjj)),
        "heavier_jet_mass": 500.0,
        "events": 120,
    }
    assert medians["toy background"]["heavier_jet_mass"] == 100.0 and medians["toy background"]["events"] == 1000
    assert medians["other background"]["events"] == 50 and medians["other signal"]["events"] == 20
    assert medians["other background"]["mjj"] == pytest.approx(np.median(background.mjj[:50]))
    fig = dijet_comparison_figure({"toy": samples["toy"], "again": samples["toy"]})
    for ax in fig.axes[:2]:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["toy background", "again background", "toy signal", "again signal"]
        steps = [patch for patch in ax.patches if patch.get_label() in labels]
        assert [patch.get_linestyle() for patch in steps] == ["-", "--", "-", "--"]
        for patch in steps:  # densities
            values, edges = patch.get_data()[:2]
            assert (values * np.diff(edges)).sum() == pytest.approx(1.0)


def test_cwola_hunt_trains_every_method_and_scores_real_events(toy_events, tmp_path):
    background, signal = toy_events
    splits = cwola_splits(background, signal)
    config = TrainConfig(epochs=1, batch_size=64, lr=1e-3, patience=0, progress=False, device="cpu")
    said = []
    hunt = cwola_hunt(CHECKPOINT, splits, [40], [3], tmp_path / "models", train=config, progress=said.append)
    assert hunt.methods == ["pretrained", "scratch", "IAD"] and len(said) == 3 and said[0].startswith("n=  40 seed=3")
    data = splits.inject(40, seed=3)
    in_sr = splits.regions(data)[0]
    for r in hunt.rows:
        assert (r["n_inject"], r["seed"]) == (40, 3)
        assert (
            r["signal_in_sr"] == (data.labels[in_sr] == 1).sum()
            and r["background_in_sr"] == (data.labels[in_sr] == 0).sum()
        )
        model = hunt.models[r["method"], 40, 3]
        scores = dijet_scores(model, splits.test, CHECKPOINT, device="cpu")
        assert r["auc"] == pytest.approx(roc_auc(splits.test.labels, scores))
        assert r["max_sic"] == pytest.approx(max_sic(splits.test.labels, scores))
        np.testing.assert_allclose(hunt.curves[r["method"], 40, 3]["sic"], sic_curve(splits.test.labels, scores)["sic"])
        recorded = load_checkpoint(tmp_path / "models" / f"{r['method']}-n40-seed3")
        assert recorded.config["train_config"]["seed"] == 3
        assert (recorded.config["pretrained"] is None) == (r["method"] == "scratch")
    assert set(hunt.models_at(40, 3)) == {"pretrained", "scratch", "IAD"} and hunt.models_at(40, 0) == {}
    without = cwola_hunt(CHECKPOINT, splits, [40], [3], tmp_path / "again", train=config, iad=False)
    assert without.methods == ["pretrained", "scratch"]
    assert without.rows[0]["auc"] == pytest.approx(hunt.rows[0]["auc"])  # the same seed trains the same classifier
    with pytest.raises(OptionError, match="n_inject"):
        cwola_hunt(CHECKPOINT, splits, [len(splits.pool) + 1], [0], tmp_path / "none", train=config)
    summary = sic_summary(hunt.rows, int((splits.test.labels == 0).sum()))
    metrics = hunt_metrics(splits, hunt, summary)
    assert metrics["n_test"] == {
        "background": int((splits.test.labels == 0).sum()),
        "signal": int((splits.test.labels == 1).sum()),
    }
    assert metrics["n_data_background"] == len(splits.data_background) and metrics["runs"] is hunt.rows
    assert metrics["signal_region"] == list(SIGNAL_REGION) and metrics["max_sic_limit"] == summary.sic_limit
    # labelled "real" events: only those of the signal region are scored
    real = Dijets.concatenate([background, signal])
    aucs = real_data_aucs(hunt.models_at(40, 3), real, CHECKPOINT, device="cpu")
    in_sr_real = real[regions(real.mjj)[0]]
    expected = roc_auc(in_sr_real.labels, dijet_scores(hunt.models["IAD", 40, 3], in_sr_real, CHECKPOINT, device="cpu"))
    assert set(aucs) == {"pretrained", "scratch", "IAD"} and aucs["IAD"] == pytest.approx(expected)
    assert real_data_aucs(hunt.models_at(40, 3), real, CHECKPOINT, min_events=10_000) == {}
