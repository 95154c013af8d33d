"""The process registry: named Pythia8 set-ups and the jet recipes built on them.

A :class:`Process` is a list of Pythia8 settings for the hard process and decays. A :class:`JetRecipe`
adds the jet definition, the kinematic window and the truth-matching rule that says which jets of an
event belong to the class. The ten JetClass classes (Qu, Li, Qian, arXiv 2202.03772) and the
fine-tuning samples (``top``, ``qcd``, ``quark``, ``gluon``) are recipes; the event factory reuses
the same processes.

Global settings common to every run (13 TeV, Monash tune, MPI and hadronization on) live in
:data:`COMMON_SETTINGS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hepfm.core.errors import OptionError

__all__ = [
    "COMMON_SETTINGS",
    "Process",
    "JetRecipe",
    "PROCESSES",
    "JET_RECIPES",
    "get_recipe",
    "EVENT_PROCESSES",
    "PRETRAINING_PROCESSES",
    "BSM_PROCESSES",
    "LHCO_PROCESSES",
    "LHCO_TRIGGER_PT",
    "get_event_process",
    "EVENT_TASKS",
    "EventTask",
    "lhe_process",
    "event_settings",
]

#: Settings applied to every generator. Monash 2013 is Pythia8's default tune (Tune:pp = 14); it is
#: written out so a change of Pythia default cannot silently change the physics.
COMMON_SETTINGS = (
    "Beams:idA = 2212",
    "Beams:idB = 2212",
    "Beams:eCM = 13000.",
    "Tune:pp = 14",
    "PartonLevel:MPI = on",
    "HadronLevel:all = on",
    "Next:numberCount = 0",
    "Print:quiet = on",
)

_Z_INVISIBLE = ("23:onMode = off", "23:onIfAny = 12 14 16", "WeakZ0:gmZmode = 2")
_Z_HADRONIC = ("23:onMode = off", "23:onIfAny = 1 2 3 4 5", "WeakZ0:gmZmode = 2")
_W_HADRONIC = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_W_LEPTONIC = ("24:onMode = off", "24:onIfAny = 11 13 15")
_ZH = ("HiggsSM:ffbar2HZ = on", *_Z_INVISIBLE)
_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")
_V_JET = ("WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on")
_W_JET = ("WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on")


@dataclass(frozen=True)
class Process:
    """A named Pythia8 configuration of the hard process and its decays.

    Attributes:
        name: registry key.
        settings: Pythia8 ``readString`` lines (on top of :data:`COMMON_SETTINGS`).
        description: one line for ``hepfm generate --list``.
    """

    name: str
    settings: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class JetRecipe:
    """How to make one class of jets.

    Attributes:
        name: class name written with the data (e.g. ``"Tbqq"``).
        process: a key of :data:`PROCESSES`.
        match: truth-matching rule, one of ``"parton"`` (the jet contains an outgoing hard-process
            parton listed in ``partons``) or ``"resonance"`` (the jet contains the resonance
            ``resonance`` and all its visible decay products, decaying as ``decay`` says).
        resonance: PDG id of the resonance (6, 23, 24, 25) for ``match="resonance"``.
        decay: required decay: ``"qq"`` (all W/Z hadronic), ``"bb"``, ``"cc"``, ``"gg"``,
            ``"lv"`` (the W leptonic), ``"qqlv"`` (one W of H->WW* hadronic, one leptonic).
        partons: allowed |PDG id| of the parton for ``match="parton"``.
        radius: anti-kT radius R; also the matching cone.
        pt_min, pt_max: jet pT window in GeV.
        eta_max: |eta| acceptance of the jet axis.
        pt_hat_min, pt_hat_max: Pythia8 PhaseSpace cuts that put the hard process into the window.
        settings_by_parity: alternative extra settings used on even/odd shards, for decays Pythia8
            can only set per charge (H -> W+W- with one W leptonic).
    """

    name: str
    process: str
    match: str
    resonance: int = 0
    decay: str = ""
    partons: tuple[int, ...] = (1, 2, 3, 4, 5, 21)
    radius: float = 0.8
    pt_min: float = 500.0
    pt_max: float = 1000.0
    eta_max: float = 2.0
    pt_hat_min: float = 450.0
    pt_hat_max: float = 1100.0
    settings_by_parity: tuple[tuple[str, ...], tuple[str, ...]] = field(default=((), ()))

    def settings(self, shard_index: int = 0) -> tuple[str, ...]:
        """All Pythia8 settings for a shard of this recipe (common + process + phase space)."""
        extra = self.settings_by_parity[shard_index % 2]
        return (
            *COMMON_SETTINGS,
            *PROCESSES[self.process].settings,
            *extra,
            f"PhaseSpace:pTHatMin = {self.pt_hat_min}",
            f"PhaseSpace:pTHatMax = {self.pt_hat_max}",
        )

    @property
    def description(self) -> str:
        return (
            f"{PROCESSES[self.process].description}; anti-kT R={self.radius}, "
            f"pT {self.pt_min:g}-{self.pt_max:g} GeV, |eta|<{self.eta_max:g}"
        )


PROCESSES: dict[str, Process] = {
    p.name: p
    for p in [
        Process("zjet_nunu", (*_V_JET, *_Z_INVISIBLE), "Z(->nunu) + jet: quark and gluon jets"),
        Process("zq_nunu", ("WeakBosonAndParton:qg2gmZq = on", *_Z_INVISIBLE), "Z(->nunu) + quark"),
        Process("zg_nunu", ("WeakBosonAndParton:qqbar2gmZg = on", *_Z_INVISIBLE), "Z(->nunu) + gluon"),
        Process("dijet", ("HardQCD:all = on",), "QCD 2->2 dijets"),
        Process("zh_bb", (*_ZH, "25:onMode = off", "25:onIfAny = 5"), "Z(->nunu) H(->bb)"),
        Process("zh_cc", (*_ZH, "25:onMode = off", "25:onIfAny = 4"), "Z(->nunu) H(->cc)"),
        Process("zh_gg", (*_ZH, "25:onMode = off", "25:onIfAny = 21"), "Z(->nunu) H(->gg)"),
        Process("zh_4q", (*_ZH, "25:onMode = off", "25:onIfMatch = 24 -24", *_W_HADRONIC), "Z(->nunu) H(->WW*->4q)"),
        Process("zh_lvqq", (*_ZH, "25:onMode = off", "25:onIfMatch = 24 -24"), "Z(->nunu) H(->WW*->l nu q q')"),
        Process("zjet_qq", (*_V_JET, *_Z_HADRONIC), "Z(->qq) + jet"),
        Process("wjet_qq", (*_W_JET, *_W_HADRONIC), "W(->qq') + jet"),
        Process("ttbar_had", (*_TTBAR, *_W_HADRONIC), "ttbar, both W->qq'"),
        Process("ttbar_lep", (*_TTBAR, *_W_LEPTONIC), "ttbar, both W->l nu"),
    ]
}

# H -> W+ W- with exactly one W leptonic: Pythia8 sets decays per charge, so alternate which
# charge decays leptonically between even and odd shards to keep the sample charge-symmetric.
_QQLV_PARITY = (
    ("24:onMode = off", "24:onPosIfAny = 1 2 3 4 5", "24:onNegIfAny = 11 13 15"),
    ("24:onMode = off", "24:onPosIfAny = 11 13 15", "24:onNegIfAny = 1 2 3 4 5"),
)


JET_RECIPES: dict[str, JetRecipe] = {
    r.name: r
    for r in [
        JetRecipe("QCD", "zjet_nunu", "parton"),
        JetRecipe("Hbb", "zh_bb", "resonance", resonance=25, decay="bb"),
        JetRecipe("Hcc", "zh_cc", "resonance", resonance=25, decay="cc"),
        JetRecipe("Hgg", "zh_gg", "resonance", resonance=25, decay="gg"),
        JetRecipe("H4q", "zh_4q", "resonance", resonance=25, decay="qq"),
        JetRecipe("Hqql", "zh_lvqq", "resonance", resonance=25, decay="qqlv", settings_by_parity=_QQLV_PARITY),
        JetRecipe("Zqq", "zjet_qq", "resonance", resonance=23, decay="qq"),
        JetRecipe("Wqq", "wjet_qq", "resonance", resonance=24, decay="qq"),
        JetRecipe("Tbqq", "ttbar_had", "resonance", resonance=6, decay="qq"),
        JetRecipe("Tbl", "ttbar_lep", "resonance", resonance=6, decay="lv"),
        # Fine-tuning samples. Top tagging follows the reference dataset of Kasieczka et al.
        # (arXiv 1902.09914): R=0.8, pT 550-650 GeV, |eta|<2, top and its decay quarks inside the jet.
        JetRecipe(
            "top",
            "ttbar_had",
            "resonance",
            resonance=6,
            decay="qq",
            pt_min=550.0,
            pt_max=650.0,
            pt_hat_min=500.0,
            pt_hat_max=700.0,
        ),
        JetRecipe("qcd", "dijet", "parton", pt_min=550.0, pt_max=650.0, pt_hat_min=500.0, pt_hat_max=700.0),
        # Quark/gluon follows the EnergyFlow sample (Komiske, Metodiev, Thaler, arXiv 1810.05165):
        # Z(->nunu) + light quark or gluon, R=0.4, pT 500-550 GeV, |y|<1.7.
        JetRecipe(
            "quark",
            "zq_nunu",
            "parton",
            partons=(1, 2, 3),
            radius=0.4,
            pt_min=500.0,
            pt_max=550.0,
            eta_max=1.7,
            pt_hat_min=450.0,
            pt_hat_max=650.0,
        ),
        JetRecipe(
            "gluon",
            "zg_nunu",
            "parton",
            partons=(21,),
            radius=0.4,
            pt_min=500.0,
            pt_max=550.0,
            eta_max=1.7,
            pt_hat_min=450.0,
            pt_hat_max=650.0,
        ),
    ]
}


def get_recipe(name: str) -> JetRecipe:
    """The recipe called ``name``; a clear error lists the known names otherwise."""
    try:
        return JET_RECIPES[name]
    except KeyError:
        raise OptionError("classes", f"unknown jet class or recipe {name!r}; known: {', '.join(JET_RECIPES)}") from None


# -- whole-event processes ---------------------------------------------------------------------------

_VJET_PTHAT = ("PhaseSpace:pTHatMin = 20.",)

#: Processes of whole-event production (``hepfm generate events``). The first twelve are the
#: pretraining set (:data:`PRETRAINING_PROCESSES`); the rest are beyond the Standard Model, kept out of
#: pretraining for the unseen-process fine-tuning tasks. Decays are Pythia8's defaults unless stated.
EVENT_PROCESSES: dict[str, Process] = {
    p.name: p
    for p in [
        Process("ggH", ("HiggsSM:gg2H = on",), "gluon-fusion Higgs"),
        Process("vbfH", ("HiggsSM:ff2Hff(t:WW) = on", "HiggsSM:ff2Hff(t:ZZ) = on"), "vector-boson-fusion Higgs"),
        Process("WH", ("HiggsSM:ffbar2HW = on",), "Higgs-strahlung with a W"),
        Process("ZH", ("HiggsSM:ffbar2HZ = on",), "Higgs-strahlung with a Z"),
        Process("ttH", ("HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on"), "ttbar + Higgs"),
        Process("ttbar", _TTBAR, "top-quark pairs"),
        Process("singletop", ("Top:qq2tq(t:W) = on", "Top:ffbar2tqbar(s:W) = on"), "single top, t- and s-channel"),
        Process("WW", ("WeakDoubleBoson:ffbar2WW = on",), "W pairs"),
        Process("WZ", ("WeakDoubleBoson:ffbar2ZW = on", "WeakZ0:gmZmode = 2"), "WZ"),
        Process("ZZ", ("WeakDoubleBoson:ffbar2gmZgmZ = on", "WeakZ0:gmZmode = 2"), "Z pairs"),
        Process("Wjets", (*_W_JET, *_VJET_PTHAT), "W + jet, pT(hat) > 20 GeV"),
        Process("Zjets", (*_V_JET, "WeakZ0:gmZmode = 2", *_VJET_PTHAT), "Z + jet, pT(hat) > 20 GeV"),
        # beyond the Standard Model
        Process(
            "Zprime_ttbar",
            (
                "NewGaugeBoson:ffbar2gmZZprime = on",
                "Zprime:gmZmode = 3",
                "32:m0 = 750.",
                "32:onMode = off",
                "32:onIfAny = 6",
            ),
            "Z'(750 GeV) -> ttbar",
        ),
        Process(
            "Zprime_WW",
            (
                "NewGaugeBoson:ffbar2gmZZprime = on",
                "Zprime:gmZmode = 3",
                "Zprime:coup2WW = 1.",
                "32:m0 = 1000.",
                "32:onMode = off",
                "32:onIfMatch = 24 -24",
            ),
            "Z'(1 TeV) -> WW",
        ),
        Process(
            "Wprime_WZ",
            (
                "NewGaugeBoson:ffbar2Wprime = on",
                "Wprime:coup2WZ = 1.",
                "34:m0 = 600.",
                "34:onMode = off",
                "34:onIfMatch = 24 23",
            ),
            "W'(600 GeV) -> WZ",
        ),
        Process(
            "H2_ZZ",
            ("Higgs:useBSM = on", "HiggsBSM:gg2H2 = on", "35:m0 = 400.", "35:onMode = off", "35:onIfMatch = 23 23"),
            "heavy CP-even Higgs H2 (400 GeV, 2HDM) -> ZZ",
        ),
        # resonant anomaly detection as in the LHC Olympics 2020 R&D set (Kasieczka et al., arXiv 2101.08320)
        Process(
            "qcd_dijet",
            (
                "HardQCD:all = on",
                "PhaseSpace:pTHatMin = 1000.",
                "PhaseSpace:mHatMin = 2700.",
                "PhaseSpace:mHatMax = 4500.",
            ),
            "QCD dijets, pT(hat) > 1 TeV, 2.7 < m(hat) < 4.5 TeV (LHCO background)",
        ),
        Process(
            "Wprime_XY",
            (
                "NewGaugeBoson:ffbar2Wprime = on",
                "Wprime:coup2WZ = 1.",
                "34:m0 = 3500.",
                "34:onMode = off",
                "34:onIfMatch = 24 23",
                "23:m0 = 500.",
                "23:onMode = off",
                "23:onIfAny = 1 2 3 4 5",
                "WeakZ0:gmZmode = 2",
                "24:m0 = 100.",
                "24:onMode = off",
                "24:onIfAny = 1 2 3 4 5",
            ),
            "W'(3.5 TeV) -> X(500 GeV) Y(100 GeV), X, Y -> qq (LHCO signal; X, Y are Pythia8's Z and W "
            "with these masses)",
        ),
    ]
}
#: The twelve Standard-Model processes of event-level pretraining, in label order.
PRETRAINING_PROCESSES = ("ggH", "vbfH", "WH", "ZH", "ttH", "ttbar", "singletop", "WW", "WZ", "ZZ", "Wjets", "Zjets")
#: Processes never seen in pretraining.
BSM_PROCESSES = ("Zprime_ttbar", "Zprime_WW", "Wprime_WZ", "H2_ZZ")
#: Background and signal of resonant anomaly detection (LHCO R&D-like), made as particle-level events
#: (``generate_events(..., content="particles", trigger_pt=LHCO_TRIGGER_PT)``).
LHCO_PROCESSES = ("qcd_dijet", "Wprime_XY")
#: The LHCO R&D trigger: leading anti-kT R = 1.0 jet pT above 1.2 TeV.
LHCO_TRIGGER_PT = 1200.0


@dataclass(frozen=True)
class EventTask:
    """A downstream event-classification task: ``signal`` against ``background`` (labels 1 and 0)."""

    name: str
    background: str
    signal: str
    description: str

    @property
    def processes(self) -> list[str]:
        return [self.background, self.signal]

    @property
    def unseen(self) -> bool:
        """True when a process of the task was not among the pretraining processes."""
        return any(p not in PRETRAINING_PROCESSES for p in self.processes)


#: The five fine-tuning tasks of the event model. Two separate processes both seen in pretraining (a
#: finer distinction than pretraining's: ttH vs ttbar needs the extra b jets, VBF vs ggF the forward
#: jets); three put a process never seen in pretraining against its Standard-Model background at
#: masses where the two overlap in HT, so the task is not solved by a single variable.
EVENT_TASKS: dict[str, EventTask] = {
    t.name: t
    for t in [
        EventTask("ttH_vs_ttbar", "ttbar", "ttH", "ttH against its irreducible ttbar background (both seen)"),
        EventTask("vbfH_vs_ggH", "ggH", "vbfH", "VBF against gluon-fusion Higgs production (both seen)"),
        EventTask("Zprime_vs_ttbar", "ttbar", "Zprime_ttbar", "Z'(750 GeV) -> ttbar against SM ttbar (unseen)"),
        EventTask("Wprime_vs_WZ", "WZ", "Wprime_WZ", "W'(600 GeV) -> WZ against SM WZ (unseen)"),
        EventTask("H2_vs_ZZ", "ZZ", "H2_ZZ", "heavy Higgs H2(400 GeV) -> ZZ against SM ZZ (unseen)"),
    ]
}


def lhe_process(name: str, path: str) -> Process:
    """A process read from a Les Houches Event file (e.g. MadGraph ttW, ttZ, tW, tttt, tHq samples).

    Pythia8 showers and hadronizes the file's events; the beams and their energies come from the
    file's ``<init>`` block.
    """
    return Process(name, ("Beams:frameType = 4", f"Beams:LHEF = {path}"), f"events of {path}")


def get_event_process(name: str, lhe: dict[str, str] | None = None) -> Process:
    """The event process ``name``: an LHE file registered in ``lhe`` or a built-in process."""
    if lhe and name in lhe:
        return lhe_process(name, str(lhe[name]))
    try:
        return EVENT_PROCESSES[name]
    except KeyError:
        raise OptionError(
            "processes",
            f"unknown event process {name!r}; known: {', '.join(EVENT_PROCESSES)} "
            "(or give an LHE file with --lhe NAME=FILE)",
        ) from None


def event_settings(process: Process, skip: int = 0) -> tuple[str, ...]:
    """All Pythia8 settings of a whole-event shard; ``skip`` events of an LHE input are passed over."""
    extra = (f"Beams:nSkipLHEFatInit = {skip}",) if any(s.startswith("Beams:LHEF") for s in process.settings) else ()
    return (*COMMON_SETTINGS, *process.settings, *extra)
