"""Compare the ``metrics.json`` of two notebook-suite runs, value by value.

Every number, string and list element of every notebook's ``metrics.json`` in run A is compared with the one
at the same place in run B. Wall times and paths (keys holding ``seconds`` or naming a file or directory) are
listed apart: they differ between any two runs.

Usage::

    python benchmarks/compare_metrics.py RUN_A RUN_B     # e.g. a run before a change and one after it
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

_VOLATILE = ("seconds",)


def _leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def _volatile(key: str, value) -> bool:
    # times (a key on the path names seconds: "wall_seconds", "total_seconds_to_target.scratch") and paths
    return any(word in key for word in _VOLATILE) or (isinstance(value, str) and "/" in value)


def compare(a: dict, b: dict) -> dict:
    """Counts of equal, differing and volatile leaves, the largest relative difference, and the differing keys."""
    la, lb = dict(_leaves(a)), dict(_leaves(b))
    out = {
        "values": 0,
        "equal": 0,
        "differ": [],
        "volatile": 0,
        "missing": sorted(set(la) ^ set(lb)),
        "max_relative": 0.0,
    }
    for key in sorted(set(la) & set(lb)):
        if _volatile(key, la[key]):
            out["volatile"] += 1
            continue
        out["values"] += 1
        x, y = la[key], lb[key]
        if x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)):
            out["equal"] += 1
            continue
        out["differ"].append(key)
        if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
            scale = max(abs(x), abs(y), 1e-30)
            out["max_relative"] = max(out["max_relative"], abs(x - y) / scale)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    print("| notebook | values compared | equal | differ | largest relative difference | wall times, paths |")
    print("| --- | --- | --- | --- | --- | --- |")
    details = []
    for metrics in sorted(args.a.glob("*/metrics.json")):
        name = metrics.parent.name
        other = args.b / name / "metrics.json"
        if not other.exists():
            print(f"| {name} | — | — | — | missing in {args.b} | — |")
            continue
        c = compare(json.loads(metrics.read_text()), json.loads(other.read_text()))
        print(
            f"| {name} | {c['values']} | {c['equal']} | {len(c['differ'])} | "
            f"{c['max_relative']:.1e} | {c['volatile']} |"
        )
        if c["differ"] or c["missing"]:
            details.append(
                f"- {name}: differ {c['differ'][:8]}{' ...' if len(c['differ']) > 8 else ''}; "
                f"only in one run {c['missing'][:8]}"
            )
    if details:
        print("\n" + "\n".join(details))


if __name__ == "__main__":
    main()
