"""Jet production: Pythia8 events -> detector -> anti-kT jets -> truth-matched, labelled jets.

:func:`make_jets` runs one recipe of :mod:`hepfm.sim.processes` until it has the requested number
of jets and returns them as an awkward record array (one record per jet, jagged constituents), the
layout :mod:`hepfm.data.storage` writes. Every step works on whole batches of events; only the
truth matching visits events one by one, and then only the few hard-process particles.
"""

from __future__ import annotations

import time
from typing import Any

import awkward as ak
import fastjet
import numpy as np

from hepfm.core.io import quiet_stdout
from hepfm.core.physics import delta_r, mass, pt_eta_phi
from hepfm.sim.detector import Candidates, DetectorConfig, simulate
from hepfm.sim.processes import JetRecipe
from hepfm.sim.pythia import EventBatch, generate_batches, make_pythia

__all__ = ["make_jets", "cluster", "final_state", "truth_targets", "ChargeTable"]

_QUARKS = (1, 2, 3, 4, 5)
_LEPTONS = (11, 13, 15)
_NEUTRINOS = (12, 14, 16)


class ChargeTable:
    """Electric charge per PDG id from Pythia8's particle table, cached."""

    def __init__(self, pythia):
        self._data = pythia.particleData
        self._cache: dict[int, float] = {}

    def __call__(self, pid: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(pid, return_inverse=True)
        for u in uniq.tolist():
            if u not in self._cache:
                self._cache[u] = float(self._data.charge(u))
        return np.array([self._cache[u] for u in uniq.tolist()], dtype=np.float64)[inverse]


def final_state(batch: EventBatch, charges: ChargeTable) -> tuple[np.ndarray, ...]:
    """The final-state particles of a batch as :func:`hepfm.sim.detector.simulate` takes them:
    (event, pid, charge, px, py, pz, energy)."""
    final = np.flatnonzero(batch.status > 0)
    return (
        batch.event_index[final],
        batch.pid[final],
        charges(batch.pid[final]),
        batch.px[final],
        batch.py[final],
        batch.pz[final],
        batch.energy[final],
    )


def _candidates_to_awkward(cand: Candidates, n_events: int) -> ak.Array:
    counts = cand.counts(n_events)
    return ak.unflatten(ak.zip({"px": cand.px, "py": cand.py, "pz": cand.pz, "E": cand.energy}), counts)


def cluster(cand: Candidates, n_events: int, radius: float, pt_min: float):
    """Anti-kT clustering of each event's candidates with FastJet.

    Returns:
        (jets, constituent_index): jets as awkward (E, var) records with px, py, pz, E and the
        per-jet indices (E, var, var) of their constituents within the event.
    """
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    with quiet_stdout():  # FastJet prints its banner from C++ on first use
        sequence = fastjet.ClusterSequence(_candidates_to_awkward(cand, n_events), definition)
        jets = sequence.inclusive_jets(pt_min)
        index = sequence.constituent_index(pt_min)
    return jets, index


def _daughters(i: int, d1: np.ndarray, d2: np.ndarray) -> list[int]:
    a, b = int(d1[i]), int(d2[i])
    if a <= 0:
        return []
    if b == 0 or b == a:
        return [a]
    return list(range(a, b + 1)) if b > a else [a, b]


def _last_copy(i: int, pid: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> int:
    """Follow Pythia8's carbon copies (recoil, shower) down to the copy that decays."""
    while True:
        a, b = int(d1[i]), int(d2[i])
        if a > 0 and pid[a] == pid[i] and (b == 0 or b == a):
            i = a
        else:
            return i


def _leaves(i: int, pid, d1, d2) -> list[int]:
    """Decay products of resonance i, with W and Z decays followed to their own products."""
    out = []
    for d in _daughters(_last_copy(i, pid, d1, d2), d1, d2):
        if abs(pid[d]) in (23, 24):
            out.extend(_leaves(d, pid, d1, d2))
        else:
            out.append(d)
    return out


def _decay_ok(decay: str, leaf_ids: np.ndarray) -> bool:
    a = np.abs(leaf_ids)
    n = len(a)
    if decay in ("bb", "cc", "gg"):
        return n == 2 and bool((a == {"bb": 5, "cc": 4, "gg": 21}[decay]).all())
    n_q = int(np.isin(a, _QUARKS).sum())
    if decay == "qq":
        return n >= 2 and n_q == n
    n_l, n_nu = int(np.isin(a, _LEPTONS).sum()), int(np.isin(a, _NEUTRINOS).sum())
    if decay == "lv":
        return n_l == 1 and n_nu == 1 and n_q == n - 2
    if decay == "qqlv":
        return n == 4 and n_l == 1 and n_nu == 1 and n_q == 2
    raise ValueError(f"unknown decay {decay!r}")


def truth_targets(recipe: JetRecipe, batch: EventBatch, e: int) -> list[dict]:
    """The generator-level objects of event ``e`` a jet of this recipe must contain.

    Returns:
        One dict per target with ``pid, pt, eta, phi, mass`` of the parton or resonance and
        ``leaves``: (eta, phi) arrays of the visible decay products that must lie in the jet too.
    """
    lo, hi = batch.offsets[e], batch.offsets[e + 1]
    pid, status = batch.pid[lo:hi], batch.status[lo:hi]
    d1, d2 = batch.daughter1[lo:hi], batch.daughter2[lo:hi]
    px, py, pz, en = batch.px[lo:hi], batch.py[lo:hi], batch.pz[lo:hi], batch.energy[lo:hi]
    targets: list[dict[str, Any]] = []
    if recipe.match == "parton":
        for i in np.flatnonzero((status == -23) & np.isin(np.abs(pid), recipe.partons)).tolist():
            targets.append({"index": i, "leaves": np.empty((0,), dtype=np.int64)})
    else:
        for i in np.flatnonzero((np.abs(status) == 22) & (np.abs(pid) == recipe.resonance)).tolist():
            leaves = np.array(_leaves(i, pid, d1, d2), dtype=np.int64)
            if not _decay_ok(recipe.decay, pid[leaves]):
                continue
            visible = leaves[~np.isin(np.abs(pid[leaves]), _NEUTRINOS)]
            targets.append({"index": _last_copy(i, pid, d1, d2), "leaves": visible})
    out = []
    for t in targets:
        i, leaves = t["index"], t["leaves"]
        pt, eta, phi = pt_eta_phi(px[i], py[i], pz[i])
        l_pt, l_eta, l_phi = pt_eta_phi(px[leaves], py[leaves], pz[leaves])
        out.append(
            {
                "pid": int(pid[i]),
                "pt": float(pt),
                "eta": float(eta),
                "phi": float(phi),
                "mass": float(mass(px[i], py[i], pz[i], en[i])),
                "leaves": (l_eta, l_phi),
            }
        )
    return out


def _match(recipe: JetRecipe, jet_eta: np.ndarray, jet_phi: np.ndarray, targets: list[dict]) -> list[tuple]:
    """Pairs (jet, target) with the target and all its visible products inside the jet cone.

    Jets are visited in order; each takes the closest unused target that passes.
    """
    pairs, used = [], set()
    for j in range(len(jet_eta)):
        best, best_dr = None, recipe.radius
        for k, t in enumerate(targets):
            if k in used:
                continue
            dr = float(delta_r(jet_eta[j], jet_phi[j], t["eta"], t["phi"]))
            l_eta, l_phi = t["leaves"]
            if dr < best_dr and (delta_r(jet_eta[j], jet_phi[j], l_eta, l_phi) < recipe.radius).all():
                best, best_dr = k, dr
        if best is not None:
            used.add(best)
            pairs.append((int(j), targets[best]))
    return pairs


class _Clustered:
    """Anti-kT jets of a batch's candidates as flat arrays, with the constituent rows of each jet."""

    def __init__(self, cand: Candidates, n_events: int, radius: float, pt_min: float):
        jets, index = cluster(cand, n_events, radius, pt_min)
        n_jets = ak.to_numpy(ak.num(jets, axis=1))
        self.cand = cand
        self.cand_offsets = np.concatenate([[0], np.cumsum(cand.counts(n_events))])
        # constituent indices of every jet of the batch, flat, with per-jet offsets
        self.flat_index = ak.to_numpy(ak.flatten(index, axis=None)).astype(np.int64)
        self.index_offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.flatten(ak.num(index, axis=2))))])
        self.px, self.py, self.pz, self.e = (ak.to_numpy(ak.flatten(jets[f])) for f in ("px", "py", "pz", "E"))
        self.pt, self.eta, self.phi = pt_eta_phi(self.px, self.py, self.pz)
        self.offsets = np.concatenate([[0], np.cumsum(n_jets)])
        self.event = np.repeat(np.arange(n_events), n_jets)

    def rows(self, e: int, k: int) -> np.ndarray:
        """Candidate rows of jet k (a batch-wide jet index) of event e."""
        return self.cand_offsets[e] + self.flat_index[self.index_offsets[k] : self.index_offsets[k + 1]]

    def kinematics(self, k: int) -> tuple:
        return (self.pt[k], self.eta[k], self.phi[k], mass(self.px[k], self.py[k], self.pz[k], self.e[k]), self.e[k])


_PARTICLE_LEVEL = DetectorConfig(enabled=False)


def _process_batch(
    recipe: JetRecipe, detector: DetectorConfig, rng, charges: ChargeTable, batch: EventBatch, paired: bool = False
) -> dict[str, Any]:
    columns = final_state(batch, charges)
    n_events = batch.n_events
    reco = _Clustered(simulate(detector, rng, *columns), n_events, recipe.radius, recipe.pt_min)
    # particle level: the visible final state, no random numbers drawn (the detector's stream is unchanged)
    gen = (
        _Clustered(simulate(_PARTICLE_LEVEL, rng, *columns), n_events, recipe.radius, 0.5 * recipe.pt_min)
        if paired
        else None
    )

    out: dict[str, Any] = {k: [] for k in ("rows", "jet", "truth", "gen_rows", "gen_jet")}
    in_window = (reco.pt >= recipe.pt_min) & (reco.pt < recipe.pt_max) & (np.abs(reco.eta) < recipe.eta_max)
    for e in np.flatnonzero(np.bincount(reco.event[in_window], minlength=n_events)).tolist():
        sel = np.flatnonzero(in_window[reco.offsets[e] : reco.offsets[e + 1]])
        targets = truth_targets(recipe, batch, e)
        if not targets:
            continue
        g = reco.offsets[e] + sel
        for j, t in _match(recipe, reco.eta[g], reco.phi[g], targets):
            k = reco.offsets[e] + int(sel[j])
            if gen is not None:  # the particle-level jet nearest the detector-level one, within R/2
                lo, hi = gen.offsets[e], gen.offsets[e + 1]
                dr = delta_r(reco.eta[k], reco.phi[k], gen.eta[lo:hi], gen.phi[lo:hi])
                if hi == lo or dr.min() >= 0.5 * recipe.radius:
                    continue
                m = lo + int(np.argmin(dr))
                out["gen_rows"].append(gen.rows(e, m))
                out["gen_jet"].append(gen.kinematics(m))
            out["rows"].append(reco.rows(e, k))
            out["jet"].append(reco.kinematics(k))
            out["truth"].append((t["pid"], t["pt"], t["eta"], t["phi"], t["mass"]))
    out["cand"] = reco.cand
    out["gen_cand"] = gen.cand if gen is not None else None
    return out


def make_jets(
    recipe: JetRecipe,
    n_jets: int,
    *,
    label: int,
    seed: int,
    detector: DetectorConfig,
    shard_index: int = 0,
    extra_settings: tuple[str, ...] = (),
    paired: bool = False,
    batch_size: int = 100,
    progress=None,
) -> tuple[ak.Array, dict]:
    """Generate ``n_jets`` truth-matched jets of one recipe.

    Args:
        recipe: the class recipe (process, jet definition, window, truth matching).
        n_jets: number of jets to return.
        label: integer label written with every jet.
        seed: seeds both Pythia8 and the detector's random numbers; equal seeds give equal jets.
        detector: fast-simulation parameters (``DetectorConfig(enabled=False)`` for particle level).
        shard_index: selects per-shard alternatives of the recipe (see ``settings_by_parity``).
        extra_settings: Pythia8 settings applied after the recipe's (a tune or shower variation).
        paired: also keep, for each jet, the particle-level jet (visible final state, no detector) nearest
            to it within R/2; jets without one are dropped. Written as the ``gen_`` fields.
        batch_size: events per ``nextBatch`` call.
        progress: optional tqdm bar, advanced by the number of jets made.

    Returns:
        (jets, stats): awkward record array with one record per jet, fields ``label``, ``jet_pt,
        jet_eta, jet_phi, jet_mass, jet_energy, jet_nparticles``, ``truth_pid, truth_pt, truth_eta,
        truth_phi, truth_mass`` and jagged ``part_px, part_py, part_pz, part_energy, part_charge,
        part_pid``, and with ``paired`` the same ``jet_*`` and ``part_*`` fields prefixed ``gen_`` for the
        particle-level jet; and stats (events generated, wall time).
    """
    start = time.perf_counter()
    pythia = make_pythia((*recipe.settings(shard_index), *extra_settings), seed)
    charges = ChargeTable(pythia)
    rng = np.random.default_rng(seed)
    levels = ("", "gen_") if paired else ("",)
    cols: dict[str, list] = {k: [] for k in ("truth", *(f"{p}{c}" for p in levels for c in ("part", "jet")))}
    n_events, made = 0, 0
    for batch in generate_batches(pythia, batch_size):
        n_events += batch.n_events
        out = _process_batch(recipe, detector, rng, charges, batch, paired)
        for i in range(len(out["rows"])):
            if made == n_jets:
                break
            for p in levels:
                cand, rows = out[f"{p}cand"], out[f"{p}rows"][i]
                cols[f"{p}part"].append(
                    np.stack(
                        [
                            cand.px[rows],
                            cand.py[rows],
                            cand.pz[rows],
                            cand.energy[rows],
                            cand.charge[rows],
                            cand.pid[rows],
                        ],
                        axis=1,
                    )
                )
                cols[f"{p}jet"].append(out[f"{p}jet"][i])
            cols["truth"].append(out["truth"][i])
            made += 1
            if progress is not None:
                progress.update(1)
        if made == n_jets:
            break
    truth = np.asarray(cols["truth"], dtype=np.float64).reshape(-1, 5)
    record = {
        "label": np.full(len(truth), label, dtype=np.int32),
        "truth_pid": truth[:, 0].astype(np.int32),
        "truth_pt": truth[:, 1].astype(np.float32),
        "truth_eta": truth[:, 2].astype(np.float32),
        "truth_phi": truth[:, 3].astype(np.float32),
        "truth_mass": truth[:, 4].astype(np.float32),
    }
    for p in levels:
        record.update(_jet_columns(cols[f"{p}part"], cols[f"{p}jet"], p))
    order = sorted(
        record,
        key=lambda k: (
            k.startswith("gen_"),
            not k.startswith("label"),
            not k.startswith("jet_"),
            not k.startswith("truth_"),
        ),
    )
    record = {k: record[k] for k in order}  # label, jet_*, truth_*, part_*, then gen_*
    stats = {"events": n_events, "jets": int(len(truth)), "seconds": time.perf_counter() - start}
    return ak.zip(record, depth_limit=1), stats


def _jet_columns(parts: list[np.ndarray], jets: list[tuple], prefix: str) -> dict:
    """``jet_*`` and jagged ``part_*`` columns (constituents sorted by pT) of a list of jets."""
    part = np.concatenate(parts) if parts else np.zeros((0, 6))
    jet = np.asarray(jets, dtype=np.float64).reshape(-1, 5)
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    part = part[_pt_order(part, counts)]

    def jagged(values, dtype):
        return ak.unflatten(values.astype(dtype), counts)

    columns = {f"jet_{k}": jet[:, i].astype(np.float32) for i, k in enumerate(("pt", "eta", "phi", "mass", "energy"))}
    columns["jet_nparticles"] = counts.astype(np.int32)
    for i, (k, dtype) in enumerate(
        (
            ("px", np.float32),
            ("py", np.float32),
            ("pz", np.float32),
            ("energy", np.float32),
            ("charge", np.int8),
            ("pid", np.int32),
        )
    ):
        columns[f"part_{k}"] = jagged(part[:, i], dtype)
    return {f"{prefix}{k}": v for k, v in columns.items()}


def _pt_order(part: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Permutation sorting constituents by decreasing pT within each jet."""
    jet_index = np.repeat(np.arange(len(counts)), counts)
    return np.lexsort((-np.hypot(part[:, 0], part[:, 1]), jet_index))
