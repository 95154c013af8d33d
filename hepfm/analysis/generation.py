"""Jet generation with PET's diffusion head, and JetNet's evaluation metrics.

Sampling (:func:`sample`) integrates the probability-flow ODE of the v-prediction diffusion of
:mod:`hepfm.train.diffusion` with the deterministic DDIM update (Song, Meng, Ermon, arXiv:2010.02502):
from pure noise at t = 1 to data at t = 0 in ``steps`` steps. Classifier-free guidance (Ho & Salimans,
arXiv:2207.12598) mixes the class-conditional and the unconditional velocity, ``v = (1 + w) v_c - w v_u``.
:func:`pet_velocity` turns a PET with its generative head into the velocity function the sampler needs.

Metrics follow JetNet (Kansal et al., arXiv:2106.11535): the 1-Wasserstein distance between real and
generated jets of the jet mass (**W1M**), of the constituent features (**W1P**, mean over features) and of
energy-flow polynomials (**W1EFP**: the five prime EFPs with four vertices and four edges, beta = 1, pT
fractions as energies; Komiske, Metodiev, Thaler, arXiv:1712.07124), computed with einsum contractions;
:func:`generation_scores` and :func:`score_table` collect them per generator. The classifier two-sample test
(:func:`two_sample_auc`; Lopez-Paz & Oquab, arXiv:1610.06545) trains a PET to tell generated from real jets:
its test AUC is 0.5 for a perfect generator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.stats import wasserstein_distance

from hepfm.core.errors import DataError
from hepfm.data.datasets import JetDataset
from hepfm.data.sample import JetSample, build_jet_sample
from hepfm.data.schema import JET_FEATURES, PARTICLE_FEATURES, PID_FEATURES
from hepfm.train.checkpoint import Checkpoint
from hepfm.train.config import TrainConfig
from hepfm.train.device import resolve_device
from hepfm.train.diffusion import alpha_sigma
from hepfm.train.finetune import finetune

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
    "W1P_FEATURES",
    "constituent_kinematics",
    "generation_scores",
    "score_table",
    "without_pid",
    "two_sample_halves",
    "two_sample_auc",
    "jet_mass_figure",
    "scores_figure",
]

#: The constituent features of W1P (JetNet's choice: the relative coordinates and the pT fraction).
W1P_FEATURES = ("deta", "dphi", "log_pt_rel")

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
    device: str | torch.device = "auto",
):
    """Generate one jet per reference jet: same class, same jet features, same number of constituents.

    Args:
        model: a PET with its generative head.
        reference: :class:`~hepfm.data.JetSample` whose labels index ``model``'s classes.
        normaliser: the model's :class:`~hepfm.data.FeatureNormaliser`.
        steps, guidance: sampler steps and classifier-free guidance weight.
        device: where the model runs (``auto``, ``cpu``, ``cuda``, ``mps``); the sampler's noise is drawn on the
            CPU, so a seed gives the same jets on any device up to its arithmetic.

    Returns:
        A :class:`~hepfm.data.JetSample` of the generated jets (see :func:`to_sample`).
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    data = JetDataset(reference, normaliser)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(data), batch_size):
        batch = data.collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        x, mask, jet, label = batch.x, batch.mask, batch.jet, batch.y
        mask, jet, label = mask.to(device), jet.to(device), label.to(device)
        v = pet_velocity(model, mask, jet, label, guidance)

        def on_device(z: torch.Tensor, t: torch.Tensor, v=v) -> torch.Tensor:
            return v(z.to(device), t.to(device)).cpu()

        out.append(sample(on_device, tuple(x.shape), mask.cpu(), steps, gen).numpy())
    width = reference.particles.shape[1]
    generated = np.concatenate([np.pad(o, ((0, 0), (0, width - o.shape[1]), (0, 0))) for o in out])
    return to_sample(generated, reference.mask, reference, normaliser)


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


def constituent_kinematics(sample: JetSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pt, eta, phi) of every constituent, each (N, P), from a sample's (deta, dphi, log pT) and its jet axes.

    The inverse of the coordinates :func:`to_sample` builds generated jets from. Padded slots hold
    pt = 1, eta = eta_jet, phi = phi_jet: mask them with ``sample.mask``.
    """
    p, features = sample.particles, sample.particle_features
    eta = p[..., features.index("deta")] + sample.jet("eta")[:, None]
    phi = p[..., features.index("dphi")] + sample.jet("phi")[:, None]
    return np.exp(p[..., features.index("log_pt")]), eta, phi


def generation_scores(real: JetSample, generated: JetSample, real_efps: np.ndarray | None = None) -> dict:
    """JetNet's metrics of generated against real jets.

    Args:
        real: the reference jets.
        generated: the generated jets (any number).
        real_efps: :func:`jet_efps` of ``real`` (N, 5), if already computed.

    Returns:
        ``{"w1m": GeV, "w1p": {feature: W1} over :data:`W1P_FEATURES`, "w1efp": [5 values], "w1p_mean",
        "w1efp_mean"}``.
    """
    cols = [real.particle_features.index(f) for f in W1P_FEATURES]
    if real_efps is None:
        real_efps = jet_efps(*constituent_kinematics(real), real.mask)
    per_feature = w1p(real.particles[..., cols], real.mask, generated.particles[..., cols], generated.mask)
    scores: dict[str, Any] = {
        "w1m": w1m(real.jet("mass"), generated.jet("mass")),
        "w1p": dict(zip(W1P_FEATURES, per_feature, strict=True)),
        "w1efp": w1efp(real_efps, jet_efps(*constituent_kinematics(generated), generated.mask)),
    }
    scores["w1p_mean"] = float(np.mean(list(scores["w1p"].values())))
    scores["w1efp_mean"] = float(np.mean(scores["w1efp"]))
    return scores


def score_table(real: JetSample, generated: dict[str, JetSample]) -> dict[str, dict]:
    """:func:`generation_scores` of every generator: ``{name: scores}`` (the real jets' EFPs computed once)."""
    real_efps = jet_efps(*constituent_kinematics(real), real.mask)
    return {name: generation_scores(real, gen, real_efps) for name, gen in generated.items()}


def without_pid(sample: JetSample) -> np.ndarray:
    """The sample's particles (N, P, F) with the charge and particle-ID features zeroed."""
    particles = sample.particles.copy()
    particles[..., list(PID_FEATURES)] = 0.0
    return particles


def two_sample_halves(real: JetSample, generated: JetSample, seed: int = 0) -> tuple[JetSample, JetSample]:
    """Two samples of real (label 0) against generated (label 1) jets, for training and testing a classifier.

    The jets are split in halves by a permutation fixed by ``seed``; the real jet and the generated jet made
    like it land in the same half. Charge and PID features are zeroed in both (generated jets are built from
    four-momenta only), so the classifier cannot tell them apart by a missing feature.

    Raises:
        DataError: the two samples do not hold one generated jet per real jet.
    """
    if len(real) != len(generated):
        raise DataError(
            f"{generated.source}: {len(generated)} generated jets for {len(real)} real ones ({real.source}); "
            "the two-sample test pairs one generated jet with each real jet"
        )
    n = len(real)
    order = np.random.default_rng(seed).permutation(n)
    real_particles, gen_particles = without_pid(real), without_pid(generated)
    halves = []
    for h in (order[: n // 2], order[n // 2 :]):
        halves.append(
            JetSample(
                np.concatenate([real_particles[h], gen_particles[h]]),
                np.concatenate([real.mask[h], generated.mask[h]]),
                np.concatenate([real.jets[h], generated.jets[h]]),
                np.r_[np.zeros(len(h), np.int64), np.ones(len(h), np.int64)],
                ["real", "generated"],
                False,
                f"real vs {generated.source}",
            )
        )
    return halves[0], halves[1]


def two_sample_auc(
    checkpoint: str | Path | Checkpoint,
    real: JetSample,
    generated: JetSample,
    out: str | Path,
    train: TrainConfig | None = None,
    seed: int = 0,
) -> float:
    """Classifier two-sample test: the test AUC of a PET trained from scratch to tell generated from real jets.

    Trained on one half of :func:`two_sample_halves`, tested on the other; 0.5 means the classifier cannot
    tell them apart. A run already in ``out`` is replaced.

    Args:
        checkpoint: the architecture and feature normalisation of the classifier (its weights are not used).
        real, generated: one generated jet per real jet.
        out: the classifier's run directory.
        train: the classifier's training recipe.
        seed: seeds the split into halves.
    """
    first, second = two_sample_halves(real, generated, seed)
    metrics = finetune(checkpoint, first, second, out, from_scratch=True, train=train, overwrite=True)
    return float(metrics["auc"])


def jet_mass_figure(real: JetSample, generated: dict[str, JetSample], bins: int = 40, upper: float = 300.0) -> Figure:
    """Jet-mass densities of the real and the generated jets, one panel per class present in ``real``."""
    present = sorted(set(real.labels.tolist()))
    fig, axes = plt.subplots(1, len(present), figsize=(8 * len(present), 6), constrained_layout=True, squeeze=False)
    axis = hist.axis.Regular(bins, 0, upper, name="mass", label="Jet mass [GeV]")
    for ax, label in zip(axes[0], present, strict=True):
        sel = real.labels == label
        hep.histplot(
            hist.Hist(axis).fill(real.jet("mass")[sel]),
            ax=ax,
            density=True,
            histtype="fill",
            alpha=0.3,
            label="real (held out)",
        )
        for name, gen in generated.items():
            hep.histplot(hist.Hist(axis).fill(gen.jet("mass")[gen.labels == label]), ax=ax, density=True, label=name)
        ax.set_title(real.class_names[label], fontsize=14)
        ax.legend(fontsize=11)
    return fig


def scores_figure(scores: dict[str, dict]) -> Figure:
    """Bars of W1M, mean W1P and mean W1EFP per generator (the :func:`score_table`)."""
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.5), constrained_layout=True)
    names = list(scores)
    panels = (("w1m", "W1M [GeV]"), ("w1p_mean", "W1P (mean)"), ("w1efp_mean", "W1EFP (mean)"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.bar(names, [scores[n][key] for n in names])
        ax.set_ylabel(label)
    return fig
