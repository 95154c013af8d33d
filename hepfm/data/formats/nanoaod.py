"""CMS NanoAOD and Delphes ROOT files -> hepfm event graphs, through a coffea processor.

:class:`EventGraphProcessor` selects, per event, the same objects the event factory reconstructs
(:mod:`hepfm.sim.events`): jets with a b-tag bit, isolated electrons, muons and photons, and MET, with
the same thresholds and the same maximum number of objects per type, so that the pretrained event model
runs on an analyst's own files. :func:`read_nanoaod` (``NanoAODSchema``) and :func:`read_delphes`
(``DelphesSchema``) run it with coffea's ``Runner`` over any number of files: in this process
(``IterativeExecutor``) or on a Dask cluster (``DaskExecutor``).

Choices, each a constructor argument:

* b-tag: a jet discriminant above its medium working point. ``btag="auto"`` takes the first of
  ``btagDeepFlavB`` (DeepJet, > 0.3040, UL2017), ``btagDeepB`` (DeepCSV, > 0.4941, UL2017) and ``btagCSVV2``
  (CSVv2, > 0.8484, 2016) that the file fills (older files carry DeepJet as a -3000 placeholder); pass a
  branch and ``btag_threshold`` for the working point of your data-taking era.
* truth (simulated files only): hepfm's multilabel truth and kinematic targets from the generator
  particles flagged ``isHardProcess`` (excluding the incoming partons), as the event factory defines them.
* jets: pT > 25 GeV, |eta| < 3 (the generator-level detector's calorimeter), tight jet ID, and no
  selected lepton or photon within Delta R < 0.4 (the factory clusters jets without them).
* electrons: pT > 10 GeV, |eta| < 2.5, cut-based ID >= loose, ``pfRelIso03_all`` < 0.15;
  muons: pT > 10 GeV, |eta| < 2.4, loose ID (particle-flow muon, global or tracker muon: the CMS
  definition, computed from its flags because some files leave ``looseId`` unfilled), ``pfRelIso04_all`` < 0.15;
  photons: pT > 10 GeV, |eta| < 2.5, cut-based ID >= loose, ``pfRelIso03_all`` < 0.15.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path

import awkward as ak
import numpy as np
from coffea import processor

from hepfm.core.errors import DataError
from hepfm.core.parallel import dask_client
from hepfm.data.sample import EventSample
from hepfm.data.schema import MAX_OBJECTS, OBJECT_FIELDS, OBJECT_TYPES, TRUTH_GROUPS, TRUTH_LABELS, TRUTH_TARGETS
from hepfm.data.storage import events_to_sample

__all__ = ["EventGraphProcessor", "read_nanoaod", "read_delphes", "accumulated_to_events", "BTAG_WORKING_POINTS"]


@contextmanager
def _quiet_schema():
    """coffea warns about cross-references a file's NanoAOD version lacks; they do not concern hepfm."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"coffea\.nanoevents")
        warnings.filterwarnings("ignore", category=RuntimeWarning, message=r".*(cross-reference|already exists)")
        yield


def _energy(obj) -> ak.Array:
    return np.sqrt((obj.pt * np.cosh(obj.eta)) ** 2 + obj.mass**2)


def _isolated_from(jets, others, cone: float):
    """Mask of jets with no object of ``others`` within ``cone``."""
    pairs = ak.cartesian({"j": jets, "o": others}, axis=1, nested=True)
    deta = pairs.j.eta - pairs.o.eta
    dphi = (pairs.j.phi - pairs.o.phi + np.pi) % (2 * np.pi) - np.pi
    return ak.all(deta**2 + dphi**2 >= cone**2, axis=2)


#: Medium working points of the NanoAOD jet b-tag discriminants, in order of preference.
BTAG_WORKING_POINTS = {"btagDeepFlavB": 0.3040, "btagDeepB": 0.4941, "btagCSVV2": 0.8484}


def _btag_branch(jets) -> str:
    for name in BTAG_WORKING_POINTS:
        if name in jets.fields:
            values = ak.flatten(jets[name])
            if len(values) and ak.any((values >= 0) & (values <= 1)):
                return name
    return "btagCSVV2"


def _hard_process_truth(gen) -> tuple[np.ndarray, np.ndarray]:
    """hepfm's truth labels and targets from the ``isHardProcess`` generator particles of simulated NanoAOD."""
    hard = gen[gen.hasFlags("isHardProcess") & (gen.genPartIdxMother >= 0)]
    apid = abs(hard.pdgId)

    def isin(group):
        mask = apid == group[0]
        for pdg in group[1:]:
            mask = mask | (apid == pdg)
        return mask

    flags = np.stack([ak.to_numpy(ak.any(isin(TRUTH_GROUPS[name]), axis=1)) for name in TRUTH_LABELS], -1)
    targets = []
    for pdg in (6, 24, 23, 25):
        pts = hard.pt[apid == pdg]
        targets.append(ak.to_numpy(ak.fill_none(ak.max(pts, axis=1), 0.0)))
    nu = hard[isin(TRUTH_GROUPS["neutrino"])]
    px, py = ak.sum(nu.pt * np.cos(nu.phi), axis=1), ak.sum(nu.pt * np.sin(nu.phi), axis=1)
    targets.append(ak.to_numpy(np.hypot(px, py)))
    assert len(targets) == len(TRUTH_TARGETS)
    return flags.astype(np.float32), np.stack(targets, -1).astype(np.float32)


class EventGraphProcessor(processor.ProcessorABC):
    """Select hepfm's reconstructed objects from NanoEvents; accumulate flat columns and counts.

    Args:
        schema: ``"nanoaod"`` (CMS NanoAOD, ``NanoAODSchema``) or ``"delphes"`` (Delphes ROOT output,
            ``DelphesSchema``: Delphes has already isolated its leptons and photons and removed them from
            the jets, so only the pT and eta thresholds apply; ``Jet.BTag`` bit 0 is the b-tag).
        Other arguments: the selection described in the module docstring.
    """

    def __init__(
        self,
        btag: str = "auto",
        btag_threshold: float | None = None,
        jet_pt_min: float = 25.0,
        jet_eta_max: float = 3.0,
        lepton_pt_min: float = 10.0,
        photon_pt_min: float = 10.0,
        isolation_max: float = 0.15,
        jet_cleaning_cone: float = 0.4,
        schema: str = "nanoaod",
    ):
        if btag != "auto" and btag not in BTAG_WORKING_POINTS and btag_threshold is None:
            raise ValueError(f"b-tag branch {btag!r} has no default working point; pass btag_threshold")
        if schema not in ("nanoaod", "delphes"):
            raise ValueError(f"unknown schema {schema!r}; use 'nanoaod' or 'delphes'")
        self.btag, self.btag_threshold, self.schema = btag, btag_threshold, schema
        self.jet_pt_min, self.jet_eta_max = jet_pt_min, jet_eta_max
        self.lepton_pt_min, self.photon_pt_min = lepton_pt_min, photon_pt_min
        self.isolation_max, self.jet_cleaning_cone = isolation_max, jet_cleaning_cone

    @staticmethod
    def _record(obj, btag=None, charge=None) -> ak.Array:
        zeros = ak.zeros_like(obj.pt)
        return ak.zip(
            {
                "pt": obj.pt,
                "eta": obj.eta,
                "phi": obj.phi,
                "energy": _energy(obj),
                "btag": ak.values_astype(zeros if btag is None else btag, np.float32),
                "charge": ak.values_astype(zeros if charge is None else charge, np.float32),
            }
        )

    def _select_nanoaod(self, events) -> tuple[dict[str, ak.Array], ak.Array, ak.Array]:
        ele = events.Electron
        ele = ele[
            (ele.pt > self.lepton_pt_min)
            & (abs(ele.eta) < 2.5)
            & (ele.cutBased >= 2)
            & (ele.pfRelIso03_all < self.isolation_max)
        ]
        mu = events.Muon
        loose = mu.isPFcand & (mu.isGlobal | mu.isTracker)
        mu = mu[(mu.pt > self.lepton_pt_min) & (abs(mu.eta) < 2.4) & loose & (mu.pfRelIso04_all < self.isolation_max)]
        pho = events.Photon
        pho = pho[
            (pho.pt > self.photon_pt_min)
            & (abs(pho.eta) < 2.5)
            & (pho.cutBased >= 1)
            & (pho.pfRelIso03_all < self.isolation_max)
        ]
        jet = events.Jet
        jet = jet[(jet.pt > self.jet_pt_min) & (abs(jet.eta) < self.jet_eta_max) & ((jet.jetId & 2) > 0)]
        for other in (ele, mu, pho):
            jet = jet[_isolated_from(jet, other, self.jet_cleaning_cone)]
        branch = _btag_branch(events.Jet) if self.btag == "auto" else self.btag
        threshold = self.btag_threshold if self.btag_threshold is not None else BTAG_WORKING_POINTS[branch]
        objects = {
            "jet": self._record(jet, btag=jet[branch] > threshold),
            "electron": self._record(ele, charge=ele.charge),
            "muon": self._record(mu, charge=mu.charge),
            "photon": self._record(pho),
        }
        return objects, events.MET.pt, events.MET.phi

    def _select_delphes(self, events) -> tuple[dict[str, ak.Array], ak.Array, ak.Array]:
        objects = {}
        cuts = {
            "electron": ("Electron", self.lepton_pt_min, 2.5),
            "muon": ("Muon", self.lepton_pt_min, 2.4),
            "photon": ("Photon", self.photon_pt_min, 2.5),
            "jet": ("Jet", self.jet_pt_min, self.jet_eta_max),
        }
        for kind, (collection, pt_min, eta_max) in cuts.items():
            if collection not in events.fields:
                objects[kind] = self._record(events.Jet[:, :0])  # an empty collection of the right structure
                continue
            obj = events[collection]
            obj = obj[(obj.pt > pt_min) & (abs(obj.eta) < eta_max)]
            if kind == "jet":
                objects[kind] = self._record(obj, btag=(obj.BTag & 1) > 0)
            else:
                objects[kind] = self._record(obj, charge=obj.Charge if kind != "photon" else None)
        met = events.MissingET
        return objects, met.MET, met.Phi

    def process(self, events) -> dict:
        code = {t: i for i, t in enumerate(OBJECT_TYPES)}
        select = self._select_delphes if self.schema == "delphes" else self._select_nanoaod
        objects, met_pt, met_phi = select(events)
        parts = []
        for kind, rec in objects.items():
            rec = rec[ak.argsort(rec.pt, axis=1, ascending=False)][:, : MAX_OBJECTS[kind]]
            parts.append(ak.with_field(rec, ak.values_astype(ak.full_like(rec.pt, code[kind]), np.float32), "type"))
        met_pt = ak.values_astype(met_pt, np.float32)
        zeros = ak.zeros_like(met_pt)
        parts.append(
            ak.zip(
                {
                    k: ak.unflatten(ak.values_astype(v, np.float32), 1)
                    for k, v in {
                        "pt": met_pt,
                        "eta": zeros,
                        "phi": met_phi,
                        "energy": met_pt,
                        "btag": zeros,
                        "charge": zeros,
                        "type": ak.full_like(met_pt, code["met"]),
                    }.items()
                }
            )
        )
        parts = [ak.zip({f: ak.values_astype(p[f], np.float32) for f in _COLUMNS}) for p in parts]
        merged = ak.concatenate(parts, axis=1)
        merged = merged[ak.argsort(merged.pt, axis=1, ascending=False)]
        weight = np.sign(ak.to_numpy(events.genWeight)) if "genWeight" in events.fields else np.ones(len(events))
        out = {
            "counts": processor.column_accumulator(ak.to_numpy(ak.num(merged, axis=1)).astype(np.int64)),
            "weight": processor.column_accumulator(np.asarray(weight, dtype=np.float64)),
        }
        if self.schema == "nanoaod" and "GenPart" in events.fields:
            flags, targets = _hard_process_truth(events.GenPart)
            out["truth"] = processor.column_accumulator(flags)
            out["targets"] = processor.column_accumulator(targets)
        for f in OBJECT_FIELDS:
            out[f] = processor.column_accumulator(ak.to_numpy(ak.flatten(merged[f[4:]])).astype(np.float32))
        return out

    def postprocess(self, accumulator):
        return accumulator


_COLUMNS = tuple(f[4:] for f in OBJECT_FIELDS)


def read_nanoaod(
    paths: str | Path | list[str | Path],
    *,
    class_name: str | None = None,
    max_objects: int | None = None,
    max_events: int | None = None,
    executor: str = "iterative",
    workers: int = 1,
    scheduler: str | None = None,
    chunksize: int = 100_000,
    progress: bool = False,
    **selection,
) -> EventSample:
    """Read NanoAOD files into an :class:`EventSample` of reconstructed objects with coffea.

    Args:
        paths: one file or a list of files (tree ``Events``).
        class_name: the single class the events get (default: the first file's stem).
        max_objects: pad to at most this many objects per event (default: the largest count).
        max_events: stop after about this many events (whole chunks are read; the sample is cut to it).
        executor: ``"iterative"`` (this process) or ``"dask"`` (a ``LocalCluster`` of ``workers`` processes,
            or the cluster at ``scheduler``).
        chunksize: events per coffea chunk.
        progress: show coffea's progress bar.
        selection: passed to :class:`EventGraphProcessor` (e.g. ``btag="btagDeepFlavB", btag_threshold=0.2783``).

    Returns:
        An :class:`EventSample` with ``particle_features`` ``(pt, eta, phi, energy, btag, charge, type)``, and
        for simulation the hard-process truth.
    """
    from coffea.nanoevents import NanoAODSchema

    return _read(
        paths,
        "NanoAOD",
        "Events",
        NanoAODSchema,
        EventGraphProcessor(**selection),
        class_name=class_name,
        max_objects=max_objects,
        max_events=max_events,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        chunksize=chunksize,
        progress=progress,
    )


def read_delphes(paths: str | Path | list[str | Path], **kwargs) -> EventSample:
    """Read Delphes ROOT output (tree ``Delphes``) the same way, with coffea's ``DelphesSchema``.

    Takes the arguments of :func:`read_nanoaod`; Delphes has no ``isHardProcess`` flag, so no truth is read.
    """
    from coffea.nanoevents import DelphesSchema

    selection = {k: kwargs.pop(k) for k in list(kwargs) if k not in _READ_OPTIONS}
    return _read(
        paths, "Delphes", "Delphes", DelphesSchema, EventGraphProcessor(schema="delphes", **selection), **kwargs
    )


_READ_OPTIONS = ("class_name", "max_objects", "max_events", "executor", "workers", "scheduler", "chunksize", "progress")


def _read(
    paths,
    what: str,
    treename: str,
    schema,
    proc: EventGraphProcessor,
    *,
    class_name=None,
    max_objects=None,
    max_events=None,
    executor="iterative",
    workers=1,
    scheduler=None,
    chunksize=100_000,
    progress=False,
) -> EventSample:
    files = [Path(p) for p in (paths if isinstance(paths, list | tuple) else [paths])]
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: no such {what} file")
    fileset = {"events": {"files": {str(f): treename for f in files}}}
    maxchunks = None if max_events is None else max(1, -(-max_events // chunksize))
    if executor not in ("iterative", "dask"):
        raise ValueError(f"unknown executor {executor!r}; use 'iterative' or 'dask'")
    with ExitStack() as stack:
        if executor == "dask":
            ex = processor.DaskExecutor(client=stack.enter_context(dask_client(workers, scheduler)), status=progress)
        else:
            ex = processor.IterativeExecutor(status=progress)
        runner = processor.Runner(
            executor=ex,
            pre_executor=processor.IterativeExecutor(status=progress),
            schema=schema,
            chunksize=chunksize,
            maxchunks=maxchunks,
        )
        try:
            with _quiet_schema():
                out = runner(fileset, proc, treename=treename)
        except Exception as err:  # coffea re-raises a processor's error as a plain Exception naming the chunk
            raise DataError(
                f"{files[0] if len(files) == 1 else files}: cannot read as {what} ({type(err).__name__}: {err})"
            ) from err
    array = accumulated_to_events(out)
    if max_events is not None:
        array = array[:max_events]
    name = class_name or files[0].stem
    return events_to_sample(
        array, [name], max_particles=max_objects, source=str(files[0] if len(files) == 1 else files[0].parent)
    )


def accumulated_to_events(out: dict) -> ak.Array:
    """Event records (the factory's layout, label 0) from the accumulated output of :class:`EventGraphProcessor`."""
    counts = out["counts"].value
    record = {"label": np.zeros(len(counts), dtype=np.int32), "weight": out["weight"].value}
    for f in OBJECT_FIELDS:
        record[f] = ak.unflatten(out[f].value, counts)
    if "truth" in out:  # simulation: hard-process truth from GenPart, as the factory writes it
        for k, name in enumerate(TRUTH_LABELS):
            record[f"truth_{name}"] = out["truth"].value[:, k].astype(np.int8)
        for k, name in enumerate(TRUTH_TARGETS):
            record[f"target_{name}"] = out["targets"].value[:, k]
    return ak.zip(record, depth_limit=1)
