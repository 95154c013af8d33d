"""Every field name and layout constant of hepfm's data, in one place.

Jets (:class:`~hepfm.data.sample.JetSample`): per-constituent features :data:`PARTICLE_FEATURES`, per-jet
features :data:`JET_FEATURES`, padded to :data:`MAX_PARTICLES` constituents unless asked otherwise.
Events (:class:`~hepfm.data.sample.EventSample`): reconstructed objects :data:`OBJECT_FIELDS` of the
types :data:`OBJECT_TYPES` with truth :data:`TRUTH_LABELS` / :data:`TRUTH_TARGETS`, or particle-flow
candidates :data:`PARTICLE_FIELDS`; the event model's graph features are :data:`NODE_FEATURES`,
:data:`EDGE_FEATURES` and :data:`GLOBAL_FEATURES`. On disk (:mod:`hepfm.data.storage`) a dataset is
versioned by :data:`SCHEMA_VERSION` and, for events, :data:`EVENT_SCHEMA`; ``docs/event-schema.md``
documents the event fields.
"""

from __future__ import annotations

__all__ = [
    "PARTICLE_FEATURES",
    "PID_FEATURES",
    "JET_FEATURES",
    "MAX_PARTICLES",
    "MAX_EVENT_PARTICLES",
    "JETCLASS_CLASSES",
    "CLASS_ALIASES",
    "OBJECT_TYPES",
    "OBJECT_FIELDS",
    "OBJECT_COLUMNS",
    "TRUTH_LABELS",
    "TRUTH_GROUPS",
    "TRUTH_TARGETS",
    "PARTICLE_FIELDS",
    "CONTENTS",
    "EVENT_SCHEMA",
    "MAX_OBJECTS",
    "NODE_FEATURES",
    "EDGE_FEATURES",
    "GLOBAL_FEATURES",
    "SCHEMA_VERSION",
    "MANIFEST",
    "JET_FIELDS",
]

# -- jets ------------------------------------------------------------------------------------------------------

#: Constituent features, in order, of ``JetSample.particles[..., i]`` (OmniLearn's set plus PID flags).
PARTICLE_FEATURES = (
    "deta",  # eta - eta_jet
    "dphi",  # phi - phi_jet, wrapped
    "log_pt",
    "log_energy",
    "log_pt_rel",  # log(pt / pt_jet)
    "log_energy_rel",  # log(E / E_jet)
    "delta_r",
    "charge",
    "is_charged_hadron",
    "is_neutral_hadron",
    "is_photon",
    "is_electron",
    "is_muon",
)
#: Indices of the particle-identification features (charge and flags), absent in some public formats.
PID_FEATURES = tuple(range(7, 13))
#: Jet-level features, in order, of ``JetSample.jets[:, i]``.
JET_FEATURES = ("pt", "eta", "phi", "mass", "n_particles")
#: Constituents a jet is padded (or cut) to by default: above the ~100 real particles a detector-level
#: large-radius jet has at most, so no jet loses a particle.
MAX_PARTICLES = 128
#: Particles (or objects) an event is padded to by default: the 700 hadrons the LHC Olympics files store.
MAX_EVENT_PARTICLES = 700
#: The ten JetClass classes, in JetClass label order (Qu, Li, Qian, arXiv:2202.03772).
JETCLASS_CLASSES = ("QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl")
#: Class names of fine-tuning samples -> the pretrained class each one is: the top-tagging classes of the
#: generated recipes (``qcd``, ``top``: light-parton and hadronic-top jets), of the real top-tagging sample
#: (``top``) and of PFNano jets matched to a generator top, W or Z (``top``, ``W``, ``Z``). A PFNano ``H``
#: jet has no single row: JetClass splits the Higgs by its decay. A fine-tuning head can start from these
#: rows of a pretrained classifier.
CLASS_ALIASES = {"qcd": "QCD", "top": "Tbqq", "W": "Wqq", "Z": "Zqq"}

# -- events ----------------------------------------------------------------------------------------------------

#: Object types, in the order of their integer code in the ``obj_type`` field.
OBJECT_TYPES = ("jet", "electron", "muon", "photon", "met")
#: Per-object fields of an event record (jagged), in the order of the model's raw features.
OBJECT_FIELDS = ("obj_pt", "obj_eta", "obj_phi", "obj_energy", "obj_btag", "obj_charge", "obj_type")
#: The columns of an object-level ``EventSample.particles``: :data:`OBJECT_FIELDS` without the prefix.
OBJECT_COLUMNS = tuple(f.removeprefix("obj_") for f in OBJECT_FIELDS)
#: Multilabel truth: is there at least one such particle in the hard process?
TRUTH_LABELS = ("top", "W", "Z", "H", "bottom", "lepton", "neutrino", "photon")
#: |PDG id| of the particles behind each truth label.
TRUTH_GROUPS = {
    "top": (6,),
    "W": (24,),
    "Z": (23,),
    "H": (25,),
    "bottom": (5,),
    "lepton": (11, 13, 15),
    "neutrino": (12, 14, 16),
    "photon": (22,),
}
#: Kinematic truth targets in GeV.
TRUTH_TARGETS = ("top_pt", "W_pt", "Z_pt", "H_pt", "true_met")
#: Per-particle fields of a particle-level event record (``content="particles"``): every particle-flow
#: candidate, as the LHC Olympics sets store their hadrons.
PARTICLE_FIELDS = ("part_pt", "part_eta", "part_phi", "part_energy")
#: What an event record holds: reconstructed objects with truth, or particle-flow candidates.
CONTENTS = ("objects", "particles")
#: Version of the event layout (fields above); stored in every shard.
EVENT_SCHEMA = 1
#: The most objects of each type an event keeps (the hardest); MET is always one.
MAX_OBJECTS = {"jet": 12, "electron": 4, "muon": 4, "photon": 4}

#: Node features of the event graphs: log pT, eta, sin phi, cos phi, log E, b-tag, charge, one-hot type.
NODE_FEATURES = (
    "log_pt",
    "eta",
    "sin_phi",
    "cos_phi",
    "log_energy",
    "btag",
    "charge",
    *(f"is_{t}" for t in OBJECT_TYPES),
)
#: Edge features of the event graphs, between the two objects an edge joins.
EDGE_FEATURES = ("delta_eta", "delta_phi", "delta_r")
#: Global features of an event graph: log(1 + count) of objects, jets, b-tagged jets, leptons, photons, and
#: log(1 + MET / GeV), log(1 + HT / GeV).
GLOBAL_FEATURES = ("log_n_objects", "log_n_jets", "log_n_btag", "log_n_leptons", "log_n_photons", "log_met", "log_ht")

# -- storage ---------------------------------------------------------------------------------------------------

#: Version of the on-disk layout; bumped whenever fields change meaning.
SCHEMA_VERSION = 1
#: A dataset directory's manifest.
MANIFEST = "dataset.json"
#: Fields of a jet shard's records.
JET_FIELDS = ("label", "part_px", "part_py", "part_pz", "part_energy", "part_charge", "part_pid")
