"""Jet production: Pythia8 events -> detector -> anti-kT jets -> truth-matched, labelled jets.

:func:`make_jets` runs one recipe of :mod:`hepfm.data.processes` until it has the requested number
of jets and returns them as an awkward record array (one record per jet, jagged constituents), the
layout :mod:`hepfm.data.storage` writes. Every step works on whole batches of events; only the
truth matching visits events one by one, and then only the few hard-process particles.
"""

from __future__ import annotations

import time

import awkward as ak
import fastjet
import numpy as np

from hepfm.data.detector import Candidates, DetectorConfig, simulate
from hepfm.data.processes import JetRecipe
from hepfm.data.pythia import EventBatch, _quiet_stdout, generate_batches, make_pythia
from hepfm.physics import delta_r, mass, pt_eta_phi

__all__ = ["make_jets", "cluster", "truth_targets", "ChargeTable"]

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
    with _quiet_stdout():  # FastJet prints its banner from C++ on first use
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
    targets = []
    if recipe.match == "parton":
        for i in np.flatnonzero((status == -23) & np.isin(np.abs(pid), recipe.partons)):
            targets.append({"index": i, "leaves": np.empty((0,), dtype=np.int64)})
    else:
        for i in np.flatnonzero((np.abs(status) == 22) & (np.abs(pid) == recipe.resonance)):
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
        out.append({
            "pid": int(pid[i]), "pt": float(pt), "eta": float(eta), "phi": float(phi),
            "mass": float(mass(px[i], py[i], pz[i], en[i])), "leaves": (l_eta, l_phi),
        })
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


def _process_batch(recipe: JetRecipe, detector: DetectorConfig, rng, charges: ChargeTable,
                   batch: EventBatch) -> dict[str, list]:
    final = np.flatnonzero(batch.status > 0)
    event = batch.event_index[final]
    cand = simulate(detector, rng, event, batch.pid[final], charges(batch.pid[final]), batch.px[final],
                    batch.py[final], batch.pz[final], batch.energy[final])
    n_events = batch.n_events
    jets, index = cluster(cand, n_events, recipe.radius, recipe.pt_min)
    cand_offsets = np.concatenate([[0], np.cumsum(cand.counts(n_events))])

    out: dict[str, list] = {k: [] for k in ("rows", "jet", "truth")}
    n_jets = ak.to_numpy(ak.num(jets, axis=1))
    # constituent indices of every jet of the batch, flat, with per-jet offsets
    flat_index = ak.to_numpy(ak.flatten(index, axis=None)).astype(np.int64)
    index_offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.flatten(ak.num(index, axis=2))))])
    j_px, j_py, j_pz, j_e = (ak.to_numpy(ak.flatten(jets[f])) for f in ("px", "py", "pz", "E"))
    j_pt, j_eta, j_phi = pt_eta_phi(j_px, j_py, j_pz)
    in_window = (j_pt >= recipe.pt_min) & (j_pt < recipe.pt_max) & (np.abs(j_eta) < recipe.eta_max)
    jet_offsets = np.concatenate([[0], np.cumsum(n_jets)])
    jet_event = np.repeat(np.arange(n_events), n_jets)
    for e in np.flatnonzero(np.bincount(jet_event[in_window], minlength=n_events)):
        sel = np.flatnonzero(in_window[jet_offsets[e]:jet_offsets[e + 1]])
        targets = truth_targets(recipe, batch, e)
        if not targets:
            continue
        g = jet_offsets[e] + sel
        for j, t in _match(recipe, j_eta[g], j_phi[g], targets):
            k = jet_offsets[e] + int(sel[j])
            rows = cand_offsets[e] + flat_index[index_offsets[k]:index_offsets[k + 1]]
            out["rows"].append(rows)
            out["jet"].append((j_pt[k], j_eta[k], j_phi[k], mass(j_px[k], j_py[k], j_pz[k], j_e[k]), j_e[k]))
            out["truth"].append((t["pid"], t["pt"], t["eta"], t["phi"], t["mass"]))
    out["cand"] = cand
    return out


def make_jets(
    recipe: JetRecipe,
    n_jets: int,
    *,
    label: int,
    seed: int,
    detector: DetectorConfig,
    shard_index: int = 0,
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
        batch_size: events per ``nextBatch`` call.
        progress: optional tqdm bar, advanced by the number of jets made.

    Returns:
        (jets, stats): awkward record array with one record per jet, fields ``label``, ``jet_pt,
        jet_eta, jet_phi, jet_mass, jet_energy, jet_nparticles``, ``truth_pid, truth_pt, truth_eta,
        truth_phi, truth_mass`` and jagged ``part_px, part_py, part_pz, part_energy, part_charge,
        part_pid``; and stats (events generated, wall time).
    """
    start = time.perf_counter()
    pythia = make_pythia(recipe.settings(shard_index), seed)
    charges = ChargeTable(pythia)
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("part", "counts", "jet", "truth")}
    n_events, made = 0, 0
    for batch in generate_batches(pythia, batch_size):
        n_events += batch.n_events
        out = _process_batch(recipe, detector, rng, charges, batch)
        cand = out["cand"]
        for rows, jet, truth in zip(out["rows"], out["jet"], out["truth"], strict=True):
            if made == n_jets:
                break
            cols["part"].append(rows_data := np.stack(
                [cand.px[rows], cand.py[rows], cand.pz[rows], cand.energy[rows], cand.charge[rows], cand.pid[rows]],
                axis=1))
            cols["counts"].append(len(rows_data))
            cols["jet"].append(jet)
            cols["truth"].append(truth)
            made += 1
            if progress is not None:
                progress.update(1)
        if made == n_jets:
            break
    part = np.concatenate(cols["part"]) if cols["part"] else np.zeros((0, 6))
    jet = np.asarray(cols["jet"], dtype=np.float64).reshape(-1, 5)
    truth = np.asarray(cols["truth"], dtype=np.float64).reshape(-1, 5)
    counts = np.asarray(cols["counts"], dtype=np.int64)

    def jagged(values, dtype):
        return ak.unflatten(values.astype(dtype), counts)

    order = _pt_order(part, counts)
    part = part[order]
    record = {
        "label": np.full(len(counts), label, dtype=np.int32),
        "jet_pt": jet[:, 0].astype(np.float32),
        "jet_eta": jet[:, 1].astype(np.float32),
        "jet_phi": jet[:, 2].astype(np.float32),
        "jet_mass": jet[:, 3].astype(np.float32),
        "jet_energy": jet[:, 4].astype(np.float32),
        "jet_nparticles": counts.astype(np.int32),
        "truth_pid": truth[:, 0].astype(np.int32),
        "truth_pt": truth[:, 1].astype(np.float32),
        "truth_eta": truth[:, 2].astype(np.float32),
        "truth_phi": truth[:, 3].astype(np.float32),
        "truth_mass": truth[:, 4].astype(np.float32),
        "part_px": jagged(part[:, 0], np.float32),
        "part_py": jagged(part[:, 1], np.float32),
        "part_pz": jagged(part[:, 2], np.float32),
        "part_energy": jagged(part[:, 3], np.float32),
        "part_charge": jagged(part[:, 4], np.int8),
        "part_pid": jagged(part[:, 5], np.int32),
    }
    stats = {"events": n_events, "jets": int(len(counts)), "seconds": time.perf_counter() - start}
    return ak.zip(record, depth_limit=1), stats


def _pt_order(part: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Permutation sorting constituents by decreasing pT within each jet."""
    jet_index = np.repeat(np.arange(len(counts)), counts)
    return np.lexsort((-np.hypot(part[:, 0], part[:, 1]), jet_index))
