"""Jet generation with PET's diffusion head, and JetNet's evaluation metrics.

Sampling (:func:`sample`) integrates the probability-flow ODE of the v-prediction diffusion of
:mod:`hepfm.train.diffusion` with the deterministic DDIM update (Song, Meng, Ermon, arXiv:2010.02502):
from pure noise at t = 1 to data at t = 0 in ``steps`` steps. Classifier-free guidance (Ho & Salimans,
arXiv:2207.12598) mixes the class-conditional and the unconditional velocity, ``v = (1 + w) v_c - w v_u``.
:func:`pet_velocity` turns a PET with its generative head into the velocity function the sampler needs.

Metrics follow JetNet (Kansal et al., arXiv:2106.11535): the 1-Wasserstein distance between real and
generated jets of the jet mass (**W1M**), of the constituent features (**W1P**, mean over features) and of
energy-flow polynomials (**W1EFP**: the five prime EFPs with four vertices and four edges, beta = 1, pT
fractions as energies; Komiske, Metodiev, Thaler, arXiv:1712.07124), computed with einsum contractions.
"""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np
import torch
from scipy.stats import wasserstein_distance

from hepfm.data.datasets import JetDataset
from hepfm.data.sample import build_jet_sample
from hepfm.data.schema import JET_FEATURES, PARTICLE_FEATURES
from hepfm.train.diffusion import alpha_sigma

__all__ = [
    "sample",
    "pet_velocity",
    "generate_like",
    "to_sample",
    "efp",
    "EFP_GRAPHS",
    "jet_efps",
    "w1",
    "w1m",
    "w1p",
    "w1efp",
    "jet_mass",
]

#: The five connected multigraphs with 4 vertices and 4 edges: JetNet's W1EFP set.
EFP_GRAPHS = {
    "square": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "triangle+leg": ((0, 1), (1, 2), (2, 0), (2, 3)),
    "path, doubled end": ((0, 1), (0, 1), (1, 2), (2, 3)),
    "path, doubled middle": ((0, 1), (1, 2), (1, 2), (2, 3)),
    "star, doubled edge": ((0, 1), (0, 1), (0, 2), (0, 3)),
}

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample(
    velocity: Velocity,
    shape: tuple[int, ...],
    mask: torch.Tensor,
    steps: int = 50,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw samples by DDIM integration of a v-prediction diffusion.

    Args:
        velocity: ``velocity(z, t) -> v`` with z (B, N, F) and t (B,) in [0, 1].
        shape: (B, N, F).
        mask: (B, N) bool, the particles to generate; padding stays zero.
        steps: integration steps (more is closer to the ODE solution).
        generator: seeds the initial noise.

    Returns:
        The generated (B, N, F), zero on padding.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    m = mask.unsqueeze(-1).to(torch.float32)
    z = torch.randn(shape, generator=generator) * m
    times = torch.linspace(1.0, 0.0, steps + 1)
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        tt = torch.full((shape[0],), float(t))
        a, s = (x.view(-1, 1, 1) for x in alpha_sigma(tt))
        v = velocity(z, tt) * m
        x_hat = a * z - s * v
        eps_hat = s * z + a * v
        a_n, s_n = (x.view(-1, 1, 1) for x in alpha_sigma(torch.full((shape[0],), float(t_next))))
        z = (a_n * x_hat + s_n * eps_hat) * m
    return z


def pet_velocity(model, mask: torch.Tensor, jet: torch.Tensor, label: torch.Tensor, guidance: float = 0.0) -> Velocity:
    """The velocity function of a PET's generative head, conditioned on normalised jet features and class.

    ``guidance`` is the classifier-free guidance weight w (0: plain conditional sampling).
    """
    model.eval()
    unconditional = torch.full_like(label, model.config.n_classes)

    def velocity(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, temb = model.body(z, mask, t)
        v = model.velocity(h, mask, jet, temb, label)
        if guidance:
            v = (1 + guidance) * v - guidance * model.velocity(h, mask, jet, temb, unconditional)
        return v

    return velocity


@torch.no_grad()
def generate_like(
    model,
    reference,
    normaliser,
    steps: int = 25,
    guidance: float = 0.0,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
):
    """Generate one jet per reference jet: same class, same jet features, same number of constituents.

    Args:
        model: a PET with its generative head.
        reference: :class:`~hepfm.data.JetSample` whose labels index ``model``'s classes.
        normaliser: the model's :class:`~hepfm.data.FeatureNormaliser`.
        steps, guidance: sampler steps and classifier-free guidance weight.

    Returns:
        A :class:`~hepfm.data.JetSample` of the generated jets (see :func:`to_sample`).
    """
    model = model.to(device).eval()
    data = JetDataset(reference, normaliser)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(data), batch_size):
        batch = data.collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        x, mask, jet, label = batch.x, batch.mask, batch.jet, batch.y
        mask, jet, label = mask.to(device), jet.to(device), label.to(device)
        v = pet_velocity(model, mask, jet, label, guidance)
        out.append(
            sample(
                lambda z, t, v=v: v(z.to(device), t.to(device)).cpu(), tuple(x.shape), mask.cpu(), steps, gen
            ).numpy()
        )
    width = reference.particles.shape[1]
    x = np.concatenate([np.pad(o, ((0, 0), (0, width - o.shape[1]), (0, 0))) for o in out])
    return to_sample(x, reference.mask, reference, normaliser)


def to_sample(x: np.ndarray, mask: np.ndarray, reference, normaliser):
    """Normalised particle features (N, P, F) of generated jets -> a JetSample in physical units.

    Massless constituents with the generated (deta, dphi, log pT) around the reference jets' axes; the
    sample's features (and jet mass) are then recomputed from those four-momenta exactly as for any other data.
    """
    phys = x * normaliser.particle_std + normaliser.particle_mean
    col = {n: phys[..., PARTICLE_FEATURES.index(n)] for n in ("deta", "dphi", "log_pt", "log_energy")}
    eta = col["deta"] + reference.jets[:, JET_FEATURES.index("eta"), None]
    phi = col["dphi"] + reference.jets[:, JET_FEATURES.index("phi"), None]
    pt = np.exp(np.clip(col["log_pt"], -10, 10))
    # massless constituents, as JetNet's metrics take them: E from the generated log E would add a spurious
    # mass to every constituent whenever it does not match pT cosh(eta) exactly
    energy = pt * np.cosh(eta)
    counts = mask.sum(1)

    def jag(a):
        return ak.unflatten(a[mask].astype(np.float64), counts)

    return build_jet_sample(
        jag(pt * np.cos(phi)),
        jag(pt * np.sin(phi)),
        jag(pt * np.sinh(eta)),
        jag(energy),
        reference.labels,
        list(reference.class_names),
        max_particles=reference.particles.shape[1],
        source=f"generated like {reference.source}",
    )


def jet_mass(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, energy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Invariant mass of the constituents of each jet (N, P arrays; padding masked)."""
    m = mask.astype(np.float64)
    px, py = (pt * np.cos(phi) * m).sum(1), (pt * np.sin(phi) * m).sum(1)
    pz, e = (pt * np.sinh(eta) * m).sum(1), (energy * m).sum(1)
    return np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))


def efp(z: np.ndarray, theta: np.ndarray, edges: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Energy-flow polynomial of a multigraph: sum over particle tuples of prod z_i prod over edges theta_ij.

    Args:
        z: (N, P) energy fractions (0 on padding).
        theta: (N, P, P) pairwise angular distances.
        edges: the multigraph's edges as vertex pairs (vertices 0 .. n-1).
    """
    n_vertices = 1 + max(max(e) for e in edges)
    letters = "abcdefgh"[:n_vertices]
    operands, subscripts = [], []
    for v in letters:
        operands.append(z)
        subscripts.append(f"N{v}")
    for i, j in edges:
        operands.append(theta)
        subscripts.append(f"N{letters[i]}{letters[j]}")
    return np.einsum(",".join(subscripts) + "->N", *operands, optimize="greedy")


def jet_efps(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The five :data:`EFP_GRAPHS` per jet, (N, 5), with z = pT fraction and theta = Delta R (beta = 1)."""
    pt = np.where(mask, pt, 0.0).astype(np.float64)
    z = pt / np.maximum(pt.sum(1, keepdims=True), 1e-12)
    deta = eta[:, :, None] - eta[:, None, :]
    dphi = (phi[:, :, None] - phi[:, None, :] + np.pi) % (2 * np.pi) - np.pi
    theta = np.hypot(deta, dphi)
    return np.stack([efp(z, theta, g) for g in EFP_GRAPHS.values()], -1)


def w1(a: np.ndarray, b: np.ndarray, a_weights: np.ndarray | None = None, b_weights: np.ndarray | None = None) -> float:
    """1-Wasserstein distance between two one-dimensional samples, optionally weighted (e.g. unfolded)."""
    return float(wasserstein_distance(np.ravel(a), np.ravel(b), a_weights, b_weights))


def w1m(mass_real: np.ndarray, mass_gen: np.ndarray) -> float:
    """W1 of the jet-mass distributions."""
    return w1(mass_real, mass_gen)


def w1p(real: np.ndarray, real_mask: np.ndarray, gen: np.ndarray, gen_mask: np.ndarray) -> list[float]:
    """W1 of each constituent feature over all real constituents: (N, P, F) arrays -> F distances."""
    return [w1(real[..., k][real_mask], gen[..., k][gen_mask]) for k in range(real.shape[-1])]


def w1efp(efps_real: np.ndarray, efps_gen: np.ndarray) -> list[float]:
    """W1 of each EFP (columns of (N, 5) arrays from :func:`jet_efps`)."""
    return [w1(efps_real[:, k], efps_gen[:, k]) for k in range(efps_real.shape[1])]
