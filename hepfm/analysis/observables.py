"""Jet substructure observables of a :class:`~hepfm.data.sample.JetSample`, for unfolding and validation.

* mass and constituent multiplicity (the jet features);
* width (girth): sum_i pT_i dR_i / sum_i pT_i, dR to the jet axis;
* N-subjettiness (Thaler, Van Tilburg, JHEP 03 (2011) 015) with beta = 1 on exclusive-kT axes:
  tau_N = sum_i pT_i min_k dR_ik / sum_i pT_i, and the ratios tau21 = tau_2 / tau_1, tau32 = tau_3 / tau_2.

Computed from the stored (hardest ``max_particles``) constituents.
"""

from __future__ import annotations

import warnings

import awkward as ak
import fastjet
import numpy as np

from hepfm.core.io import quiet_stdout
from hepfm.core.physics import delta_phi, p4_from_pt_eta_phi_m
from hepfm.data.sample import JetSample

__all__ = ["OBSERVABLES", "OBSERVABLE_RANGES", "jet_observables", "nsubjettiness", "observable_medians"]

#: Observables of :func:`jet_observables`, with axis labels.
OBSERVABLES = {
    "mass": "Jet mass [GeV]",
    "multiplicity": "Constituents",
    "width": "Jet width",
    "tau21": r"$\tau_{21}$",
    "tau32": r"$\tau_{32}$",
}

#: Histogram ranges of the :data:`OBSERVABLES` for jets of pT 500-1000 GeV (anti-kT R = 0.8).
OBSERVABLE_RANGES = {
    "mass": (0.0, 250.0),
    "multiplicity": (0.0, 120.0),
    "width": (0.0, 0.4),
    "tau21": (0.0, 1.0),
    "tau32": (0.0, 1.0),
}


def _constituents(sample: JetSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = sample.particle_features
    pt = np.where(sample.mask, np.exp(sample.particles[..., f.index("log_pt")].astype(np.float64)), 0.0)
    eta = sample.particles[..., f.index("deta")] + sample.jet("eta")[:, None]
    phi = sample.particles[..., f.index("dphi")] + sample.jet("phi")[:, None]
    return pt, eta.astype(np.float64), phi.astype(np.float64)


def nsubjettiness(sample: JetSample, n_max: int = 3) -> np.ndarray:
    """tau_1 ... tau_n_max (N, n_max), beta = 1, exclusive-kT axes; 0 where a jet has fewer constituents."""
    pt, eta, phi = _constituents(sample)
    counts = sample.mask.sum(1)
    tau = np.zeros((len(sample), n_max))
    for n in range(1, n_max + 1):
        ok = np.flatnonzero(counts >= n)
        if len(ok) == 0:
            continue
        m = sample.mask[ok]
        px, py, pz, e = p4_from_pt_eta_phi_m(pt[ok][m], eta[ok][m], phi[ok][m], 0.0)
        particles = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts[ok])
        with quiet_stdout(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # fastjet's note on exclusive jets of non-kT finders
            sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.kt_algorithm, 1.0))
            axes = sequence.exclusive_jets(n_jets=n)
        a_px, a_py, a_pz = (ak.to_numpy(axes[c]).astype(np.float64) for c in ("px", "py", "pz"))  # (J, n)
        a_pt = np.hypot(a_px, a_py)
        a_eta, a_phi = np.arcsinh(a_pz / np.maximum(a_pt, 1e-12)), np.arctan2(a_py, a_px)
        dr = np.hypot(eta[ok][:, :, None] - a_eta[:, None, :], delta_phi(phi[ok][:, :, None], a_phi[:, None, :]))
        tau[ok, n - 1] = (pt[ok] * dr.min(-1)).sum(1) / np.maximum(pt[ok].sum(1), 1e-12)
    return tau


def jet_observables(sample: JetSample) -> dict[str, np.ndarray]:
    """The :data:`OBSERVABLES` of every jet, (N,) each."""
    pt, _, _ = _constituents(sample)
    dr = sample.particles[..., sample.particle_features.index("delta_r")]
    tau = nsubjettiness(sample, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau21 = np.where(tau[:, 0] > 0, tau[:, 1] / tau[:, 0], 0.0)
        tau32 = np.where(tau[:, 1] > 0, tau[:, 2] / tau[:, 1], 0.0)
    return {
        "mass": sample.jet("mass").astype(np.float64),
        "multiplicity": sample.jet("n_particles").astype(np.float64),
        "width": (pt * dr).sum(1) / np.maximum(pt.sum(1), 1e-12),
        "tau21": tau21,
        "tau32": tau32,
    }


def observable_medians(observables: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """The median of every observable of every sample.

    Args:
        observables: sample name -> :func:`jet_observables` of the sample.

    Returns:
        sample name -> observable -> median.

    >>> observable_medians({"toy": {"mass": np.array([10.0, 30.0, 20.0])}})
    {'toy': {'mass': 20.0}}
    """
    return {name: {k: float(np.median(v)) for k, v in obs.items()} for name, obs in observables.items()}
