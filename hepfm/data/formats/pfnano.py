"""CMS PFNano (NanoAOD plus particle-flow candidates): reconstructed jets with their constituents.

PFNano (github.com/cms-jet/PFNano) is CMS NanoAOD with every particle-flow candidate of the event in
``PFCands_*`` and, per jet collection, links from each jet to its constituents: ``<coll>PFCands_jetIdx``
names the jet (its index in ``<coll>_*``) and ``<coll>PFCands_pFCandsIdx`` the candidate (its index in
``PFCands_*``). :func:`read` gathers the constituents of AK8 jets (``FatJet``, the default) or AK4 jets
(``Jet``) through those two branches and hands their four-momenta, charges and particle ids to
:func:`~hepfm.data.sample.build_jet_sample`, so a CMS jet gets exactly the features of every other source.
:func:`read_pfnano_scores` returns CMS's own jet-level branches (ParticleNet scores by default) for the same
jets in the same order. Both run a coffea processor over any number of files, in this process
(``IterativeExecutor``) or on a Dask cluster (``DaskExecutor``), as :mod:`.nanoaod` does; jets come out in
file, event and jet order whatever the executor.

Choices:

* Four-momenta: CMS reconstructs AK8 jets from PUPPI-weighted candidates (Bertolini et al.,
  arXiv:1407.6013) and, in Run 2 NanoAOD, AK4 jets from charged-hadron-subtracted candidates, unweighted.
  ``puppi=None`` (default) therefore scales each ``FatJet`` constituent's four-momentum by
  ``PFCands_puppiWeight`` and leaves ``Jet`` constituents as they are; a hepfm jet, the sum of its
  constituents, is then CMS's raw (uncorrected) jet, ``<coll>_pt * (1 - <coll>_rawFactor)``. On the shipped
  file (24 AK8 and 64 AK4 jets) the weighted sums reproduce the raw AK8 pT to a median 0.05% (at most 0.26%)
  and the raw AK8 mass to 0.24% at most, where the unweighted sums are a median 0.24% (pT) and up to 19%
  (mass) off; the unweighted AK4 sums reproduce the raw AK4 pT to a median 0.03%, the weighted ones
  undershoot by 13% (median). Run 3 NanoAOD clusters AK4 jets from PUPPI candidates as well: pass ``puppi=True`` there.
  The jet-energy-corrected ``<coll>_pt`` is one of :func:`read_pfnano_scores`'s branches.
* Particle id: ``PFCands_pdgId`` is hepfm's pid and ``PFCands_charge`` its charge, so 211, 130, 22, 11 and 13
  become the charged-hadron, neutral-hadron, photon, electron and muon flags. The forward calorimeter's
  candidates, pdgId 1 (hadronic, ``h_HF``) and 2 (electromagnetic, ``egamma_HF``), become 130 and 22: like
  their barrel partners they are neutral deposits without a track, hadronic or electromagnetic.
* Selection: jets with ``<coll>_pt > pt_min``, ``|<coll>_eta| < eta_max`` and ``<coll>_msoftdrop >=
  msoftdrop_min`` (CMS's corrected pT and its soft-drop mass); by default every jet of the file. A usual
  boosted selection is ``pt_min=200, eta_max=2.4, msoftdrop_min=40``.
* Labels: none (one class ``"unlabelled"``), ``"hadronFlavour"`` (:data:`HADRON_FLAVOUR_CLASSES` from
  ``<coll>_hadronFlavour`` 0, 4, 5) or ``"genpart"`` (:data:`GENPART_CLASSES`: the jet lies within
  ``match_radius`` of a last-copy generator top, H, Z or W, in that order of precedence, so that a top jet
  holding its W is a top jet; else ``"QCD"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from numbers import Real
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hepfm.core.errors import DataError, OptionError
from hepfm.core.parallel import dask_client
from hepfm.core.physics import p4_from_pt_eta_phi_m
from hepfm.data.formats.checks import check_limits, existing, library_errors
from hepfm.data.sample import JetSample, build_jet_sample
from hepfm.data.schema import MAX_PARTICLES

__all__ = [
    "detect",
    "read",
    "read_pfnano_scores",
    "PFNanoJetProcessor",
    "LABELS",
    "HADRON_FLAVOUR_CLASSES",
    "GENPART_CLASSES",
    "UNLABELLED",
]

#: Values of ``labels=``: jets labelled by their hadron flavour or by generator matching.
LABELS = ("hadronFlavour", "genpart")
#: Classes of ``labels="hadronFlavour"``, for ``hadronFlavour`` 0, 4 and 5.
HADRON_FLAVOUR_CLASSES = ("light", "charm", "bottom")
_HADRON_FLAVOURS = (0, 4, 5)
#: Classes of ``labels="genpart"``.
GENPART_CLASSES = ("QCD", "top", "W", "Z", "H")
# Matching precedence and |pdgId| of the generator particles behind each class but QCD.
_GENPART_MATCH = (("top", 6), ("H", 25), ("Z", 23), ("W", 24))
_IS_LAST_COPY = 1 << 13  # GenPart_statusFlags bit 13
#: The one class of unlabelled jets.
UNLABELLED = "unlabelled"
# Forward-calorimeter candidates -> the pdgId of their barrel partners.
_HF_PDGID = {1: 130, 2: 22}
_CANDIDATE_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pdgId")
_LINK_COLUMNS = ("px", "py", "pz", "energy", "charge", "pid")  # one value per constituent
_TREE = "Events"


def detect(file) -> bool:
    """Whether an open uproot file has PFNano's layout: tree ``Events`` with ``PFCands_pt`` and the links
    of ``FatJet`` or ``Jet`` to them."""
    if _TREE not in file:
        return False
    names = set(file[_TREE].keys())
    links = "FatJetPFCands_pFCandsIdx" in names or "JetPFCands_pFCandsIdx" in names
    return links and "PFCands_pt" in names


class PFNanoJetProcessor:
    """Select jets of one collection from flat PFNano branches; accumulate flat per-jet and per-link columns.

    A coffea processor (a callable of one chunk of events) for coffea's ``BaseSchema``, one field per branch,
    which every NanoAOD version loads; the constituents are gathered through the index branches rather than
    ``PFNanoAODSchema``'s ``FatJet.constituents``, which coffea 2026.9 refuses for some PFNano versions (the
    shipped CMS file among them). coffea is imported only when it runs, so that importing hepfm's readers
    stays quick.

    Args:
        files: the files in reading order; each jet's position (file, event, jet) is accumulated with it,
            so that jets can be put back in that order whatever order the chunks arrive in.
        collection: ``"FatJet"``, ``"Jet"``, or another collection with ``<collection>PFCands_*`` links.
        pt_min, eta_max, msoftdrop_min, labels, match_radius: see :func:`read`; None: no cut.
        puppi: weight constituent four-momenta by ``PFCands_puppiWeight``.
        constituents: accumulate the constituents (``counts``, ``px``, ``py``, ``pz``, ``energy``,
            ``charge``, ``pid``) and ``label``; else only the position and ``branches``.
        branches: per-jet branches to accumulate as they are, by name.
    """

    def __init__(
        self,
        files: Sequence[str],
        *,
        collection: str = "FatJet",
        pt_min: float | None = 0.0,
        eta_max: float | None = None,
        msoftdrop_min: float | None = None,
        labels: str | None = None,
        match_radius: float = 0.8,
        puppi: bool = True,
        constituents: bool = True,
        branches: Sequence[str] = (),
    ):
        self.files = {str(f): i for i, f in enumerate(files)}
        self.collection, self.pt_min, self.eta_max, self.msoftdrop_min = collection, pt_min, eta_max, msoftdrop_min
        self.labels, self.match_radius, self.puppi = labels, match_radius, puppi
        self.constituents, self.branches = constituents, tuple(dict.fromkeys(branches))

    def branches_read(self) -> dict[str, list[str]]:
        """The branches each chunk reads, by the collection whose length they share (``FatJet``, ...)."""
        c = self.collection
        jets = [f"{c}_pt", f"{c}_eta"] + ([f"{c}_msoftdrop"] if self.msoftdrop_min is not None else [])
        groups = {c: jets}
        if self.constituents:
            jets += {None: [], "hadronFlavour": [f"{c}_hadronFlavour"], "genpart": [f"{c}_phi"]}[self.labels]
            groups[f"{c}PFCands"] = [f"{c}PFCands_jetIdx", f"{c}PFCands_pFCandsIdx"]
            groups["PFCands"] = [f"PFCands_{name}" for name in _CANDIDATE_FIELDS]
            groups["PFCands"] += ["PFCands_puppiWeight"] if self.puppi else []
            if self.labels == "genpart":
                groups["GenPart"] = [f"GenPart_{name}" for name in ("eta", "phi", "pdgId", "statusFlags")]
        groups[c] = list(dict.fromkeys([*jets, *self.branches]))
        return groups

    def _check(self, events) -> None:
        """Refuse a chunk that lacks a branch, or whose branches of one collection differ in length."""
        where = events.metadata["filename"]
        groups = self.branches_read()
        names = set(events.fields)
        missing = [name for group in groups.values() for name in group if name not in names]
        if missing:
            raise DataError(f"{where}: tree {_TREE!r} lacks branch{'es' if len(missing) > 1 else ''} {missing}")
        for collection, group in groups.items():
            lengths = None
            for name in group:
                if events[name].ndim != 2:
                    raise DataError(f"{where}: branch {name!r} holds one value per event, not one per {collection}")
                if lengths is None:
                    lengths = ak.to_numpy(ak.num(events[name]))
                elif not np.array_equal(ak.to_numpy(ak.num(events[name])), lengths):
                    raise DataError(
                        f"{where}: branch {name!r} has other per-event lengths than {group[0]!r} ({collection})"
                    )

    def _flat(self, events, name: str) -> np.ndarray:
        return ak.to_numpy(ak.flatten(events[name]))

    def __call__(self, events) -> dict:
        """The accumulators (``column_accumulator``) of one chunk of events."""
        from coffea.processor import column_accumulator

        self._check(events)
        c = self.collection
        per_event = ak.to_numpy(ak.num(events[f"{c}_pt"]))
        keep = np.ones(int(per_event.sum()), dtype=bool)
        if self.pt_min is not None:
            keep &= self._flat(events, f"{c}_pt") > self.pt_min
        if self.eta_max is not None:
            keep &= np.abs(self._flat(events, f"{c}_eta")) < self.eta_max
        if self.msoftdrop_min is not None:
            keep &= self._flat(events, f"{c}_msoftdrop") >= self.msoftdrop_min
        event = np.repeat(np.arange(len(events)), per_event)
        starts = np.cumsum(per_event) - per_event
        out = {
            "file": np.full(int(keep.sum()), self.files[events.metadata["filename"]], dtype=np.int64),
            "entry": (events.metadata["entrystart"] + event)[keep].astype(np.int64),
            "jet": (np.arange(len(event)) - starts[event])[keep].astype(np.int64),
        }
        for name in self.branches:
            out[name] = self._flat(events, name)[keep]
        if self.constituents:
            out |= self._constituents(events, per_event, keep)
            out["label"] = self._labels(events, per_event)[keep]
        return {k: column_accumulator(v) for k, v in out.items()}

    def _constituents(self, events, per_event: np.ndarray, keep: np.ndarray) -> dict[str, np.ndarray]:
        c = self.collection
        jet_of_link = self._flat(events, f"{c}PFCands_jetIdx").astype(np.int64)
        cand_of_link = self._flat(events, f"{c}PFCands_pFCandsIdx").astype(np.int64)
        links = ak.to_numpy(ak.num(events[f"{c}PFCands_jetIdx"]))
        n_cands = ak.to_numpy(ak.num(events.PFCands_pt))
        event = np.repeat(np.arange(len(events)), links)
        where = f"{events.metadata['filename']} (entries from {events.metadata['entrystart']})"
        for name, index, size in (
            (f"{c}PFCands_jetIdx", jet_of_link, per_event),
            (f"{c}PFCands_pFCandsIdx", cand_of_link, n_cands),
        ):
            bad = (index < 0) | (index >= size[event])
            if bad.any():
                raise DataError(f"{where}: branch {name!r} holds {int(bad.sum())} indices outside their collection")
        jet = (np.cumsum(per_event) - per_event)[event] + jet_of_link  # index among the chunk's jets
        cand = (np.cumsum(n_cands) - n_cands)[event] + cand_of_link
        order = np.argsort(jet, kind="stable")
        jet, cand = jet[order], cand[order]
        cands = {name: self._flat(events, f"PFCands_{name}")[cand] for name in _CANDIDATE_FIELDS}
        weight = self._flat(events, "PFCands_puppiWeight")[cand].astype(np.float64) if self.puppi else 1.0
        px, py, pz, energy = (
            v * weight for v in p4_from_pt_eta_phi_m(cands["pt"], cands["eta"], cands["phi"], cands["mass"])
        )
        pid = cands["pdgId"].astype(np.int64)
        for hf, partner in _HF_PDGID.items():
            pid = np.where(np.abs(pid) == hf, partner, pid)
        selected = keep[jet]
        return {
            "counts": np.bincount(jet, minlength=len(keep))[keep].astype(np.int64),
            "px": px[selected],
            "py": py[selected],
            "pz": pz[selected],
            "energy": energy[selected],
            "charge": cands["charge"][selected].astype(np.float64),
            "pid": pid[selected],
        }

    def _labels(self, events, per_event: np.ndarray) -> np.ndarray:
        c = self.collection
        if self.labels is None:
            return np.zeros(int(per_event.sum()), dtype=np.int64)
        if self.labels == "hadronFlavour":
            flavour = self._flat(events, f"{c}_hadronFlavour")
            label = np.searchsorted(_HADRON_FLAVOURS, flavour)
            bad = ~np.isin(flavour, _HADRON_FLAVOURS)
            if bad.any():
                raise DataError(
                    f"{events.metadata['filename']}: branch '{c}_hadronFlavour' holds values "
                    f"{sorted(set(flavour[bad].tolist()))}, expected 0, 4 or 5"
                )
            return label.astype(np.int64)
        jets = ak.zip({"eta": events[f"{c}_eta"], "phi": events[f"{c}_phi"]})
        gen = ak.zip(
            {
                "eta": events.GenPart_eta,
                "phi": events.GenPart_phi,
                "apid": abs(events.GenPart_pdgId),
                "last": (events.GenPart_statusFlags & _IS_LAST_COPY) != 0,
            }
        )
        gen = gen[gen.last]
        label = np.zeros(int(per_event.sum()), dtype=np.int64)
        for name, pdg in _GENPART_MATCH:
            pairs = ak.cartesian({"j": jets, "g": gen[gen.apid == pdg]}, axis=1, nested=True)
            dphi = (pairs.j.phi - pairs.g.phi + np.pi) % (2 * np.pi) - np.pi
            near = (pairs.j.eta - pairs.g.eta) ** 2 + dphi**2 < self.match_radius**2
            matched = ak.to_numpy(ak.flatten(ak.any(near, axis=2)))
            label = np.where((label == 0) & matched, GENPART_CLASSES.index(name), label)
        return label


def _check_options(collection, pt_min, eta_max, msoftdrop_min, executor, workers, chunksize) -> None:
    if not isinstance(collection, str) or not collection:
        raise OptionError("collection", f"must be a jet collection such as 'FatJet' or 'Jet', got {collection!r}")
    for name, value in (("pt_min", pt_min), ("eta_max", eta_max), ("msoftdrop_min", msoftdrop_min)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value)):
            raise OptionError(name, f"must be a finite number or None, got {value!r}")
    if executor not in ("iterative", "dask"):
        raise OptionError("executor", f"must be 'iterative' or 'dask', got {executor!r}")
    for name, value in (("workers", workers), ("chunksize", chunksize)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(name, f"must be a positive integer, got {value!r}")


def _files(paths) -> list[Path]:
    many = isinstance(paths, Sequence) and not isinstance(paths, str)
    files = [existing(p) for p in (paths if many else [paths])]
    if not files:
        raise OptionError("path", "names no file")
    return files


@contextmanager
def _progress_bars(show: bool) -> Iterator[None]:
    """Show or hide coffea's progress bars (its executors draw them whatever their ``status``)."""
    from coffea.util import coffea_console

    quiet = coffea_console.quiet
    coffea_console.quiet = quiet or not show
    try:
        yield
    finally:
        coffea_console.quiet = quiet


def _run(files: list[Path], proc: PFNanoJetProcessor, *, executor, workers, scheduler, chunksize, progress) -> dict:
    """Run ``proc`` over ``files``: the accumulated columns, jets in file, event and jet order (constituent
    columns jagged, one list per jet)."""
    from coffea import processor
    from coffea.nanoevents import BaseSchema

    fileset = {"jets": {"files": {str(f): _TREE for f in files}}}
    with ExitStack() as stack:
        stack.enter_context(_progress_bars(progress))
        # Local files fail alike on every attempt: no retries (coffea's default of three is for remote files).
        if executor == "dask":
            client = stack.enter_context(dask_client(workers, scheduler))
            ex = processor.DaskExecutor(client=client, status=progress, retries=0)
        else:
            ex = processor.IterativeExecutor(status=progress, retries=0)
        runner = processor.Runner(
            executor=ex,
            pre_executor=processor.IterativeExecutor(status=progress, retries=0),
            schema=BaseSchema,
            chunksize=chunksize,
        )
        try:
            out = runner(fileset, proc, treename=_TREE)
        except Exception as err:  # coffea re-raises a processor's error as a plain Exception naming the chunk
            cause = next((e for e in _chain(err) if isinstance(e, DataError)), None)
            if cause is not None:
                raise DataError(str(cause)) from err
            where = files[0] if len(files) == 1 else [str(f) for f in files]
            detail = " ".join(str(err).split())[:300]
            raise DataError(f"{where}: cannot read as PFNano ({type(err).__name__}: {detail})") from err
    columns = {k: v.value for k, v in out.items()}
    order = np.lexsort((columns["jet"], columns["entry"], columns["file"]))
    if "counts" in columns:
        for name in _LINK_COLUMNS:
            columns[name] = ak.unflatten(columns[name], columns["counts"])
    return {k: v[order] for k, v in columns.items()}


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__


def read(
    path: str | Path | Sequence[str | Path],
    *,
    max_particles: int = MAX_PARTICLES,
    max_jets: int | None = None,
    collection: str = "FatJet",
    pt_min: float | None = 0.0,
    eta_max: float | None = None,
    msoftdrop_min: float | None = None,
    labels: str | None = None,
    match_radius: float = 0.8,
    puppi: bool | None = None,
    executor: str = "iterative",
    workers: int = 1,
    scheduler: str | None = None,
    chunksize: int = 100_000,
    progress: bool = False,
) -> JetSample:
    """Read the jets of PFNano files with their particle-flow constituents.

    Args:
        path: one file or a list of files (tree ``Events``); jets come in file, event and jet order.
        max_particles: P, the padded constituent length; the hardest P constituents (by pT) are kept, while
            the jet four-momentum still sums all of them.
        max_jets: keep only the first ``max_jets`` selected jets (the files are read whole); None keeps all.
        collection: ``"FatJet"`` (AK8, default) or ``"Jet"`` (AK4).
        pt_min: keep jets with ``<collection>_pt`` (corrected, GeV) above it; 0 (default) or None keeps all.
        eta_max: keep jets with ``|<collection>_eta|`` below it; None (default) keeps all.
        msoftdrop_min: keep jets with ``<collection>_msoftdrop`` (GeV) at least this; None (default) keeps all.
        labels: None (one class ``"unlabelled"``), ``"hadronFlavour"`` or ``"genpart"`` (module docstring).
        match_radius: Delta R of the ``"genpart"`` matching; 0.8, the AK8 jet radius (0.4 suits AK4 jets).
        puppi: weight constituents by ``PFCands_puppiWeight``; None (default): for ``FatJet`` only.
        executor: ``"iterative"`` (this process) or ``"dask"`` (a ``LocalCluster`` of ``workers`` processes,
            or the cluster at ``scheduler``).
        chunksize: events per coffea chunk.
        progress: show coffea's progress bars.

    Returns:
        A :class:`JetSample` with particles (N, P, 13), mask (N, P), jets (N, 5) (the raw jet: the sum of
        the weighted constituents) and labels (N,); ``has_pid`` is True.

    Raises:
        MissingInputError: a file does not exist.
        DataError: a file coffea cannot read, a branch it lacks (named), branches of one collection with
            different lengths, link indices outside their collection, or ``hadronFlavour`` other than 0, 4, 5.
        OptionError: an unknown ``labels`` or ``executor``, a non-positive ``match_radius``, ``max_particles``,
            ``max_jets``, ``workers`` or ``chunksize``.
    """
    check_limits(max_particles, max_jets)
    _check_options(collection, pt_min, eta_max, msoftdrop_min, executor, workers, chunksize)
    if labels is not None and labels not in LABELS:
        raise OptionError("labels", f"must be None or one of {list(LABELS)}, got {labels!r}")
    if isinstance(match_radius, bool) or not isinstance(match_radius, Real) or not match_radius > 0:
        raise OptionError("match_radius", f"must be a positive Delta R, got {match_radius!r}")
    files = _files(path)
    proc = PFNanoJetProcessor(
        [str(f) for f in files],
        collection=collection,
        pt_min=pt_min,
        eta_max=eta_max,
        msoftdrop_min=msoftdrop_min,
        labels=labels,
        match_radius=float(match_radius),
        puppi=collection == "FatJet" if puppi is None else bool(puppi),
    )
    columns = _run(
        files, proc, executor=executor, workers=workers, scheduler=scheduler, chunksize=chunksize, progress=progress
    )
    columns = {k: v[:max_jets] for k, v in columns.items()}
    class_names = {None: [UNLABELLED], "hadronFlavour": list(HADRON_FLAVOUR_CLASSES), "genpart": list(GENPART_CLASSES)}
    return build_jet_sample(
        columns["px"],
        columns["py"],
        columns["pz"],
        columns["energy"],
        columns["label"],
        class_names[labels],
        charge=columns["charge"],
        pid=columns["pid"],
        max_particles=max_particles,
        source=str(files[0] if len(files) == 1 else files[0].parent),
    )


def read_pfnano_scores(
    path: str | Path | Sequence[str | Path],
    branches: Sequence[str] | None = None,
    *,
    max_jets: int | None = None,
    collection: str = "FatJet",
    pt_min: float | None = 0.0,
    eta_max: float | None = None,
    msoftdrop_min: float | None = None,
    executor: str = "iterative",
    workers: int = 1,
    scheduler: str | None = None,
    chunksize: int = 100_000,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """CMS's jet-level branches for the jets :func:`read` returns with the same selection, in the same order.

    Args:
        path, max_jets, collection, pt_min, eta_max, msoftdrop_min, executor, workers, scheduler, chunksize,
            progress: as for :func:`read`.
        branches: per-jet branches by full name (``"FatJet_particleNet_TvsQCD"``, ``"FatJet_pt"``,
            ``"FatJet_hadronFlavour"``); None (default): every ``<collection>_particleNet*`` branch of the
            first file.

    Returns:
        Branch name -> (N,) array in the branch's own dtype, row i belonging to jet i of :func:`read`.

    Raises:
        MissingInputError: a file does not exist.
        DataError: a file coffea cannot read, a branch it lacks or one that is not per jet (named), or no
            ParticleNet branches when ``branches`` is None.
        OptionError: an unknown ``executor``, a non-positive ``max_jets``, ``workers`` or ``chunksize``.
    """
    check_limits(None, max_jets)
    _check_options(collection, pt_min, eta_max, msoftdrop_min, executor, workers, chunksize)
    files = _files(path)
    if branches is None:
        with library_errors(files[0], f"tree {_TREE!r}"), uproot.open(files[0]) as file:
            names = file[_TREE].keys() if _TREE in file else []
        branches = [name for name in names if name.startswith(f"{collection}_particleNet")]
        if not branches:
            raise DataError(f"{files[0]}: tree {_TREE!r} has no branches '{collection}_particleNet*'; pass branches=")
    elif isinstance(branches, str):
        branches = [branches]
    proc = PFNanoJetProcessor(
        [str(f) for f in files],
        collection=collection,
        pt_min=pt_min,
        eta_max=eta_max,
        msoftdrop_min=msoftdrop_min,
        constituents=False,
        branches=branches,
    )
    columns = _run(
        files, proc, executor=executor, workers=workers, scheduler=scheduler, chunksize=chunksize, progress=progress
    )
    return {name: columns[name][:max_jets] for name in proc.branches}
