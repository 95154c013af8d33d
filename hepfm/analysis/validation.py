"""Physics validation of generated jets and events against expectations and real reference samples, and the
tables that report how well a model classifies them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hepfm.data.sample import EventSample, JetSample
from hepfm.data.schema import OBJECT_TYPES
from hepfm.train.checkpoint import Checkpoint
from hepfm.train.evaluate import evaluate_checkpoint, evaluate_truth

__all__ = [
    "MASS_WINDOWS",
    "class_medians",
    "compare_to_reference",
    "reference_table",
    "object_counts",
    "object_multiplicities",
    "class_fractions",
    "classify_file",
    "classification_table",
    "truth_table",
]

#: Expected range of the median jet mass (GeV) per JetClass class. Hqql has none: its neutrino
#: escapes, so its mass sits well below m_H (JetClass itself has a median of 96 GeV).
MASS_WINDOWS = {
    "Tbqq": (160.0, 185.0),
    "Wqq": (75.0, 90.0),
    "Zqq": (85.0, 97.0),
    "Hbb": (115.0, 130.0),
    "Hcc": (115.0, 130.0),
    "Hgg": (115.0, 130.0),
    "H4q": (115.0, 130.0),
    "top": (160.0, 185.0),
}


def class_medians(sample: JetSample) -> dict[str, dict[str, float]]:
    """Median jet mass, constituent multiplicity and pT per class present in ``sample``."""
    out = {}
    for label, name in enumerate(sample.class_names):
        sel = sample.labels == label
        if not sel.any():
            continue
        out[name] = {
            "n_jets": int(sel.sum()),
            "mass": float(np.median(sample.jet("mass")[sel])),
            "n_particles": float(np.median(sample.jet("n_particles")[sel])),
            "pt": float(np.median(sample.jet("pt")[sel])),
        }
    return out


def compare_to_reference(
    generated: JetSample, reference: JetSample | None = None, multiplicity_tolerance: float = 0.25
) -> dict:
    """Per-class checks: median mass in :data:`MASS_WINDOWS`, multiplicity within tolerance of reference.

    Returns:
        ``{"classes": {name: {...medians, mass_window, mass_ok, ref_*, multiplicity_ratio,
        multiplicity_ok}}, "all_mass_ok": bool, "all_multiplicity_ok": bool}``.
    """
    gen = class_medians(generated)
    ref = class_medians(reference) if reference is not None else {}
    classes = {}
    for name, m in gen.items():
        entry: dict[str, Any] = dict(m)
        if name in MASS_WINDOWS:
            lo, hi = MASS_WINDOWS[name]
            entry["mass_window"] = [lo, hi]
            entry["mass_ok"] = bool(lo <= m["mass"] <= hi)
        if name in ref:
            ratio = m["n_particles"] / ref[name]["n_particles"]
            entry.update(
                ref_mass=ref[name]["mass"],
                ref_n_particles=ref[name]["n_particles"],
                ref_pt=ref[name]["pt"],
                multiplicity_ratio=ratio,
                multiplicity_ok=bool(abs(ratio - 1) <= multiplicity_tolerance),
            )
        classes[name] = entry
    return {
        "classes": classes,
        "all_mass_ok": all(c.get("mass_ok", True) for c in classes.values()),
        "all_multiplicity_ok": all(c.get("multiplicity_ok", True) for c in classes.values()),
    }


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def reference_table(checks: dict) -> str:
    """The result of :func:`compare_to_reference` as a Markdown table, one row per class.

    Columns: median mass, its window and JetClass's median; median constituents, JetClass's and their ratio;
    ``-`` where a class has no window or no reference.
    """
    lines = [
        "| class | jets | mass [GeV] | window [GeV] | JetClass mass | constituents | JetClass constituents | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in checks["classes"].items():
        window = "-" if "mass_window" not in c else f"{c['mass_window'][0]:.0f}-{c['mass_window'][1]:.0f}"
        lines.append(
            f"| {name} | {c['n_jets']} | {c['mass']:.1f} | {window} | {_number(c.get('ref_mass'), '.1f')} | "
            f"{c['n_particles']:.1f} | {_number(c.get('ref_n_particles'), '.1f')} | "
            f"{_number(c.get('multiplicity_ratio'), '.2f')} |"
        )
    lines.append(
        f"all masses in their window: {checks['all_mass_ok']}; "
        f"all multiplicities within tolerance: {checks['all_multiplicity_ok']}"
    )
    return "\n".join(lines)


def object_counts(events: EventSample) -> dict[str, np.ndarray]:
    """Reconstructed objects per event: jets, b-tagged jets and isolated leptons (electrons and muons).

    Args:
        events: an object-level sample (columns ``type`` and ``btag``, :data:`~hepfm.data.schema.OBJECT_COLUMNS`).

    Returns:
        ``{"jets": (N,), "btag": (N,), "leptons": (N,)}`` integer counts.
    """
    kind = np.where(events.mask, events.feature("type"), -1)  # (N, P), -1 for padding
    jets = kind == OBJECT_TYPES.index("jet")
    leptons = np.isin(kind, [OBJECT_TYPES.index("electron"), OBJECT_TYPES.index("muon")])
    return {"jets": jets.sum(1), "btag": (jets & (events.feature("btag") > 0)).sum(1), "leptons": leptons.sum(1)}


def object_multiplicities(events: EventSample) -> dict[str, dict[str, float]]:
    """Mean :func:`object_counts` per class: ``{class: {"jets": mean, "btag": mean, "leptons": mean}}``.

    A class without events in ``events`` gets NaN means.
    """
    counts = object_counts(events)
    out = {}
    for label, name in enumerate(events.class_names):
        sel = events.labels == label
        out[name] = {key: float(n[sel].mean()) if sel.any() else float("nan") for key, n in counts.items()}
    return out


def class_fractions(probabilities, class_names: list[str]) -> dict:
    """What a classifier makes of a sample without labels of its classes (a NanoAOD file, say).

    Args:
        probabilities: (N, C) class probabilities, columns in ``class_names`` order.
        class_names: the classifier's C classes.

    Returns:
        ``{"n_events": N, "fraction_called": {class: fraction of events whose most probable class it is},
        "mean_probability": {class: mean probability}}``; the fractions sum to 1.
    """
    probabilities = np.asarray(probabilities)  # the means keep the dtype the model gave
    called = np.bincount(probabilities.argmax(1), minlength=len(class_names)) / max(len(probabilities), 1)
    return {
        "n_events": len(probabilities),
        "fraction_called": dict(zip(class_names, called.tolist(), strict=True)),
        "mean_probability": dict(zip(class_names, probabilities.mean(0).tolist(), strict=True)),
    }


def classify_file(
    multiclass: str | Path | Checkpoint,
    multilabel: str | Path | Checkpoint | None,
    data: Any,
    device: str = "auto",
) -> dict:
    """Both event models on events from outside the generated samples (a CMS NanoAOD file, say).

    The multiclass model says which process each event looks like (:func:`class_fractions`); where the file
    carries generator truth and a multilabel model is given, :func:`hepfm.train.evaluate_truth` sets that model's
    answers against what the events really contained.

    Args:
        multiclass: a multiclass event checkpoint.
        multilabel: a multilabel event checkpoint, or None.
        data: the events: a file any event reader takes, or an :class:`~hepfm.data.sample.EventSample`.
        device: where to run the models.

    Returns:
        ``{"file", "n_events", "fraction_called", "mean_probability"}``, plus ``"multilabel"`` (the
        :func:`~hepfm.train.evaluate_truth` result) when the events have truth and ``multilabel`` is given.
    """
    probabilities, sample, ckpt = evaluate_checkpoint(multiclass, data, device=device)
    source = data.source if isinstance(data, EventSample) else str(data)
    result = {"file": source, **class_fractions(probabilities, ckpt.class_names)}
    if multilabel is not None and isinstance(sample, EventSample) and sample.truth is not None:
        result["multilabel"] = evaluate_truth(multilabel, sample, device=device)
    return result


def classification_table(result: dict) -> str:
    """The accuracy, mean AUC and one-vs-rest AUC per class of :func:`hepfm.core.metrics.multiclass_metrics`."""
    lines = [
        f"accuracy {result['accuracy']:.3f}, mean one-vs-rest AUC {_number(result['mean_auc'], '.3f')}",
        "| class | AUC |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {auc:.3f} |" for name, auc in result["auc_per_class"].items()]
    return "\n".join(lines)


def truth_table(truth: dict) -> str:
    """The result of :func:`hepfm.train.evaluate_truth` as Markdown tables: per truth label its AUC, the
    fraction of events that have it and the mean predicted probability; per kinematic target the correlation
    of predicted and true log(1 + x / 10 GeV)."""
    lines = [
        f"labels predicted right: {truth['label_accuracy']:.3f}",
        "| label | AUC | fraction with it | mean predicted |",
        "| --- | --- | --- | --- |",
    ]
    for name, fraction in truth["truth_fraction"].items():
        lines.append(
            f"| {name} | {_number(truth['auc_per_label'].get(name), '.3f')} | {fraction:.3f} | "
            f"{truth['mean_predicted'][name]:.3f} |"
        )
    if truth["target_correlation"]:
        lines += ["| target | correlation |", "| --- | --- |"]
        lines += [f"| {name} | {r:.3f} |" for name, r in truth["target_correlation"].items()]
    return "\n".join(lines)
