"""Four-vector helpers against the `vector` package and analytic values."""

from __future__ import annotations

import numpy as np
import pytest
import vector

from hepfm.core.physics import (
    delta_phi,
    delta_r,
    mass,
    p4_from_pt_eta_phi_m,
    p4_from_pt_y_phi_m,
    pdg_charge,
    pt_eta_phi,
)


@pytest.fixture
def momenta():
    rng = np.random.default_rng(0)
    n = 1000
    return rng.uniform(1, 500, n), rng.uniform(-4, 4, n), rng.uniform(-np.pi, np.pi, n), rng.uniform(0, 50, n)


def test_pt_eta_phi_and_mass_match_vector(momenta):
    pt, eta, phi, m = momenta
    px, py, pz, e = p4_from_pt_eta_phi_m(pt, eta, phi, m)
    v = vector.array({"px": px, "py": py, "pz": pz, "E": e})
    got_pt, got_eta, got_phi = pt_eta_phi(px, py, pz)
    np.testing.assert_allclose(got_pt, v.pt, rtol=1e-12)
    np.testing.assert_allclose(got_eta, v.eta, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got_phi, v.phi, atol=1e-12)
    np.testing.assert_allclose(mass(px, py, pz, e), m, rtol=1e-6, atol=1e-6)


def test_rapidity_constructor_matches_vector(momenta):
    pt, y, phi, m = momenta
    px, py, pz, e = p4_from_pt_y_phi_m(pt, y, phi, m)
    v = vector.array({"px": px, "py": py, "pz": pz, "E": e})
    np.testing.assert_allclose(v.rapidity, y, atol=1e-9)
    np.testing.assert_allclose(v.mass, m, rtol=1e-6, atol=1e-5)


def test_delta_phi_wraps_and_delta_r_is_symmetric(momenta):
    _, eta, phi, _ = momenta
    d = delta_phi(phi, phi[::-1])
    assert np.all((d >= -np.pi) & (d < np.pi))
    np.testing.assert_allclose(delta_r(eta, phi, eta[::-1], phi[::-1]), delta_r(eta[::-1], phi[::-1], eta, phi))
    assert delta_phi(np.pi - 0.1, -np.pi + 0.1) == pytest.approx(-0.2)


def test_mass_of_back_to_back_photons():
    # two 100 GeV photons back to back: m = 200 GeV
    px, py, pz, e = (np.array(a) for a in ([100, -100], [0, 0], [0, 0], [100, 100]))
    assert mass(px.sum(), py.sum(), pz.sum(), e.sum()) == pytest.approx(200.0)


def test_charges_of_common_particles():
    assert pdg_charge([211, -211, 321, 2212, -2212, 11, -13, 22, 130, 2112]).tolist() == [
        1,
        -1,
        1,
        1,
        -1,
        -1,
        1,
        0,
        0,
        0,
    ]
