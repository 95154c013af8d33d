"""hepfm: a workbench for foundation models in collider physics.

Pretrain once on simulated collisions, fine-tune everywhere: a Pythia8 data factory with a fast
detector model, readers for the field's public datasets, and (in ``hepfm.models``/``hepfm.train``)
the jet and event foundation models.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
