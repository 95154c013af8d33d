"""Plots in the field's style: mplhep (CMS style) over ``hist`` histograms."""

from __future__ import annotations

from pathlib import Path

import hist
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from hepfm.data.sample import JetSample

__all__ = ["use_style", "compare_classes", "save"]

_AXES = {
    "mass": ("Jet mass [GeV]", 40, 0.0, 300.0),
    "n_particles": ("Constituents", 40, 0.0, 160.0),
    "pt": ("Jet $p_T$ [GeV]", 40, 400.0, 1100.0),
}


def use_style() -> None:
    """Apply the CMS mplhep style to every later figure."""
    hep.style.use("CMS")


def compare_classes(samples: dict[str, JetSample], feature: str, classes: list[str] | None = None,
                    ncols: int = 5):
    """Density histograms of one jet feature, one panel per class, one line per sample.

    Args:
        samples: label -> sample, e.g. ``{"hepfm": generated, "JetClass": reference}``.
        feature: ``"mass"``, ``"n_particles"`` or ``"pt"``.
        classes: classes to show (default: those of the first sample).
    """
    title, bins, lo, hi = _AXES[feature]
    first = next(iter(samples.values()))
    classes = classes or list(first.class_names)
    nrows = -(-len(classes) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), squeeze=False,
                             constrained_layout=True)
    for ax, name in zip(axes.flat, classes, strict=False):
        for label, sample in samples.items():
            if name not in sample.class_names:
                continue
            sel = sample.labels == sample.class_names.index(name)
            h = hist.Hist(hist.axis.Regular(bins, lo, hi, name=feature, label=title))
            h.fill(np.clip(sample.jet(feature)[sel], lo, hi - 1e-6))
            if h.sum() > 0:
                hep.histplot(h, ax=ax, density=True, label=f"{label} ({int(sel.sum())})")
        ax.set_title(name, fontsize=14)
        ax.set_xlabel(title, fontsize=12)
        ax.tick_params(labelsize=10)
        ax.legend(fontsize=9)
    for ax in list(axes.flat)[len(classes):]:
        ax.set_visible(False)
    return fig


def save(fig, output_dir: str | Path, name: str) -> Path:
    """Save a figure as PNG into ``output_dir`` and close it."""
    path = Path(output_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
