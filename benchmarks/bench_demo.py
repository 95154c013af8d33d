"""Wall time and peak memory of every demo notebook, quiet and beside one competing CPU-bound process.

Each notebook runs alone through ``hepfm notebooks run --profile demo --only NN --jobs 1`` (papermill, its own
kernel): what Binder runs, one notebook at a time. ``--suite`` adds the whole suite as ``make demo`` runs it
(``hepfm notebooks run --profile demo``, two notebooks at a time where the machine allows).
The memory is that of the whole process tree — runner, kernel, parallel training runs, Dask workers — sampled
every 0.25 s as the sum of each process's proportional set size (PSS: shared pages divided among the processes
sharing them, so the sum is what the tree costs the machine) and, beside it, the plain sum of resident sizes.
The "busy" pass starts one process spinning on a core (``python -c 'while True: pass'``) before each run
and stops it after: what a laptop with a browser or a compile running looks like to hepfm.
Machines of the same kind differ in speed: the run first prints a one-thread fp32 matmul rate, so that tables
of different runs can be set side by side.

Usage::

    python benchmarks/bench_demo.py [--profile demo] [--only 02 --only 07] [--passes quiet,busy] [--suite]
        [--no-notebooks] [--out runs/bench-demo]

Prints Markdown tables and writes ``OUT/bench_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _memory(processes: list[psutil.Process]) -> tuple[int, int]:
    pss = rss = 0
    for p in processes:
        try:
            info = p.memory_full_info()
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pss, rss


def matmul_rate() -> float:
    """GFLOP/s of a 1024x1024 fp32 matmul on one torch thread, in a fresh process (median of 5 x 20)."""
    code = (
        "import statistics, time, torch\n"
        "torch.set_num_threads(1)\n"
        "a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)\n"
        "a @ b\n"
        "rates = []\n"
        "for _ in range(5):\n"
        "    t = time.perf_counter()\n"
        "    for _ in range(20):\n"
        "        a @ b\n"
        "    rates.append(20 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9)\n"
        "print(statistics.median(rates))\n"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def run_notebook(name: str | None, profile: str, out: Path, busy: bool) -> dict:
    """One notebook's run (``name``; None: the whole suite, as ``make demo`` runs it): wall seconds, peak PSS
    and RSS of its process tree (bytes), success."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    cmd = [sys.executable, "-m", "hepfm", "notebooks", "run", "--profile", profile, "--out", str(out)]
    cmd += ["--only", name, "--jobs", "1"] if name else []
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pss, rss = _memory(_tree(root))
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.25)
    wall = time.perf_counter() - start
    _, err = proc.communicate()
    if spinner is not None:
        spinner.kill()
        spinner.wait()
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    ok = proc.returncode == 0 and all(v["ok"] for v in summary.values())
    return {
        "wall_seconds": wall,
        "notebook_seconds": sum(v["seconds"] for v in summary.values()),
        "peak_pss_bytes": peak_pss,
        "peak_rss_bytes": peak_rss,
        "ok": ok,
        "error": "" if ok else err[-2000:],
    }


def _table(results: dict[str, dict], passes: list[str], first: str) -> list[str]:
    both = {"quiet", "busy"} <= set(passes)
    head = f"| {first} |" + "".join(f" {p} s | {p} peak GiB (PSS / RSS) |" for p in passes)
    lines = [head + (" busy / quiet |" if both else ""), "|" + " --- |" * (1 + 2 * len(passes) + both)]
    totals = dict.fromkeys(passes, 0.0)
    for name, per_pass in results.items():
        cells = []
        for p in passes:
            r = per_pass[p]
            totals[p] += r["wall_seconds"]
            cells.append(
                f" {r['wall_seconds']:.0f}{'' if r['ok'] else ' (failed)'} | "
                f"{r['peak_pss_bytes'] / 2**30:.2f} / {r['peak_rss_bytes'] / 2**30:.2f} |"
            )
        ratio = f" {per_pass['busy']['wall_seconds'] / per_pass['quiet']['wall_seconds']:.2f} |" if both else ""
        lines.append(f"| {name} |" + "".join(cells) + ratio)
    if len(results) > 1:
        line = "| total |" + "".join(f" {totals[p]:.0f} | |" for p in passes)
        lines.append(line + (f" {totals['busy'] / totals['quiet']:.2f} |" if both else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--only", action="append", help="notebook name or prefix (repeatable); default: all")
    parser.add_argument("--passes", default="quiet,busy", help="quiet, busy or both, comma-separated")
    parser.add_argument("--suite", action="store_true", help="also run the whole suite as make demo does")
    parser.add_argument("--no-notebooks", action="store_true", help="skip the notebook-by-notebook runs")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-demo"))
    args = parser.parse_args()
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        names = [n for n in names if any(n.startswith(o) for o in args.only)]
    if args.no_notebooks:
        names = []
    passes = [p for p in args.passes.split(",") if p]
    out = Path(args.out)
    rate = matmul_rate()
    print(f"one-thread fp32 matmul (1024^2): {rate:.1f} GFLOP/s", flush=True)
    results: dict[str, dict] = {}
    suite: dict[str, dict] = {}
    for p in passes:
        for name in names:
            results.setdefault(name, {})[p] = run_notebook(name, args.profile, out / p, busy=p == "busy")
            r = results[name][p]
            print(
                f"{name} {p}: {r['wall_seconds']:.0f} s, {r['peak_pss_bytes'] / 2**30:.2f} GiB PSS"
                f"{'' if r['ok'] else '  FAILED'}",
                flush=True,
            )
        if args.suite:
            r = suite.setdefault("suite", {})[p] = run_notebook(
                None, args.profile, out / f"suite-{p}", busy=p == "busy"
            )
            print(f"suite {p}: {r['wall_seconds']:.0f} s, {r['peak_pss_bytes'] / 2**30:.2f} GiB PSS", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    record = {"profile": args.profile, "cores": psutil.cpu_count(), "matmul_gflops_1thread": rate}
    (out / "bench_demo.json").write_text(json.dumps({**record, "results": results, "suite": suite}, indent=2) + "\n")
    print(f"\nOne-thread fp32 matmul: {rate:.1f} GFLOP/s")
    if results:
        print("\nEach notebook alone (--jobs 1):\n")
        print("\n".join(_table(results, passes, "notebook")))
    if suite:
        print("\nThe whole suite as make demo runs it:\n")
        print("\n".join(_table(suite, passes, "run")))


if __name__ == "__main__":
    main()
