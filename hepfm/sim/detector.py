"""A parametric fast detector simulation with CMS-like defaults (in the spirit of Delphes' CMS card).

Input: the stable generator-level particles of many events as flat arrays. Output: particle-flow
candidates per event, the objects jets are clustered from:

* **Tracks** — charged particles within the tracker (|eta| < 2.5) are found with a pT- and
  eta-dependent efficiency and their pT smeared by sigma(pT)/pT = a (+) b*pT. Electrons and muons
  are identified with an efficiency; one that fails identification stays a charged hadron.
  Charged hadrons and electrons the tracker misses deposit their energy in the calorimeters.
* **Calorimeters** — photons (and untracked electrons) deposit in an ECAL with fine cells, neutral
  (and untracked charged) hadrons in an HCAL with coarse cells. Deposits in a cell are merged into
  one tower (energy-weighted direction), the tower energy smeared with the stochastic, noise and
  constant terms, and towers below threshold dropped. ECAL towers become photons (PDG 22), HCAL
  towers neutral hadrons (PDG 130): the merging is what brings constituent multiplicities close
  to those of Delphes-based datasets such as JetClass.
* Neutrinos never interact; muons leave no calorimeter deposit.

Event-level helpers: lepton isolation, b-tagging by truth matching with efficiency and mistag
rates, and missing transverse momentum. ``DetectorConfig(enabled=False)`` (``--detector none``)
returns the visible generator-level particles untouched: particle level, as needed for unfolding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hepfm.core.physics import delta_r, p4_from_pt_eta_phi_m, pt_eta_phi

__all__ = [
    "DetectorConfig",
    "Candidates",
    "simulate",
    "isolation",
    "btag",
    "missing_pt",
    "DETECTORS",
]

_INVISIBLE = (12, 14, 16, 1000012, 1000022, 1000039)


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the fast simulation; defaults follow the CMS detector.

    Resolutions are written as relative terms: sigma(E)/E = sqrt(stochastic^2/E + noise^2/E^2 + constant^2).
    """

    enabled: bool = True
    # Tracker: CMS silicon tracker covers |eta| < 2.5; efficiencies as Delphes' CMS card.
    tracker_eta_max: float = 2.5
    track_pt_min: float = 0.1  # below this a track loops in the 3.8 T field and is not found
    track_eff_low_pt: float = 0.70  # 0.1 < pT < 1 GeV, barrel
    track_eff_high_pt: float = 0.95  # pT > 1 GeV, barrel
    track_eff_endcap_scale: float = 0.88  # 1.5 < |eta| < 2.5 has more material
    track_res_constant: float = 0.01  # multiple scattering term of sigma(pT)/pT
    track_res_slope: float = 1.5e-4  # per GeV: curvature term of sigma(pT)/pT
    # Particle-flow candidates softer than this are dropped, tracks and towers alike: JetClass's
    # Delphes output holds almost no constituent below 1 GeV (1st percentile 0.87 GeV in its sample).
    candidate_pt_min: float = 1.0
    # Lepton identification (inside the tracker acceptance).
    electron_pt_min: float = 2.0
    electron_id_eff: float = 0.95
    muon_pt_min: float = 2.0
    muon_eta_max: float = 2.4
    muon_id_eff: float = 0.98
    # Calorimeters.
    calo_eta_max: float = 3.0
    # eta x phi cell size: between a CMS crystal (0.0174) and an HCAL tower, chosen so that the
    # constituent multiplicities of all ten classes match the real JetClass sample (notebook 00_data)
    ecal_cell: float = 0.06
    hcal_cell: float = 0.087  # CMS HCAL towers
    ecal_stochastic: float = 0.07
    ecal_noise: float = 0.35
    ecal_constant: float = 0.007
    hcal_stochastic: float = 1.5
    hcal_noise: float = 0.0
    hcal_constant: float = 0.05
    ecal_threshold: float = 0.5  # GeV, photon tower
    hcal_threshold: float = 1.0  # GeV, neutral-hadron tower
    ecal_significance: float = 2.0  # a tower must also exceed this many sigma of its resolution
    hcal_significance: float = 1.0
    # b-tagging by truth matching (CMS DeepCSV medium working point).
    btag_cone: float = 0.4
    btag_eff_b: float = 0.70
    btag_eff_c: float = 0.12
    btag_eff_light: float = 0.01
    # Isolation of leptons.
    isolation_cone: float = 0.3
    isolation_max: float = 0.15  # sum pT of other candidates / lepton pT

    def to_dict(self) -> dict:
        return asdict(self)


#: Named detector configurations selectable with ``--detector``.
DETECTORS = {"cms": DetectorConfig(), "none": DetectorConfig(enabled=False)}


@dataclass
class Candidates:
    """Particle-flow candidates of many events, flat, grouped by event.

    Attributes:
        event: (C,) int64 event number, non-decreasing.
        px, py, pz, energy: (C,) float64 GeV.
        charge: (C,) float32.
        pid: (C,) int32: +-11, +-13, 22, +-211 (charged hadron), 130 (neutral hadron); at particle
            level the generator's PDG id.
    """

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    charge: np.ndarray
    pid: np.ndarray

    def counts(self, n_events: int) -> np.ndarray:
        return np.bincount(self.event, minlength=n_events)

    def take(self, index: np.ndarray) -> Candidates:
        return Candidates(*(getattr(self, k)[index] for k in ("event", "px", "py", "pz", "energy", "charge", "pid")))


def _track_efficiency(cfg: DetectorConfig, pt: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    eff = np.where(pt > 1.0, cfg.track_eff_high_pt, cfg.track_eff_low_pt)
    eff = np.where(abs_eta > 1.5, eff * cfg.track_eff_endcap_scale, eff)
    return np.where((pt > cfg.track_pt_min) & (abs_eta < cfg.tracker_eta_max), eff, 0.0)


def _towers(cfg: DetectorConfig, rng, event, energy, eta, phi, ecal: np.ndarray):
    """Merge deposits into calorimeter cells; return tower (event, energy, eta, phi, is_ecal)."""
    cell = np.where(ecal, cfg.ecal_cell, cfg.hcal_cell)
    n_eta = int(np.ceil(2 * cfg.calo_eta_max / min(cfg.ecal_cell, cfg.hcal_cell))) + 1
    n_phi = int(np.ceil(2 * np.pi / min(cfg.ecal_cell, cfg.hcal_cell))) + 1
    ieta = np.floor((eta + cfg.calo_eta_max) / cell).astype(np.int64)
    iphi = np.floor((phi + np.pi) / cell).astype(np.int64)
    key = ((event.astype(np.int64) * n_eta + ieta) * n_phi + iphi) * 2 + ecal
    uniq, inverse = np.unique(key, return_inverse=True)
    e_sum = np.bincount(inverse, weights=energy)
    # Energy-weighted direction of the deposits; phi averaged as a vector to survive the wrap. A cell whose
    # deposits carry no energy has no direction: it is never kept (below), whatever its noise.
    with np.errstate(invalid="ignore", divide="ignore"):
        w_eta = np.bincount(inverse, weights=energy * eta) / e_sum
    w_cos = np.bincount(inverse, weights=energy * np.cos(phi))
    w_sin = np.bincount(inverse, weights=energy * np.sin(phi))
    t_ecal = (uniq % 2).astype(bool)
    t_event = uniq // (2 * n_eta * n_phi)
    sto = np.where(t_ecal, cfg.ecal_stochastic, cfg.hcal_stochastic)
    noise = np.where(t_ecal, cfg.ecal_noise, cfg.hcal_noise)
    const = np.where(t_ecal, cfg.ecal_constant, cfg.hcal_constant)
    sigma = np.sqrt(sto**2 * e_sum + noise**2 + (const * e_sum) ** 2)
    e_meas = e_sum + sigma * rng.standard_normal(len(e_sum))
    keep = (
        (e_sum > 0)
        & (e_meas > np.where(t_ecal, cfg.ecal_threshold, cfg.hcal_threshold))
        & (e_meas > np.where(t_ecal, cfg.ecal_significance, cfg.hcal_significance) * sigma)
    )
    return t_event[keep], e_meas[keep], w_eta[keep], np.arctan2(w_sin, w_cos)[keep], t_ecal[keep]


def simulate(
    cfg: DetectorConfig,
    rng: np.random.Generator,
    event: np.ndarray,
    pid: np.ndarray,
    charge: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
) -> Candidates:
    """Turn stable generator-level particles into reconstructed candidates.

    Args:
        cfg: detector parameters.
        rng: random generator (seeded per shard for reproducibility).
        event: (M,) event number of each particle, non-decreasing.
        pid, charge: (M,) PDG id and electric charge.
        px, py, pz, energy: (M,) four-momenta in GeV.

    Returns:
        :class:`Candidates` sorted by event.
    """
    apid = np.abs(pid)
    visible = ~np.isin(apid, _INVISIBLE)
    if not cfg.enabled:
        idx = np.flatnonzero(visible)
        return Candidates(
            event[idx].astype(np.int64),
            px[idx],
            py[idx],
            pz[idx],
            energy[idx],
            charge[idx].astype(np.float32),
            pid[idx].astype(np.int32),
        )

    pt, eta, phi = pt_eta_phi(px, py, pz)
    abs_eta = np.abs(eta)
    charged = (charge != 0) & visible
    is_muon = apid == 13
    is_electron = apid == 11

    tracked = charged & (rng.random(len(pt)) < _track_efficiency(cfg, pt, abs_eta))
    # Muons are found by the muon system as well; they never reach the calorimeters.
    muon_found = is_muon & (abs_eta < cfg.muon_eta_max) & (pt > cfg.muon_pt_min)
    tracked |= muon_found & charged & ~tracked & (rng.random(len(pt)) < cfg.track_eff_high_pt)

    # Tracks: smeared pT, measured direction, the particle's mass.
    t = np.flatnonzero(tracked)
    rel = np.hypot(cfg.track_res_constant, cfg.track_res_slope * pt[t])
    t_pt = pt[t] * np.exp(rel * rng.standard_normal(len(t)) - 0.5 * rel**2)
    t_m = np.sqrt(np.maximum(energy[t] ** 2 - px[t] ** 2 - py[t] ** 2 - pz[t] ** 2, 0.0))
    t_px, t_py, t_pz, t_e = p4_from_pt_eta_phi_m(t_pt, eta[t], phi[t], t_m)
    id_roll = rng.random(len(t))
    e_id = is_electron[t] & (pt[t] > cfg.electron_pt_min) & (id_roll < cfg.electron_id_eff)
    mu_id = is_muon[t] & muon_found[t] & (id_roll < cfg.muon_id_eff)
    sign = np.sign(charge[t]).astype(np.int32)
    t_pid = np.where(e_id, -11 * sign, np.where(mu_id, -13 * sign, 211 * sign)).astype(np.int32)

    # Calorimeter deposits: every visible, untracked, non-muon particle within acceptance.
    deposit = visible & ~tracked & ~is_muon & (abs_eta < cfg.calo_eta_max)
    d = np.flatnonzero(deposit)
    ecal = (apid[d] == 22) | (apid[d] == 11)
    tw_event, tw_e, tw_eta, tw_phi, tw_ecal = _towers(cfg, rng, event[d], energy[d], eta[d], phi[d], ecal)
    tw_pt = tw_e / np.cosh(tw_eta)
    tw_px, tw_py, tw_pz, tw_en = p4_from_pt_eta_phi_m(tw_pt, tw_eta, tw_phi, 0.0)

    cand = Candidates(
        event=np.concatenate([event[t], tw_event]).astype(np.int64),
        px=np.concatenate([t_px, tw_px]),
        py=np.concatenate([t_py, tw_py]),
        pz=np.concatenate([t_pz, tw_pz]),
        energy=np.concatenate([t_e, tw_en]),
        charge=np.concatenate([charge[t], np.zeros(len(tw_e))]).astype(np.float32),
        pid=np.concatenate([t_pid, np.where(tw_ecal, 22, 130)]).astype(np.int32),
    )
    pt_cand = np.hypot(cand.px, cand.py)
    keep = np.flatnonzero(pt_cand >= cfg.candidate_pt_min)
    return cand.take(keep[np.argsort(cand.event[keep], kind="stable")])


def isolation(cand: Candidates, index: np.ndarray, cone: float = 0.3) -> np.ndarray:
    """Relative isolation sum(pT of other candidates within ``cone``) / pT of the candidates ``index``.

    Args:
        cand: all candidates of the events.
        index: (L,) indices into ``cand`` of the leptons (or photons) to test.
        cone: isolation cone radius.

    Returns:
        (L,) relative isolation; a lepton is isolated when it is below ``DetectorConfig.isolation_max``.
    """
    pt, eta, phi = pt_eta_phi(cand.px, cand.py, cand.pz)
    out = np.zeros(len(index))
    bounds = np.searchsorted(cand.event, np.stack([cand.event[index], cand.event[index] + 1]))
    for k, (i, lo, hi) in enumerate(zip(index, bounds[0], bounds[1], strict=True)):
        near = delta_r(eta[lo:hi], phi[lo:hi], eta[i], phi[i]) < cone
        out[k] = (pt[lo:hi][near].sum() - pt[i]) / max(pt[i], 1e-9)
    return out


def btag(
    cfg: DetectorConfig,
    rng: np.random.Generator,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    b_eta: np.ndarray,
    b_phi: np.ndarray,
    c_eta: np.ndarray,
    c_phi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """b-tag the jets of one event by truth matching to b and c hadrons (or quarks).

    A jet within ``cfg.btag_cone`` of a b hadron has flavour 5 and is tagged with probability
    ``btag_eff_b``; else within the cone of a c hadron flavour 4 (``btag_eff_c``); else flavour 0
    (``btag_eff_light``).

    Returns:
        (tagged (J,) bool, flavour (J,) int).
    """

    def near(eta, phi):
        if len(eta) == 0:
            return np.zeros(len(jet_eta), dtype=bool)
        return (delta_r(jet_eta[:, None], jet_phi[:, None], eta[None], phi[None]) < cfg.btag_cone).any(axis=1)

    flavour = np.where(near(b_eta, b_phi), 5, np.where(near(c_eta, c_phi), 4, 0))
    eff = np.select([flavour == 5, flavour == 4], [cfg.btag_eff_b, cfg.btag_eff_c], cfg.btag_eff_light)
    return rng.random(len(jet_eta)) < eff, flavour


def missing_pt(cand: Candidates, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Missing transverse momentum: magnitude and azimuth of minus the vector sum of all candidates."""
    mpx = -np.bincount(cand.event, weights=cand.px, minlength=n_events)
    mpy = -np.bincount(cand.event, weights=cand.py, minlength=n_events)
    return np.hypot(mpx, mpy), np.arctan2(mpy, mpx)
