"""Physics validation of generated jets against expectations and real reference samples."""

from __future__ import annotations

import numpy as np

from hepfm.data.sample import JetSample

__all__ = ["MASS_WINDOWS", "class_medians", "compare_to_reference"]

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
        entry = dict(m)
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
