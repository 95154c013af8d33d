"""Pythia8 driver: one seeded generator, events in batches as flat numpy columns.

Pythia8's ``nextBatch`` hands back awkward arrays of whole events; hepfm flattens them once into
contiguous numpy columns with per-event offsets (:class:`EventBatch`), which the detector model and
the truth matching use without any per-particle Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import awkward as ak
import numpy as np

from hepfm.core.errors import OptionError
from hepfm.core.io import quiet_stdout

__all__ = ["EventBatch", "check_settings", "make_pythia", "generate_batches", "pythia_seed"]

_MAX_PYTHIA_SEED = 900_000_000  # Pythia8 accepts Random:seed in [0, 900000000]


def pythia_seed(*keys: int) -> int:
    """A Pythia8 seed in [1, 9e8] derived from integers (base seed, class, shard).

    >>> pythia_seed(1, 2, 3) == pythia_seed(1, 2, 3) != pythia_seed(1, 2, 4)
    True
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    return int(state % (_MAX_PYTHIA_SEED - 1)) + 1


def check_settings(settings: Iterable[str], option: str = "settings") -> None:
    """Refuse, before any event is made, a Pythia8 setting that Pythia8 does not accept.

    Raises:
        OptionError: naming ``option`` and the rejected setting.
    """
    settings = list(settings)
    if not settings:
        return
    import pythia8mc

    with quiet_stdout():
        pythia = pythia8mc.Pythia("", False)
        rejected = [line for line in settings if not pythia.readString(line)]
    if rejected:
        raise OptionError(
            option,
            f"Pythia8 rejected the setting {rejected[0]!r} (expected 'Name = value' with a "
            "name from Pythia8's settings)",
        )


def make_pythia(settings: Iterable[str], seed: int):
    """An initialised ``pythia8mc.Pythia`` with ``settings`` and ``Random:seed = seed``.

    Raises:
        ValueError: a setting Pythia8 does not accept (the message names it) or a failed init.
    """
    import pythia8mc

    with quiet_stdout():
        pythia = pythia8mc.Pythia("", False)
        for line in (*settings, "Random:setSeed = on", f"Random:seed = {seed}"):
            if not pythia.readString(line):
                raise ValueError(f"Pythia8 rejected the setting {line!r}")
        ok = pythia.init()
    if not ok:
        raise ValueError(f"Pythia8 failed to initialise with settings {list(settings)}")
    return pythia


@dataclass
class EventBatch:
    """Generator-level particles of a batch of events as flat columns.

    Attributes:
        offsets: (E+1,) int64, particles of event e are ``offsets[e]:offsets[e+1]``.
        pid, status, mother1, daughter1, daughter2: (M,) int32 Pythia8 record columns
            (indices are relative to the event, as in Pythia8).
        px, py, pz, energy, mass: (M,) float64 in GeV.
        weight: (E,) float64 event weights.
    """

    offsets: np.ndarray
    pid: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    mass: np.ndarray
    weight: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    @property
    def event_index(self) -> np.ndarray:
        """(M,) event number of every particle."""
        return np.repeat(np.arange(self.n_events), np.diff(self.offsets))

    @classmethod
    def from_awkward(cls, events: ak.Array) -> EventBatch:
        if len(events) == 0:  # an exhausted input (end of an LHE file) yields an empty, field-less array
            i, f = np.zeros(0, np.int32), np.zeros(0, np.float64)
            return cls(np.zeros(1, np.int64), i, i, i, i, i, f, f, f, f, f, f)
        prt = events.prt
        counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)

        def col(a, dtype):
            return np.asarray(ak.to_numpy(ak.flatten(a)), dtype=dtype)

        weights = events.info.weights
        weight = np.ones(len(counts))
        if len(counts):
            first = ak.fill_none(ak.firsts(weights), 1.0)
            weight = ak.to_numpy(first).astype(np.float64)
        return cls(
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            pid=col(prt.id, np.int32),
            status=col(prt.status, np.int32),
            mother1=col(prt.mother1, np.int32),
            daughter1=col(prt.daughter1, np.int32),
            daughter2=col(prt.daughter2, np.int32),
            px=col(prt.p.px, np.float64),
            py=col(prt.p.py, np.float64),
            pz=col(prt.p.pz, np.float64),
            energy=col(prt.p.e, np.float64),
            mass=col(prt.m, np.float64),
            weight=weight,
        )


def generate_batches(pythia, batch_size: int = 100) -> Iterator[EventBatch]:
    """Endless stream of :class:`EventBatch` from an initialised generator (failed events skipped)."""
    while True:
        yield EventBatch.from_awkward(pythia.nextBatch(batch_size))
