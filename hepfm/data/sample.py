"""The one in-memory representation of a jet sample, whatever file it came from.

Every reader turns its format into jagged constituent four-momenta (plus charge and particle id
where the format has them) and calls :func:`build_jet_sample`, so the features a model sees are
computed in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import awkward as ak
import numpy as np

from hepfm.core.errors import DataError
from hepfm.core.physics import EPS, delta_phi, mass, pt_eta_phi
from hepfm.data.schema import JET_FEATURES, MAX_PARTICLES, PARTICLE_FEATURES

__all__ = ["JetSample", "EventSample", "build_jet_sample", "pid_from_flags"]


@dataclass
class JetSample:
    """Jets as padded constituents plus jet-level features and integer labels.

    Attributes:
        particles: (N, P, F) float32, features :data:`PARTICLE_FEATURES`, sorted by pt, padded with 0.
        mask: (N, P) bool, True for a real particle.
        jets: (N, J) float32, features :data:`JET_FEATURES`.
        labels: (N,) int64, index into ``class_names``.
        class_names: names of the classes, in label order.
        has_pid: whether the source carried charge and particle id (else those features are 0).
        source: the file or directory the jets were read from.
        weights: (N,) float64 per-jet weights for training (None: all 1), e.g. OmniFold's event weights.
    """

    particles: np.ndarray
    mask: np.ndarray
    jets: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    has_pid: bool
    source: str = ""
    particle_features: tuple[str, ...] = field(default=PARTICLE_FEATURES)
    jet_features: tuple[str, ...] = field(default=JET_FEATURES)
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> JetSample:
        """A subset of the jets (slice, integer array or boolean mask)."""
        return JetSample(
            self.particles[index],
            self.mask[index],
            self.jets[index],
            self.labels[index],
            list(self.class_names),
            self.has_pid,
            self.source,
            self.particle_features,
            self.jet_features,
            None if self.weights is None else self.weights[index],
        )

    def __repr__(self) -> str:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        per_class = ", ".join(f"{c}={n}" for c, n in zip(self.class_names, counts, strict=True))
        return (
            f"JetSample({len(self)} jets x {self.particles.shape[1]} particles x {self.particles.shape[2]} "
            f"features, has_pid={self.has_pid}, {per_class}, source={self.source!r})"
        )

    def jet(self, name: str) -> np.ndarray:
        """One jet-level feature by name, e.g. ``sample.jet("mass")``."""
        return self.jets[:, self.jet_features.index(name)]

    @classmethod
    def concatenate(cls, samples: list[JetSample]) -> JetSample:
        """The jets of several samples with the same classes and padding, in order."""
        first = samples[0]
        for s in samples[1:]:
            if s.class_names != first.class_names or s.particles.shape[1:] != first.particles.shape[1:]:
                raise DataError(
                    f"{s.source}: classes {s.class_names} / shape {s.particles.shape[1:]} differ from "
                    f"{first.class_names} / {first.particles.shape[1:]} of {first.source}"
                )
        weights = None
        if any(s.weights is not None for s in samples):
            weights = np.concatenate([np.ones(len(s)) if s.weights is None else s.weights for s in samples])
        particles, mask, jets, labels = (
            np.concatenate([getattr(s, k) for s in samples]) for k in ("particles", "mask", "jets", "labels")
        )
        return JetSample(
            particles,
            mask,
            jets,
            labels,
            list(first.class_names),
            all(s.has_pid for s in samples),
            first.source,
            first.particle_features,
            first.jet_features,
            weights,
        )


@dataclass
class EventSample:
    """Whole events as padded lists of particles or reconstructed objects, with event labels.

    Attributes:
        particles: (N, P, F) float32, columns named by ``particle_features``, sorted by pt, padded with 0.
            Particle-level formats (LHCO) give (pt, eta, phi, energy); reconstructed-object formats
            (hepfm events, NanoAOD) give :data:`hepfm.data.schema.OBJECT_COLUMNS`.
        mask: (N, P) bool, True for a real particle or object.
        labels: (N,) int64, index into ``class_names``.
        class_names: names of the classes, in label order.
        source: the file or directory the events were read from.
        particle_features: names of the columns of ``particles``.
        truth: (N, L) float32 multilabel generator truth named by ``truth_names`` (None when the format has none).
        targets: (N, K) float32 kinematic truth targets named by ``target_names`` (None when absent).
        weights: (N,) float64 event weights (None: all 1).
    """

    particles: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str = ""
    particle_features: tuple[str, ...] = ("pt", "eta", "phi", "energy")
    truth: np.ndarray | None = None
    truth_names: tuple[str, ...] = ()
    targets: np.ndarray | None = None
    target_names: tuple[str, ...] = ()
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> EventSample:
        def take(a):
            return None if a is None else a[index]

        return replace(
            self,
            particles=self.particles[index],
            mask=self.mask[index],
            labels=self.labels[index],
            truth=take(self.truth),
            targets=take(self.targets),
            weights=take(self.weights),
        )

    def __repr__(self) -> str:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        per_class = ", ".join(f"{c}={n}" for c, n in zip(self.class_names, counts, strict=True))
        what = "objects" if "type" in self.particle_features else "particles"
        return (
            f"EventSample({len(self)} events x {self.particles.shape[1]} {what}, {per_class}, source={self.source!r})"
        )

    def feature(self, name: str) -> np.ndarray:
        """One per-particle (per-object) column by name, e.g. ``sample.feature("pt")`` (N, P)."""
        return self.particles[..., self.particle_features.index(name)]


def pid_from_flags(charge, is_charged_hadron, is_neutral_hadron, is_photon, is_electron, is_muon):
    """Signed PDG-like codes from the boolean particle-ID flags of JetClass/Delphes files.

    Codes: 11 electron, 13 muon, 22 photon, 211 charged hadron, 130 neutral hadron, 0 unknown;
    leptons carry the PDG sign convention (an e- is +11, charge -1).
    """
    charge = np.asarray(charge)
    sign = np.where(charge > 0, 1, -1)
    pid = np.zeros(charge.shape, dtype=np.int32)
    pid = np.where(np.asarray(is_neutral_hadron) > 0.5, 130, pid)
    pid = np.where(np.asarray(is_photon) > 0.5, 22, pid)
    pid = np.where(np.asarray(is_charged_hadron) > 0.5, 211 * sign, pid)
    pid = np.where(np.asarray(is_electron) > 0.5, -11 * sign, pid)
    pid = np.where(np.asarray(is_muon) > 0.5, -13 * sign, pid)
    return pid.astype(np.int32)


def _check_finite(name: str, values: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{source}: field {name!r} holds {int(bad.sum())} NaN/inf values")


def build_jet_sample(
    px: ak.Array,
    py: ak.Array,
    pz: ak.Array,
    energy: ak.Array,
    labels,
    class_names: list[str],
    *,
    charge: ak.Array | None = None,
    pid: ak.Array | None = None,
    max_particles: int = MAX_PARTICLES,
    source: str = "",
) -> JetSample:
    """Compute constituent and jet features from jagged four-momenta and pad them.

    Args:
        px, py, pz, energy: jagged (N, var) constituent four-momenta in GeV.
        labels: (N,) integer labels, each in ``[0, len(class_names))``.
        class_names: class names in label order.
        charge: jagged (N, var) electric charges, or None if the format has none.
        pid: jagged (N, var) PDG-like ids (see :func:`pid_from_flags`), or None.
        max_particles: P, the padded length; the hardest P constituents are kept.
        source: file name used in error messages and kept on the sample.

    Returns:
        A :class:`JetSample`; the jet four-momentum is the sum of all constituents (before truncation).
    """
    counts = ak.to_numpy(ak.num(px, axis=1))
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n = len(counts)
    if len(labels) != n:
        raise DataError(f"{source}: {len(labels)} labels for {n} jets")
    if n and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DataError(
            f"{source}: field 'labels' holds values outside [0, {len(class_names) - 1}] for classes {class_names}"
        )
    flat = {
        k: ak.to_numpy(ak.flatten(v)).astype(np.float64)
        for k, v in {"px": px, "py": py, "pz": pz, "energy": energy}.items()
    }
    for k, v in flat.items():
        _check_finite(k, v, source)
    has_pid = charge is not None and pid is not None
    f_charge = ak.to_numpy(ak.flatten(charge)).astype(np.float64) if has_pid else np.zeros_like(flat["px"])
    raw_pid = ak.to_numpy(ak.flatten(pid)) if has_pid else np.zeros(len(f_charge), np.int64)
    _check_finite("charge", f_charge, source)
    _check_finite("pid", raw_pid.astype(np.float64), source)
    f_pid = raw_pid.astype(np.int64)

    jet_index = np.repeat(np.arange(n), counts)
    jet_p4 = [np.bincount(jet_index, weights=flat[k], minlength=n) for k in ("px", "py", "pz", "energy")]
    jet_pt, jet_eta, jet_phi = pt_eta_phi(*jet_p4[:3])
    jet_mass = mass(*jet_p4)

    pt, eta, phi = pt_eta_phi(flat["px"], flat["py"], flat["pz"])
    deta = eta - jet_eta[jet_index]
    dphi = delta_phi(phi, jet_phi[jet_index])
    apid = np.abs(f_pid)
    is_lepton = (apid == 11) | (apid == 13)
    feats = np.stack(
        [
            deta,
            dphi,
            np.log(np.maximum(pt, EPS)),
            np.log(np.maximum(flat["energy"], EPS)),
            np.log(np.maximum(pt, EPS) / np.maximum(jet_pt[jet_index], EPS)),
            np.log(np.maximum(flat["energy"], EPS) / np.maximum(jet_p4[3][jet_index], EPS)),
            np.hypot(deta, dphi),
            f_charge,
            (f_charge != 0) & ~is_lepton & (apid != 0),
            (f_charge == 0) & (apid != 22) & (apid != 0),
            apid == 22,
            apid == 11,
            apid == 13,
        ],
        axis=1,
    ).astype(np.float32)

    # Sort constituents by pt within each jet, keep the hardest max_particles, scatter into the pad.
    offsets = np.concatenate([[0], np.cumsum(counts)])
    order = np.lexsort((-pt, jet_index))
    rank = np.arange(len(order)) - offsets[jet_index[order]]
    keep = rank < max_particles
    particles = np.zeros((n, max_particles, len(PARTICLE_FEATURES)), dtype=np.float32)
    mask = np.zeros((n, max_particles), dtype=bool)
    rows, cols = jet_index[order][keep], rank[keep]
    particles[rows, cols] = feats[order][keep]
    mask[rows, cols] = True

    jets = np.stack([jet_pt, jet_eta, jet_phi, jet_mass, counts], axis=1).astype(np.float32)
    return JetSample(particles, mask, jets, labels, list(class_names), has_pid, source)
