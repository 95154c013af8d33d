"""Data-factory throughput, measured side by side in one run; prints Markdown tables.

1. Per core: a bare Pythia8 ``nextBatch`` loop against the full pipeline (Pythia8 + detector +
   FastJet + truth matching + writing a shard) for the same process settings, seed and number of
   events, Pythia8 initialisation included in both. The pipeline should keep >= 0.85 of the bare
   event rate.
2. Dask: the same production of several shards on a LocalCluster with 1 and with 2 workers.

Usage::

    python benchmarks/bench_generate.py [--classes Tbqq,QCD] [--jets 300] [--shards 6]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from hepfm.data.storage import write_shard
from hepfm.sim.detector import DETECTORS
from hepfm.sim.factory import SIZE_PRESETS, generate_jets
from hepfm.sim.jets import make_jets
from hepfm.sim.processes import get_recipe
from hepfm.sim.pythia import make_pythia


def bare_rate(settings, seed: int, n_events: int, batch: int = 100) -> float:
    """Events/s of nextBatch alone, initialisation included as in the pipeline."""
    start = time.perf_counter()
    pythia = make_pythia(settings, seed)
    done = 0
    while done < n_events:
        done += len(pythia.nextBatch(min(batch, n_events - done)))
    return done / (time.perf_counter() - start)


def pipeline_rate(name: str, seed: int, n_jets: int, tmp: Path) -> tuple[float, float, int]:
    recipe = get_recipe(name)
    start = time.perf_counter()
    jets, stats = make_jets(recipe, n_jets, label=0, seed=seed, detector=DETECTORS["cms"])
    write_shard(jets, tmp / f"{name}.parquet", {"class_names": [name]})
    seconds = time.perf_counter() - start
    return stats["events"] / seconds, len(jets) / seconds, stats["events"]


def dask_seconds(classes, jets: int, shards: int, workers: int, tmp: Path) -> float:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        # warm the workers (imports) so that only generation is timed
        client.run(lambda: __import__("hepfm.sim.jets"))
        start = time.perf_counter()
        generate_jets(
            classes,
            jets,
            tmp / f"dask{workers}",
            seed=3,
            jets_per_shard=-(-jets // shards),
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", default="Tbqq,QCD,Hbb,Wqq")
    parser.add_argument("--jets", type=int, default=300, help="jets per class for the per-core comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dask-jets", type=int, default=240, help="jets per class in the Dask comparison")
    parser.add_argument("--shards", type=int, default=4, help="shards per class in the Dask comparison")
    args = parser.parse_args()
    classes = args.classes.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="hepfm-bench-"))
    print(
        f"# hepfm generation benchmark — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n"
    )
    print("## Per core: bare Pythia8 nextBatch vs full pipeline (same settings, seed, events)\n")
    print("| class | events | bare ev/s | pipeline ev/s | ratio | pipeline jets/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    rates = {}
    for name in classes:
        ratios, bares, pipes, jets_s = [], [], [], []
        for r in range(args.repeats):
            pipe_ev, pipe_jets, n_events = pipeline_rate(name, 100 + r, args.jets, tmp)
            bare = bare_rate(get_recipe(name).settings(), 100 + r, n_events)
            ratios.append(pipe_ev / bare)
            bares.append(bare)
            pipes.append(pipe_ev)
            jets_s.append(pipe_jets)
        rates[name] = statistics.median(jets_s)
        print(
            f"| {name} | {n_events} | {statistics.median(bares):.1f} | {statistics.median(pipes):.1f} | "
            f"{statistics.median(ratios):.2f} | {statistics.median(jets_s):.1f} |"
        )

    print(f"\n## Dask LocalCluster: {len(classes)} classes x {args.dask_jets} jets in {args.shards} shards each\n")
    print("| workers | seconds | jets/s | speed-up |")
    print("| --- | --- | --- | --- |")
    base = None
    for workers in (1, 2):
        seconds = dask_seconds(classes, args.dask_jets, args.shards, workers, tmp)
        base = base or seconds
        total = args.dask_jets * len(classes)
        print(f"| {workers} | {seconds:.1f} | {total / seconds:.1f} | {base / seconds:.2f} |")

    mean_rate = statistics.mean(rates.values())
    print(f"\n## Profiles at the measured mean rate of {mean_rate:.0f} jets/s per core ({', '.join(classes)})\n")
    print("| profile | jets per class | jets (10 classes) | core-hours |")
    print("| --- | --- | --- | --- |")
    for profile, n in SIZE_PRESETS.items():
        print(f"| {profile} | {n:,} | {10 * n:,} | {10 * n / mean_rate / 3600:.3g} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
