"""hepfm: a workbench for foundation models in collider physics.

Pretrain once on simulated collisions, fine-tune everywhere: a Pythia8 data factory with a fast
detector model, readers for the field's public datasets, and (in ``hepfm.models``/``hepfm.train``)
the jet and event foundation models.
"""

from __future__ import annotations

import os

# Waiting OpenMP threads sleep instead of spinning, so torch does not collapse when another process wants the
# cores (see hepfm.core.parallel); read once, when torch's OpenMP runtime starts, hence here, before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["__version__"]
