"""The bad-input sweep: every case of ``tests/test_bad_input.py``, tallied as a new user would see it.

Each case ends in one of: a clear one-line error (the expected error class, or exit status 2 with one
``error:`` line, naming what the case names), a traceback (any other exception, or a command that crashes),
a silent wrong answer (no error at all); and separately, whether bytes written before it changed (data lost).

Usage::

    python benchmarks/bad_input_sweep.py [--out runs/bad-input-sweep]

Prints the tally (the table in benchmarks/RESULTS.md) and every case that is not clear.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_bad_input as table  # noqa: E402 - the table of cases lives with the tests
from conftest import synthetic_jets  # noqa: E402

from hepfm.core.errors import HepfmError  # noqa: E402
from hepfm.sim import generate_jets  # noqa: E402
from hepfm.train import TrainConfig, finetune, pretrain  # noqa: E402

# Python API cases by the prefix of their id; every other prefix names a reader or a file layout.
AREAS = {
    "gen": "generation",
    "ckpt": "checkpoints",
    "train": "training options",
    "finetune": "training options",
    "pretrain": "training options",
    "notebooks": "notebooks",
}


def _base(root: Path) -> SimpleNamespace:
    jets = generate_jets(["Tbqq", "QCD"], 24, root / "jets", seed=5, jets_per_shard=8, progress=False)
    pretrain(synthetic_jets(64, seed=1), root / "pre", train=TrainConfig(epochs=1, **table.FAST))
    finetune(
        root / "pre",
        synthetic_jets(48, seed=2),
        synthetic_jets(32, seed=3),
        root / "ft",
        train=TrainConfig(epochs=1, **table.FAST),
    )
    return SimpleNamespace(pre=root / "pre", ft=root / "ft", jets=jets)


def classify(case: table.Case, w: SimpleNamespace) -> tuple[str, bool, str]:
    """(outcome, data lost, message) of one case."""
    keep = case.keep(w)
    before = table._digest(keep)
    env = dict(os.environ)
    try:
        if isinstance(case.expect, int):
            result = table.runner.invoke(table.app, [str(a) for a in case.run(w)], env=case.env)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            if result.exit_code == 0:
                outcome, message = "silent", result.output[-300:]
            elif result.exit_code == case.expect and len(lines) == 1 and lines[0].startswith("error: "):
                message = lines[0]
                named = all(n.format(**vars(w)) in message for n in case.names)
                outcome = "clear" if named else "unclear"
            else:
                outcome, message = "traceback", (result.stderr or repr(result.exception))[-300:]
        else:
            try:
                case.run(w)
                outcome, message = "silent", ""
            except HepfmError as err:
                message = str(err)
                named = isinstance(err, case.expect) and all(n.format(**vars(w)) in message for n in case.names)
                outcome = "clear" if named else "unclear"
            except Exception as err:  # noqa: BLE001 - what the sweep counts
                outcome, message = "traceback", f"{type(err).__name__}: {err}"[:300]
    finally:
        os.environ.clear()
        os.environ.update(env)
    return outcome, table._digest(keep) != before, message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="hepfm-sweep-"))
    base = _base(root / "base")
    tally = {"clear": 0, "unclear": 0, "traceback": 0, "silent": 0}
    lost, notes = 0, []
    areas: dict[str, dict[str, int]] = {}
    for k, case in enumerate(table.CASES):
        tmp = root / f"case-{k:03d}"
        for name in ("pre", "ft", "jets"):
            shutil.copytree(getattr(base, name), tmp / name)
        w = SimpleNamespace(tmp=tmp, pre=tmp / "pre", ft=tmp / "ft", jets=tmp / "jets")
        outcome, changed, message = classify(case, w)
        tally[outcome] += 1
        lost += changed
        area = "command line" if isinstance(case.expect, int) else AREAS.get(case.id.split("-")[0], "readers")
        areas.setdefault(area, dict.fromkeys(tally, 0))[outcome] += 1
        if outcome != "clear" or changed:
            notes.append(f"- {case.id}: {outcome}{', data lost' if changed else ''}: {message}")
        shutil.rmtree(tmp, ignore_errors=True)
    print("| cases | clear one-line errors | unclear errors | tracebacks | silent wrong answers | data lost |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| {len(table.CASES)} | {tally['clear']} | {tally['unclear']} | {tally['traceback']} | {tally['silent']} | "
        f"{lost} |"
    )
    print("\n| area | cases | clear |\n| --- | --- | --- |")
    for area, counts in sorted(areas.items()):
        print(f"| {area} | {sum(counts.values())} | {counts['clear']} |")
    if notes:
        print("\nNot clear:\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
