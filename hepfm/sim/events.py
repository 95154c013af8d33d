"""Event production: Pythia8 events -> detector -> reconstructed objects, process label and truth.

:func:`make_events` runs one process of :data:`hepfm.sim.processes.EVENT_PROCESSES` (or an LHE file)
and returns one record per event: the reconstructed objects of the event (anti-kT R = 0.4 jets with
a b-tag, isolated electrons, muons and photons, missing transverse momentum), the process label and
generator-truth targets. The layout is versioned (:data:`hepfm.data.schema.EVENT_SCHEMA`, beside every
other field constant); ``docs/event-schema.md`` documents every field.

Reconstruction, per event:

* **Leptons** — particle-flow electrons and muons with pT > 10 GeV, |eta| < 2.5 and relative isolation
  below ``DetectorConfig.isolation_max`` in a cone of ``isolation_cone``.
* **Photons** — particle-flow photons (ECAL towers) with pT > 10 GeV, |eta| < 2.5, isolated the same way.
* **Jets** — anti-kT R = 0.4 on the remaining candidates, pT > 25 GeV, |eta| < ``calo_eta_max``; b-tagged
  by truth matching to b and c hadrons with the detector's efficiencies (:func:`hepfm.sim.detector.btag`).
* **MET** — minus the vector sum of all candidates; always present, so no event is empty.

Truth, from the hard process (Pythia8 status codes 22-29: the hard scattering and its resonance decays):
which of t, W, Z, H, b, charged leptons, neutrinos and photons it contains (:data:`TRUTH_LABELS`), and
kinematic targets (:data:`TRUTH_TARGETS`): the pT of the hardest t, W, Z and H (0 when absent) and the
magnitude of the vector sum of the hard neutrinos' pT ("true MET").
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import awkward as ak
import numpy as np

from hepfm.core.errors import DataError
from hepfm.core.physics import pt_eta_phi
from hepfm.data.schema import (
    CONTENTS,
    MAX_OBJECTS,
    OBJECT_FIELDS,
    OBJECT_TYPES,
    PARTICLE_FIELDS,
    TRUTH_GROUPS,
    TRUTH_LABELS,
    TRUTH_TARGETS,
)
from hepfm.sim.detector import Candidates, DetectorConfig, btag, isolation, missing_pt, simulate
from hepfm.sim.jets import ChargeTable, cluster, final_state
from hepfm.sim.pythia import EventBatch, generate_batches, make_pythia

__all__ = [
    "make_events",
    "reconstruct",
    "hard_process_truth",
    "count_lhe_events",
]

_LEPTON_PT_MIN = 10.0
_PHOTON_PT_MIN = 10.0
_JET_PT_MIN = 25.0
_JET_RADIUS = 0.4
_ID_ETA_MAX = 2.5
_HADRON_PT_MIN = 5.0
_TRIGGER_RADIUS = 1.0


def _heavy_flavour(pid: np.ndarray) -> np.ndarray:
    """4 for charm hadrons, 5 for bottom hadrons, 0 otherwise (PDG numbering scheme)."""
    a = np.abs(pid)
    meson, baryon = (a // 100) % 10, (a // 1000) % 10
    heavy = np.maximum(np.where(a >= 1000, baryon, 0), np.where((a >= 100) & (a < 1000), meson, 0))
    return np.where(np.isin(heavy, (4, 5)), heavy, 0)


def hard_process_truth(batch: EventBatch) -> tuple[np.ndarray, np.ndarray]:
    """Multilabel flags (E, len(TRUTH_LABELS)) and kinematic targets (E, len(TRUTH_TARGETS)) per event."""
    n = batch.n_events
    status = np.abs(batch.status)
    hard = np.flatnonzero((status >= 22) & (status <= 29))
    event = batch.event_index[hard]
    apid = np.abs(batch.pid[hard])
    pt = np.hypot(batch.px[hard], batch.py[hard])
    groups = TRUTH_GROUPS
    flags = np.zeros((n, len(TRUTH_LABELS)), dtype=np.float32)
    for k, name in enumerate(TRUTH_LABELS):
        sel = np.isin(apid, groups[name])
        flags[np.unique(event[sel]), k] = 1.0
    targets = np.zeros((n, len(TRUTH_TARGETS)), dtype=np.float32)
    for k, pdg in enumerate((6, 24, 23, 25)):
        sel = apid == pdg
        np.maximum.at(targets[:, k], event[sel], pt[sel])
    nu = np.isin(apid, groups["neutrino"])
    nx = np.bincount(event[nu], weights=batch.px[hard][nu], minlength=n)
    ny = np.bincount(event[nu], weights=batch.py[hard][nu], minlength=n)
    targets[:, -1] = np.hypot(nx, ny)
    return flags, targets


def reconstruct(
    detector: DetectorConfig, rng: np.random.Generator, cand: Candidates, batch: EventBatch
) -> dict[str, np.ndarray]:
    """Reconstructed objects of every event of a batch, from its particle-flow candidates ``cand``, as flat
    columns plus per-event counts.

    Returns:
        ``{"counts": (E,), "pt", "eta", "phi", "energy", "btag", "charge", "type": (O,)}``, objects
        grouped by event and sorted by decreasing pT within an event.
    """
    n = batch.n_events
    c_pt, c_eta, c_phi = pt_eta_phi(cand.px, cand.py, cand.pz)
    apid = np.abs(cand.pid)
    central = np.abs(c_eta) < _ID_ETA_MAX
    lep = np.flatnonzero(np.isin(apid, (11, 13)) & central & (c_pt > _LEPTON_PT_MIN))
    pho = np.flatnonzero((apid == 22) & central & (c_pt > _PHOTON_PT_MIN))
    lep = lep[isolation(cand, lep, detector.isolation_cone) < detector.isolation_max]
    pho = pho[isolation(cand, pho, detector.isolation_cone) < detector.isolation_max]

    rest = np.ones(len(cand.event), dtype=bool)
    rest[lep] = rest[pho] = False
    jets, _ = cluster(cand.take(np.flatnonzero(rest)), n, _JET_RADIUS, _JET_PT_MIN)
    n_jets = ak.to_numpy(ak.num(jets, axis=1))
    j_px, j_py, j_pz, j_e = (ak.to_numpy(ak.flatten(jets[f])).astype(np.float64) for f in ("px", "py", "pz", "E"))
    j_pt, j_eta, j_phi = pt_eta_phi(j_px, j_py, j_pz)
    j_event = np.repeat(np.arange(n), n_jets)
    keep = np.abs(j_eta) < detector.calo_eta_max
    j_pt, j_eta, j_phi, j_e, j_event = j_pt[keep], j_eta[keep], j_phi[keep], j_e[keep], j_event[keep]

    # b-tagging by truth matching to heavy-flavour hadrons of the generator record
    flavour = _heavy_flavour(batch.pid)
    h_pt, h_eta, h_phi = pt_eta_phi(batch.px, batch.py, batch.pz)
    heavy = np.flatnonzero((flavour > 0) & (h_pt > _HADRON_PT_MIN))
    h_event = batch.event_index[heavy]
    tagged = np.zeros(len(j_pt), dtype=bool)
    j_bounds = np.searchsorted(j_event, np.arange(n + 1))
    h_bounds = np.searchsorted(h_event, np.arange(n + 1))
    for e in np.flatnonzero(np.diff(j_bounds)):
        js = slice(j_bounds[e], j_bounds[e + 1])
        hs = heavy[h_bounds[e] : h_bounds[e + 1]]
        b, c = hs[flavour[hs] == 5], hs[flavour[hs] == 4]
        tagged[js], _ = btag(detector, rng, j_eta[js], j_phi[js], h_eta[b], h_phi[b], h_eta[c], h_phi[c])

    met, met_phi = missing_pt(cand, n)
    code = {t: i for i, t in enumerate(OBJECT_TYPES)}
    lep_type = np.where(apid[lep] == 11, code["electron"], code["muon"])
    columns = {
        "event": [j_event, cand.event[lep], cand.event[pho], np.arange(n)],
        "pt": [j_pt, c_pt[lep], c_pt[pho], met],
        "eta": [j_eta, c_eta[lep], c_eta[pho], np.zeros(n)],
        "phi": [j_phi, c_phi[lep], c_phi[pho], met_phi],
        "energy": [j_e, cand.energy[lep], cand.energy[pho], met],
        "btag": [tagged, np.zeros(len(lep)), np.zeros(len(pho)), np.zeros(n)],
        "charge": [np.zeros(len(j_pt)), cand.charge[lep], np.zeros(len(pho)), np.zeros(n)],
        "type": [np.full(len(j_pt), code["jet"]), lep_type, np.full(len(pho), code["photon"]), np.full(n, code["met"])],
    }
    flat = {k: np.concatenate([np.asarray(v, dtype=np.float64) for v in vs]) for k, vs in columns.items()}
    event = flat.pop("event").astype(np.int64)
    # hardest first within each event, then cap the number of objects of each type
    order = np.lexsort((-flat["pt"], event))
    event, flat = event[order], {k: v[order] for k, v in flat.items()}
    rank = _rank_within(event, flat["type"])
    caps = np.array([MAX_OBJECTS.get(t, 1) for t in OBJECT_TYPES])
    keep = rank < caps[flat["type"].astype(np.int64)]
    event, flat = event[keep], {k: v[keep] for k, v in flat.items()}
    return {"counts": np.bincount(event, minlength=n), **flat}


def _rank_within(event: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Position of each object among the objects of its type in its event (input already in order)."""
    key = event * len(OBJECT_TYPES) + kind.astype(np.int64)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(key)]))
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = np.arange(len(key)) - first
    return rank


def count_lhe_events(path: str | Path) -> int:
    """Number of ``<event>`` blocks of a Les Houches Event file (plain or gzip)."""
    import gzip

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such LHE file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4096)
        if b"<LesHouchesEvents" not in head:
            raise DataError(f"{path}: not a Les Houches Event file (no <LesHouchesEvents> tag)")
        f.seek(0)
        return sum(len(re.findall(rb"<event[\s>]", line)) for line in f)


def _event_batches(settings: tuple[str, ...], seed: int, n_events: int, batch_size: int):
    """(charges, rng, stream of non-empty batches) of a seeded generator; an input that stops producing events
    is an error."""
    pythia = make_pythia(settings, seed)

    def stream():
        empty = 0
        for batch in generate_batches(pythia, min(batch_size, n_events)):
            if batch.n_events == 0:
                empty += 1
                if empty >= 3:  # an exhausted LHE file, or a set-up that never yields an event
                    raise DataError(
                        f"Pythia8 stopped producing events before {n_events} "
                        f"(settings {[s for s in settings if 'LHEF' in s] or 'process'})"
                    )
                continue
            yield batch

    return ChargeTable(pythia), np.random.default_rng(seed), stream()


def make_events(
    settings: tuple[str, ...],
    n_events: int,
    *,
    label: int,
    seed: int,
    detector: DetectorConfig,
    content: str = "objects",
    trigger_pt: float = 0.0,
    batch_size: int = 100,
    progress=None,
) -> tuple[ak.Array, dict]:
    """Generate and reconstruct ``n_events`` events with the given Pythia8 settings.

    Args:
        settings: all Pythia8 settings (see :meth:`hepfm.sim.processes.Process.event_settings`); for an
            LHE input they name the file and the number of events to skip.
        n_events: events to return.
        label: the integer process label written with every event.
        seed: seeds Pythia8 and the detector; equal seeds give equal events.
        detector: fast-simulation parameters.
        content: ``"objects"`` (reconstructed objects and truth, :data:`OBJECT_FIELDS`) or ``"particles"``
            (every particle-flow candidate, :data:`PARTICLE_FIELDS`, as in the LHC Olympics sets).
        trigger_pt: keep only events whose leading anti-kT R = 1.0 jet of candidates has pT above this
            (GeV; 0 keeps every event).
        batch_size: events per ``nextBatch`` call.
        progress: optional tqdm bar advanced by events made.

    Returns:
        (events, stats): an awkward record array with ``label, weight`` and the jagged fields of the
        content — for objects also ``truth_<name>`` for :data:`TRUTH_LABELS` and ``target_<name>`` for
        :data:`TRUTH_TARGETS`; stats with the events generated (triggered or not) and the wall time.
    """
    if content not in CONTENTS:
        raise ValueError(f"unknown event content {content!r}; use one of {CONTENTS}")
    start = time.perf_counter()
    charges, rng, batches = _event_batches(settings, seed, n_events, batch_size)
    parts: list[dict] = []
    made = generated = 0
    for batch in batches:
        generated += batch.n_events
        cand = simulate(detector, rng, *final_state(batch, charges))
        keep = np.arange(batch.n_events)
        if trigger_pt > 0:
            jets, _ = cluster(cand, batch.n_events, _TRIGGER_RADIUS, trigger_pt)
            keep = np.flatnonzero(ak.to_numpy(ak.num(jets, axis=1)) > 0)
        keep = keep[: n_events - made]
        if content == "objects":
            columns = _select(reconstruct(detector, rng, cand, batch), keep, OBJECT_FIELDS)
            flags, targets = hard_process_truth(batch)
            columns.update(flags=flags[keep], targets=targets[keep])
        else:
            columns = _select(_particle_columns(cand, batch.n_events), keep, PARTICLE_FIELDS)
        parts.append({**columns, "weight": batch.weight[keep]})
        made += len(keep)
        if progress is not None:
            progress.update(len(keep))
        if made >= n_events:
            break
    stats = {"events": generated, "seconds": time.perf_counter() - start}
    return _to_awkward(parts, label, OBJECT_FIELDS if content == "objects" else PARTICLE_FIELDS), stats


def _particle_columns(cand, n: int) -> dict[str, np.ndarray]:
    """Every candidate of every event, hardest first within an event, as flat columns plus counts."""
    pt, eta, phi = pt_eta_phi(cand.px, cand.py, cand.pz)
    order = np.lexsort((-pt, cand.event))
    return {
        "counts": np.bincount(cand.event, minlength=n),
        "pt": pt[order],
        "eta": eta[order],
        "phi": phi[order],
        "energy": cand.energy[order],
    }


def _select(columns: dict[str, np.ndarray], keep: np.ndarray, fields: tuple[str, ...]) -> dict:
    """The events ``keep`` (increasing) of flat per-event-grouped columns: {"counts": (K,), field: values}."""
    counts = columns["counts"]
    chosen = np.zeros(len(counts), dtype=bool)
    chosen[keep] = True
    rows = np.repeat(chosen, counts)
    return {"counts": counts[keep], **{f: columns[f.split("_", 1)[1]][rows] for f in fields}}


def _to_awkward(parts: list[dict], label: int, fields: tuple[str, ...]) -> ak.Array:
    counts = np.concatenate([p["counts"] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    n = len(counts)
    dtypes = {"obj_btag": np.int8, "obj_charge": np.int8, "obj_type": np.int8}
    record = {
        "label": np.full(n, label, dtype=np.int32),
        "weight": np.concatenate([p["weight"] for p in parts]) if parts else np.zeros(0),
    }
    for f in fields:
        values = np.concatenate([p[f] for p in parts]) if parts else np.zeros(0)
        record[f] = ak.unflatten(values.astype(dtypes.get(f, np.float32)), counts)
    if parts and "flags" in parts[0]:
        flags = np.concatenate([p["flags"] for p in parts])
        targets = np.concatenate([p["targets"] for p in parts])
        for k, name in enumerate(TRUTH_LABELS):
            record[f"truth_{name}"] = flags[:, k].astype(np.int8)
        for k, name in enumerate(TRUTH_TARGETS):
            record[f"target_{name}"] = targets[:, k].astype(np.float32)
    return ak.zip(record, depth_limit=1)
