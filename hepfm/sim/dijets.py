"""Dijet events: the two leading large-radius jets of each event, for resonant anomaly detection.

As in the LHC Olympics 2020 (Kasieczka, Nachman, Shih et al., arXiv 2101.08320), the particles of an event
— read from the LHCO R&D file or from a particle-level hepfm dataset (``content="particles"``) — are
clustered with anti-kT, R = 1.0 (FastJet); events with at least two jets are kept, and each of the two
leading jets becomes a :class:`~hepfm.data.sample.JetSample` entry, so the jet models read them as they
read any jet. The dijet invariant mass ``mjj`` is the resonance-search variable.

``pt_scale`` rescales every jet's constituent four-momenta so that the jet pT equals it: the jet's
substructure (and its mass over pT) is kept, while its absolute scale, which is correlated with ``mjj``, is
removed. A classifier trained to tell a signal region from its sidebands must not learn ``mjj`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import awkward as ak
import fastjet
import numpy as np

from hepfm.core.errors import DataError
from hepfm.core.io import quiet_stdout
from hepfm.core.physics import mass
from hepfm.data.sample import EventSample, JetSample, build_jet_sample

__all__ = ["Dijets", "dijets"]


@dataclass
class Dijets:
    """The two leading jets of each event.

    Attributes:
        jets: (leading, subleading) jets by pT, each a :class:`JetSample` of N entries (constituent
            features after the ``pt_scale`` rescaling; jet features of the rescaled jets).
        mjj: (N,) dijet invariant mass in GeV.
        jet_pt, jet_mass: (N, 2) pT and mass in GeV of the two jets as reconstructed (not rescaled).
        labels: (N,) event labels into ``class_names``.
        class_names: class names of the events (e.g. background, signal).
        event_index: (N,) position of each event in the input sample.
        source: where the events came from.
    """

    jets: tuple[JetSample, JetSample]
    mjj: np.ndarray
    jet_pt: np.ndarray
    jet_mass: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    event_index: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> Dijets:
        """A subset of the events (slice, integer array or boolean mask)."""
        return replace(
            self,
            jets=(self.jets[0][index], self.jets[1][index]),
            mjj=self.mjj[index],
            jet_pt=self.jet_pt[index],
            jet_mass=self.jet_mass[index],
            labels=self.labels[index],
            event_index=self.event_index[index],
        )

    def __repr__(self) -> str:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        per_class = ", ".join(f"{c}={n}" for c, n in zip(self.class_names, counts, strict=True))
        return f"Dijets({len(self)} events, {per_class}, source={self.source!r})"

    @classmethod
    def concatenate(cls, parts: list[Dijets]) -> Dijets:
        """The events of several :class:`Dijets` with the same classes, in order."""
        first = parts[0]
        return replace(
            first,
            jets=(JetSample.concatenate([p.jets[0] for p in parts]), JetSample.concatenate([p.jets[1] for p in parts])),
            mjj=np.concatenate([p.mjj for p in parts]),
            jet_pt=np.concatenate([p.jet_pt for p in parts]),
            jet_mass=np.concatenate([p.jet_mass for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            event_index=np.concatenate([p.event_index for p in parts]),
        )

    def relabel(self, labels: np.ndarray | int, class_names: list[str]) -> Dijets:
        """The same events with other labels (one for all, or one per event) and class names."""
        labels = np.broadcast_to(np.asarray(labels, dtype=np.int64), self.labels.shape).copy()
        lead, sub = (replace(j, labels=labels, class_names=list(class_names)) for j in self.jets)
        jets = (lead, sub)
        return replace(self, jets=jets, labels=labels, class_names=list(class_names))

    def as_jets(self, labels: np.ndarray | None = None, class_names: list[str] | None = None) -> JetSample:
        """Both jets of every event in one :class:`JetSample` (all leading jets, then all subleading ones),
        each carrying its event's label (``labels`` overrides the event labels)."""
        labels = self.labels if labels is None else np.asarray(labels, dtype=np.int64)
        both = JetSample.concatenate(list(self.jets))
        both.labels, both.class_names = np.concatenate([labels, labels]), list(class_names or self.class_names)
        return both


def dijets(
    events: EventSample,
    *,
    radius: float = 1.0,
    jet_pt_min: float = 20.0,
    max_particles: int = 128,
    pt_scale: float | None = 1000.0,
) -> Dijets:
    """Cluster particle-level events into their two leading anti-kT jets.

    Args:
        events: particles with columns (pt, eta, phi, energy), e.g. ``read_events(...)`` of an LHCO file or
            of a particle-level hepfm dataset.
        radius: anti-kT radius R.
        jet_pt_min: jets below this pT (GeV) are not considered.
        max_particles: constituents kept per jet (the hardest).
        pt_scale: rescale each jet's constituents to this jet pT (GeV); None keeps the measured scale.

    Returns:
        :class:`Dijets` of the events with at least two jets, in input order.
    """
    need = ("pt", "eta", "phi", "energy")
    if tuple(events.particle_features[:4]) != need:
        raise DataError(
            f"{events.source}: dijets need particles with columns {need}, got "
            f"{events.particle_features} (reconstructed objects are already jets)"
        )
    counts = events.mask.sum(1)
    real = events.particles[events.mask].astype(np.float64)  # (M, 4), event by event
    pt, eta, phi, energy = real.T
    p4 = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": energy}
    with quiet_stdout():
        sequence = fastjet.ClusterSequence(
            ak.unflatten(ak.zip(p4), counts), fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
        )
        jets = sequence.inclusive_jets(jet_pt_min)
        index = sequence.constituent_index(jet_pt_min)
    order = ak.argsort(np.hypot(jets.px, jets.py), axis=1, ascending=False)[:, :2]
    jets, index = jets[order], index[order]
    keep = np.flatnonzero(ak.to_numpy(ak.num(jets, axis=1)) == 2)
    jets, index = jets[keep], index[keep]
    offsets = np.concatenate([[0], np.cumsum(counts)])[keep]

    j = {k: ak.to_numpy(jets[k]).astype(np.float64) for k in ("px", "py", "pz", "E")}  # (N, 2)
    jet_pt = np.hypot(j["px"], j["py"])
    total = {k: j[k].sum(1) for k in j}
    mjj = mass(total["px"], total["py"], total["pz"], total["E"])
    labels = events.labels[keep]
    samples = []
    for k in range(2):
        constituents = index[:, k]
        n = ak.to_numpy(ak.num(constituents, axis=1))
        rows = ak.to_numpy(ak.flatten(constituents)) + np.repeat(offsets, n)
        scale = np.repeat(pt_scale / jet_pt[:, k], n) if pt_scale else 1.0
        px, py, pz, energy = (ak.unflatten(p4[c][rows] * scale, n) for c in ("px", "py", "pz", "E"))
        samples.append(
            build_jet_sample(
                px, py, pz, energy, labels, events.class_names, max_particles=max_particles, source=events.source
            )
        )
    return Dijets(
        (samples[0], samples[1]),
        mjj,
        jet_pt,
        np.stack([mass(j["px"][:, k], j["py"][:, k], j["pz"][:, k], j["E"][:, k]) for k in range(2)], 1),
        labels,
        list(events.class_names),
        keep,
        events.source,
    )
