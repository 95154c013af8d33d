"""The fast detector model: acceptance, efficiencies, resolutions, tower merging, event helpers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hepfm.core.physics import p4_from_pt_eta_phi_m, pt_eta_phi
from hepfm.sim.detector import DetectorConfig, btag, isolation, missing_pt, simulate


def particles(pid, pt, eta, phi, event=None, m=0.0):
    pid = np.asarray(pid)
    n = len(pid)
    px, py, pz, e = p4_from_pt_eta_phi_m(np.broadcast_to(pt, n), np.broadcast_to(eta, n), np.broadcast_to(phi, n), m)
    charge = np.select([np.isin(pid, [211, -11, -13]), np.isin(pid, [-211, 11, 13])], [1.0, -1.0], 0.0)
    event = np.zeros(n, dtype=np.int64) if event is None else np.asarray(event)
    return dict(event=event, pid=pid, charge=charge, px=px, py=py, pz=pz, energy=e)


def test_particle_level_keeps_visible_particles_untouched():
    p = particles([211, 22, 12, 14, 130], 10.0, 0.3, 0.1)
    c = simulate(DetectorConfig(enabled=False), np.random.default_rng(0), **p)
    assert c.pid.tolist() == [211, 22, 130]  # neutrinos dropped
    np.testing.assert_array_equal(c.px, p["px"][[0, 1, 4]])


def test_neutrinos_and_far_forward_particles_are_lost():
    p = particles([12, 22, 211], 50.0, [0.0, 3.5, 3.2], 0.0)
    c = simulate(DetectorConfig(), np.random.default_rng(0), **p)
    assert len(c.px) == 0


def test_charged_hadron_beyond_tracker_becomes_calorimeter_tower():
    p = particles([211], 50.0, 2.8, 0.0)
    c = simulate(DetectorConfig(), np.random.default_rng(0), **p)
    assert c.pid.tolist() == [130] and c.charge.tolist() == [0.0]


def test_tracking_efficiency_matches_configuration():
    n = 20000
    cfg = DetectorConfig()
    barrel_hi = particles(np.full(n, 211), 5.0, 0.5, np.linspace(-3, 3, n), event=np.arange(n))
    c = simulate(cfg, np.random.default_rng(1), **barrel_hi)
    tracks = np.abs(c.pid) == 211
    eff = tracks.sum() / n
    assert eff == pytest.approx(cfg.track_eff_high_pt, abs=4 * np.sqrt(eff * (1 - eff) / n))
    # untracked charged hadrons are not lost: they reach the HCAL as neutral towers
    assert (c.pid == 130).sum() > 0


def test_track_momentum_resolution():
    n = 20000
    cfg = DetectorConfig(track_eff_high_pt=1.0)
    p = particles(np.full(n, 211), 100.0, 0.2, 0.0, event=np.arange(n))
    c = simulate(cfg, np.random.default_rng(2), **p)
    pt, _, _ = pt_eta_phi(c.px, c.py, c.pz)
    expected = np.hypot(cfg.track_res_constant, cfg.track_res_slope * 100.0)
    assert np.std(pt / 100.0) == pytest.approx(expected, rel=0.05)
    assert np.mean(pt) == pytest.approx(100.0, rel=1e-3)


def test_photons_in_one_cell_merge_and_calorimeter_resolution():
    # per event: two photons in one ECAL cell -> one tower carrying both energies
    n = 5000
    events = np.repeat(np.arange(n), 2)
    cfg = DetectorConfig()
    p = particles(np.full(2 * n, 22), 25.0, np.tile([0.301, 0.305], n), 0.401, event=events)
    c = simulate(cfg, np.random.default_rng(3), **p)
    assert len(c.px) == n and np.all(c.pid == 22)
    e_true = 2 * 25.0 * np.cosh(0.303)
    sigma = np.sqrt(cfg.ecal_stochastic**2 * e_true + cfg.ecal_noise**2 + (cfg.ecal_constant * e_true) ** 2)
    assert np.std(c.energy) == pytest.approx(sigma, rel=0.06)
    assert np.mean(c.energy) == pytest.approx(e_true, rel=2e-3)
    _, eta, _ = pt_eta_phi(c.px, c.py, c.pz)
    assert np.all(np.abs(eta - 0.303) < 1e-3)  # energy-weighted direction


def test_neutral_hadrons_below_threshold_are_dropped():
    p = particles([130, 130], [0.5, 40.0], [0.0, 1.0], [0.0, 1.0], event=[0, 1])
    c = simulate(DetectorConfig(), np.random.default_rng(4), **p)
    assert c.event.tolist() == [1]


def test_lepton_identification_and_muons_skip_calorimeters():
    n = 4000
    cfg = DetectorConfig()
    p = particles(np.tile([11, 13], n), 30.0, 0.1, np.linspace(-3, 3, 2 * n), event=np.arange(2 * n))
    c = simulate(cfg, np.random.default_rng(5), **p)
    n_e, n_mu = (np.abs(c.pid) == 11).sum(), (np.abs(c.pid) == 13).sum()
    assert n_e / n == pytest.approx(cfg.track_eff_high_pt * cfg.electron_id_eff, abs=0.02)
    # the muon system gives a muon missed by the tracker a second chance
    found = 1 - (1 - cfg.track_eff_high_pt) ** 2
    assert n_mu / n == pytest.approx(found * cfg.muon_id_eff, abs=0.01)
    # electrons missed by the tracker shower in the ECAL; muons never deposit
    assert not np.any(c.pid == 130)
    assert (c.pid == 22).sum() / n == pytest.approx(1 - cfg.track_eff_high_pt, abs=0.01)


def test_isolation_and_missing_pt():
    # event 0: an isolated muon and a far jet particle; event 1: a muon inside a hadron cluster
    p = particles(
        [13, 211, 13, 211, 211],
        [50.0, 20.0, 50.0, 20.0, 20.0],
        [0.0, 2.0, 0.0, 0.05, -0.05],
        [0.0, 3.0, 1.0, 1.05, 0.95],
        event=[0, 0, 1, 1, 1],
    )
    c = simulate(DetectorConfig(enabled=False), np.random.default_rng(0), **p)
    iso = isolation(c, np.array([0, 2]), cone=0.3)
    assert iso[0] == pytest.approx(0.0)
    assert iso[1] == pytest.approx(40.0 / 50.0, rel=1e-6)
    met, _ = missing_pt(c, 2)
    expected = np.hypot(c.px[:2].sum(), c.py[:2].sum())
    assert met[0] == pytest.approx(expected)


def test_btag_efficiencies():
    cfg = DetectorConfig()
    n = 30000
    rng = np.random.default_rng(6)
    jet_eta, jet_phi = np.zeros(n), np.linspace(-3, 3, n)
    b_eta, b_phi = np.array([0.0]), np.array([0.0])
    tagged, flavour = btag(cfg, rng, jet_eta, jet_phi, b_eta, b_phi, np.array([]), np.array([]))
    is_b = np.abs(jet_phi) < cfg.btag_cone
    assert np.all(flavour[is_b] == 5) and np.all(flavour[~is_b] == 0)
    assert tagged[is_b].mean() == pytest.approx(cfg.btag_eff_b, abs=0.03)
    assert tagged[~is_b].mean() == pytest.approx(cfg.btag_eff_light, abs=0.003)


def test_candidates_below_threshold_are_dropped():
    cfg = DetectorConfig(track_eff_high_pt=1.0, track_eff_low_pt=1.0)
    p = particles([211, 211, 22, 22], [0.8, 3.0, 0.9, 5.0], [0.0, 0.0, 1.0, -1.0], [0.0, 1.0, 2.0, -2.0])
    c = simulate(cfg, np.random.default_rng(0), **p)
    assert np.all(np.hypot(c.px, c.py) >= cfg.candidate_pt_min)
    assert sorted(np.abs(c.pid).tolist()) == [22, 211]


def test_a_cell_without_energy_gives_no_tower_and_no_warning():
    p = particles([22, 22], 20.0, [0.3, -1.2], [0.1, 2.0], event=[0, 1])
    p["energy"] = np.array([0.0, p["energy"][1]])  # a deposit without energy in a cell of its own
    cfg = DetectorConfig(ecal_threshold=-1.0, ecal_significance=-1e9)  # noise alone would pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = simulate(cfg, np.random.default_rng(0), **p)
    assert c.event.tolist() == [1] and np.all(np.isfinite(c.px))
