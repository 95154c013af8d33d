"""Four-vector and feature helpers shared by the data factory, the readers and the models.

All functions are pure numpy and work element-wise on arrays of any shape (and on the flat
contents of awkward arrays). Angles are in radians, momenta and energies in GeV.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EPS",
    "delta_phi",
    "delta_r",
    "pt_eta_phi",
    "p4_from_pt_eta_phi_m",
    "p4_from_pt_y_phi_m",
    "mass",
    "pdg_charge",
    "pdg_mass",
]

EPS = 1e-8  # clamp for logarithms and divisions; far below any physical momentum in GeV


def delta_phi(phi1, phi2):
    """Azimuthal difference wrapped into [-pi, pi).

    >>> round(float(delta_phi(3.0, -3.0)), 6)
    -0.283185
    """
    return (np.asarray(phi1) - np.asarray(phi2) + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """Angular distance sqrt(deta^2 + dphi^2), with dphi wrapped into [-pi, pi].

    >>> round(float(delta_r(0.0, 0.0, 0.3, 0.4)), 12)
    0.5
    >>> round(float(delta_r(0.0, 3.1, 0.0, -3.1)), 4)  # across phi = pi: 2 pi - 6.2
    0.0832
    """
    return np.hypot(np.asarray(eta1) - np.asarray(eta2), delta_phi(phi1, phi2))


def pt_eta_phi(px, py, pz):
    """Transverse momentum, pseudorapidity and azimuth from Cartesian momenta.

    Pseudorapidity uses asinh(pz/pt), finite for every pt > 0; a particle with pt = 0 gets
    eta = +-1e4 rather than infinity.

    >>> [round(float(v), 6) for v in pt_eta_phi(3.0, 4.0, 0.0)]
    [5.0, 0.0, 0.927295]
    """
    px, py, pz = np.asarray(px), np.asarray(py), np.asarray(pz)
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, EPS))
    eta = np.clip(eta, -1e4, 1e4)
    phi = np.arctan2(py, px)
    return pt, eta, phi


def p4_from_pt_eta_phi_m(pt, eta, phi, m=0.0):
    """(px, py, pz, E) from (pt, eta, phi, mass).

    >>> [round(float(v), 6) for v in p4_from_pt_eta_phi_m(1.0, 0.0, 0.0, 0.0)]
    [1.0, 0.0, 0.0, 1.0]
    """
    pt, eta, phi, m = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, m))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    return px, py, pz, energy


def p4_from_pt_y_phi_m(pt, y, phi, m=0.0):
    """(px, py, pz, E) from (pt, rapidity y, phi, mass), as EnergyFlow stores particles.

    >>> [round(float(v), 6) for v in p4_from_pt_y_phi_m(3.0, 0.0, 0.0, 4.0)]
    [3.0, 0.0, 0.0, 5.0]
    """
    pt, y, phi, m = (np.asarray(a, dtype=np.float64) for a in (pt, y, phi, m))
    mt = np.sqrt(pt**2 + m**2)
    return pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)


def mass(px, py, pz, energy):
    """Invariant mass, with a slightly negative m^2 from rounding clamped to zero.

    >>> float(mass(0.0, 0.0, 3.0, 5.0))
    4.0
    """
    m2 = np.asarray(energy) ** 2 - np.asarray(px) ** 2 - np.asarray(py) ** 2 - np.asarray(pz) ** 2
    return np.sqrt(np.maximum(m2, 0.0))


# Charges (units of e) of the stable particles a generator leaves in the final state; other ids are
# resolved through Pythia8's particle table by the factory and never reach these helpers.
_CHARGE: dict[int, float] = {
    11: -1,
    13: -1,
    15: -1,
    211: 1,
    321: 1,
    2212: 1,
    3112: -1,
    3222: 1,
    3312: -1,
    3334: -1,
    12: 0,
    14: 0,
    16: 0,
    22: 0,
    111: 0,
    130: 0,
    310: 0,
    2112: 0,
    3122: 0,
    3212: 0,
    3322: 0,
}
_MASS: dict[int, float] = {
    11: 0.000511,
    13: 0.10566,
    211: 0.13957,
    321: 0.49368,
    2212: 0.93827,
    2112: 0.93957,
    130: 0.49761,
    310: 0.49761,
    3122: 1.11568,
    3112: 1.19745,
    3222: 1.18937,
    3312: 1.32171,
    3322: 1.31486,
    3334: 1.67245,
    22: 0.0,
    111: 0.13498,
}


def _lookup(table: dict[int, float], pid, signed: bool) -> np.ndarray:
    pid = np.asarray(pid).astype(np.int64)
    apid = np.abs(pid)
    keys = np.array(sorted(table), dtype=np.int64)
    vals = np.array([table[k] for k in keys], dtype=np.float64)
    pos = np.clip(np.searchsorted(keys, apid), 0, len(keys) - 1)
    out = np.where(keys[pos] == apid, vals[pos], 0.0)
    return out * np.sign(pid) if signed else out


def pdg_charge(pid) -> np.ndarray:
    """Electric charge of final-state particles from their PDG id (0 for unknown ids).

    >>> pdg_charge([11, -11, 211, -2212, 22, 0]).tolist()
    [-1.0, 1.0, 1.0, -1.0, 0.0, 0.0]
    """
    return _lookup(_CHARGE, pid, signed=True)


def pdg_mass(pid) -> np.ndarray:
    """Mass in GeV of final-state particles from their PDG id (0 for unknown ids and id 0).

    >>> pdg_mass([211, -13, 22]).round(4).tolist()
    [0.1396, 0.1057, 0.0]
    """
    return _lookup(_MASS, pid, signed=False)
