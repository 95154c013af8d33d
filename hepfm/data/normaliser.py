"""The feature normalisation a model reads its inputs with: fixed per dataset, stored in ``dataset.json`` by
the factory and in every checkpoint, so a model sees the same scale at training and inference time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepfm.core.errors import DataError
from hepfm.data.sample import JetSample
from hepfm.data.schema import JET_FEATURES, PARTICLE_FEATURES
from hepfm.data.storage import read_jet_shards, shard_paths

__all__ = ["FeatureNormaliser"]

# Binary features (charge, PID flags) and angular offsets are left as they are: they are already O(1).
_NORMALISE = ("log_pt", "log_energy", "log_pt_rel", "log_energy_rel", "delta_r")
# Jets drawn, spread over every shard, to fit a jet production's normalisation.
_PRODUCTION_JETS = 50_000


def _jet_columns(jets: np.ndarray) -> np.ndarray:
    """Jet features on the scale they are normalised on: log pt, log(1 + mass), log(1 + n)."""
    out = jets.astype(np.float64).copy()
    out[:, JET_FEATURES.index("pt")] = np.log(np.maximum(out[:, JET_FEATURES.index("pt")], 1e-3))
    out[:, JET_FEATURES.index("mass")] = np.log1p(np.maximum(out[:, JET_FEATURES.index("mass")], 0.0))
    out[:, JET_FEATURES.index("n_particles")] = np.log1p(out[:, JET_FEATURES.index("n_particles")])
    return out


@dataclass
class FeatureNormaliser:
    """Per-feature shift and scale for particle and jet features.

    ``x_norm = (x - mean) / std`` on real particles; padded slots stay exactly zero.
    """

    particle_mean: np.ndarray
    particle_std: np.ndarray
    jet_mean: np.ndarray
    jet_std: np.ndarray

    @classmethod
    def fit(cls, sample: JetSample) -> FeatureNormaliser:
        real = sample.particles[sample.mask].astype(np.float64)
        if len(real) == 0:
            raise DataError(f"{sample.source}: no particles to fit a normalisation on")
        p_mean, p_std = np.zeros(len(PARTICLE_FEATURES)), np.ones(len(PARTICLE_FEATURES))
        for name in _NORMALISE:
            i = PARTICLE_FEATURES.index(name)
            p_mean[i], p_std[i] = real[:, i].mean(), max(real[:, i].std(), 1e-3)
        jets = _jet_columns(sample.jets)
        j_mean, j_std = jets.mean(axis=0), np.maximum(jets.std(axis=0), 1e-3)
        j_mean[JET_FEATURES.index("phi")], j_std[JET_FEATURES.index("phi")] = 0.0, 1.0
        return cls(
            p_mean.astype(np.float32), p_std.astype(np.float32), j_mean.astype(np.float32), j_std.astype(np.float32)
        )

    @classmethod
    def of_production(cls, path: str | Path, *, allow_incomplete: bool = False) -> FeatureNormaliser:
        """Fitted on jets drawn from every shard of a hepfm jet production, so that every class shapes it: the
        normalisation the factory stores in ``dataset.json`` when a production completes, and the one a run
        streaming an unfinished production (``allow_incomplete``) trains with."""
        per_shard = -(-_PRODUCTION_JETS // len(shard_paths(path, allow_incomplete)))
        return cls.fit(read_jet_shards(path, max_jets_per_shard=per_shard, allow_incomplete=allow_incomplete))

    def transform(self, sample: JetSample) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (particles (N, P, F), jets (N, J)) float32 arrays."""
        x = (sample.particles - self.particle_mean) / self.particle_std
        x = np.where(sample.mask[..., None], x, 0.0).astype(np.float32)
        return x, ((_jet_columns(sample.jets) - self.jet_mean) / self.jet_std).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "particle_features": list(PARTICLE_FEATURES),
            "jet_features": list(JET_FEATURES),
            **{k: getattr(self, k).tolist() for k in ("particle_mean", "particle_std", "jet_mean", "jet_std")},
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "normalisation") -> FeatureNormaliser:
        if d.get("particle_features") != list(PARTICLE_FEATURES) or d.get("jet_features") != list(JET_FEATURES):
            raise DataError(
                f"{source}: field 'particle_features'/'jet_features' does not match this hepfm's "
                f"features {list(PARTICLE_FEATURES)} / {list(JET_FEATURES)}"
            )
        return cls(
            *(np.asarray(d[k], dtype=np.float32) for k in ("particle_mean", "particle_std", "jet_mean", "jet_std"))
        )
