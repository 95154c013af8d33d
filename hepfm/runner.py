"""The notebook runner: execute the notebook suite through papermill with a named profile.

Profiles (``smoke``, ``demo``, ``cpu``, ``gpu``) are YAML files in ``notebooks/params/`` mapping
notebook name -> parameters. Each notebook runs in its own directory under ``OUT/<name>/`` (its
executed copy, figures, ``metrics.json``); a failing notebook is reported and the others still run;
``OUT/index.md`` links everything.

The notebooks are independent, so the runner executes two at a time where the cores and the memory allow
(:func:`suite_jobs`), each kernel with its share of the cores: a kernel training a small model keeps about
one core busy, and while one notebook trains the other generates its jets.

A profile value may name the run's own output directory as ``{out}``: ``checkpoint:
"{out}/01_pretrain_jets/checkpoint"`` fine-tunes from the model that notebook 01 of the same run pretrained.
A profile that chains notebooks so runs them one after the other, in the suite's order.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import yaml

from hepfm.core.errors import DataError, OptionError
from hepfm.core.io import atomic_write_json, writable_directory
from hepfm.core.memory import available_memory
from hepfm.core.parallel import available_cores

__all__ = [
    "NotebookResult",
    "run_notebooks",
    "suite_jobs",
    "list_notebooks",
    "load_profile",
    "notebook_profiles",
    "parameter_list",
    "NOTEBOOK_DIR",
    "NOTEBOOK_MEMORY",
    "OUT_PLACEHOLDER",
]

#: The notebooks of a source checkout (the package lives beside them).
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
#: Peak memory of one notebook's whole process tree at the demo profile (at most 1.31 GiB measured, benchmarks/
#: RESULTS.md): a second notebook starts beside the first only where the memory left holds both.
NOTEBOOK_MEMORY = int(1.5 * 2**30)
#: Notebooks run at once at most: beyond two, each kernel's share of a laptop's cores gets too small to train on.
MAX_JOBS = 2


@dataclass
class NotebookResult:
    name: str
    ok: bool
    seconds: float
    output_dir: Path
    error: str = ""


def list_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The suite's notebooks (``NN_topic.ipynb``), in order."""
    notebook_dir = Path(notebook_dir)
    if not notebook_dir.is_dir():
        raise OptionError("notebooks", f"{notebook_dir}: notebook directory not found")
    notebooks = sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise OptionError("notebooks", f"{notebook_dir}: holds no notebooks named NN_topic.ipynb")
    return notebooks


def notebook_profiles(notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """The profiles a notebook directory defines: its ``params/*.yaml`` files."""
    return sorted(p.stem for p in (Path(notebook_dir) / "params").glob("*.yaml"))


def load_profile(profile: str, notebook_dir: Path = NOTEBOOK_DIR) -> dict[str, dict]:
    """Parameters per notebook for ``profile`` from ``notebooks/params/<profile>.yaml``."""
    path = Path(notebook_dir) / "params" / f"{profile}.yaml"
    if profile not in notebook_profiles(notebook_dir):
        raise OptionError(
            "profile",
            f"unknown profile {profile!r}; expected one of "
            f"{', '.join(notebook_profiles(notebook_dir)) or 'none'} (files {path.parent}/*.yaml)",
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML ({' '.join(str(err).split())[:200]})") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataError(f"{path}: expected a mapping 'notebook name: {{parameter: value}}'")
    return data


def parameter_list(name: str, value: object, kind: type = str, sep: str = ",") -> list:
    """A notebook parameter as a list of ``kind``: from a separated string (``"100,1000"``), one value (YAML
    gives ``seeds: 0`` as an int) or a list (``papermill -p``, or the same cell run again, which gets back what
    it made).

    >>> parameter_list("sizes", "100, 1000", int), parameter_list("seeds", 0, int), parameter_list("c", ["Hbb"])
    ([100, 1000], [0], ['Hbb'])

    Raises:
        OptionError: an item is not a ``kind`` (the message names the parameter).
    """
    items = value if isinstance(value, list | tuple) else str(value).split(sep)
    out = []
    for item in items:
        if not (text := str(item).strip()):
            continue
        try:
            out.append(kind(text))
        except ValueError:
            raise OptionError(name, f"expected {kind.__name__} values separated by {sep!r}, got {value!r}") from None
    return out


#: In a profile value, the run's output directory (``--out``): notebooks that read an earlier one's results.
OUT_PLACEHOLDER = "{out}"


def _chained(params: dict[str, dict]) -> bool:
    """Whether a profile's notebooks read each other's outputs (a value names ``{out}``)."""
    return any(isinstance(v, str) and OUT_PLACEHOLDER in v for p in params.values() for v in p.values())


def _kernel_name() -> str:
    """A Jupyter kernel that runs this very Python: ``python3`` if it does, else ``hepfm``.

    ``hepfm`` is installed into ``sys.prefix`` when needed, so a user-wide ``python3`` kernel
    pointing at another interpreter cannot run the notebooks without hepfm.
    """
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    if argv and Path(argv[0]).resolve() == Path(sys.executable).resolve():
        return "python3"
    install(kernel_name="hepfm", display_name="Python (hepfm)", prefix=sys.prefix)
    return "hepfm"


#: Metrics keys too long for the index page (per-run rows, training histories); metrics.json keeps them.
_BULKY = ("runs", "history", "rows", "curves")
#: The metrics key of a notebook's one-line result, shown first on the index page.
HEADLINE = "headline"


def _metric_lines(metrics: dict, prefix: str = "", limit: int = 60) -> list[str]:
    """``- key.subkey: value`` lines of the numbers, strings and short lists of a metrics dict."""
    lines = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if key in _BULKY or (key == HEADLINE and not prefix):
            continue
        if isinstance(value, dict):
            lines += _metric_lines(value, f"{name}.", limit)
        elif isinstance(value, float):
            lines.append(f"- `{name}`: {value:.4g}")
        elif isinstance(value, bool | int | str) or value is None:
            lines.append(f"- `{name}`: {value}")
        elif isinstance(value, list) and len(value) <= 12 and all(not isinstance(v, dict | list) for v in value):
            lines.append(f"- `{name}`: " + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value))
    if not prefix and len(lines) > limit:
        lines = lines[:limit] + [f"- … {len(lines) - limit} more in metrics.json"]
    return lines


def _read_metrics(result: NotebookResult) -> dict | None:
    """A notebook's ``metrics.json`` as a dict; None where it is missing or not a JSON object."""
    try:
        metrics = json.loads((result.output_dir / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return metrics if isinstance(metrics, dict) else None


def _write_index(out: Path, profile: str, results: list[NotebookResult], wall: float, jobs: int) -> None:
    """``OUT/index.md``: a summary table with each notebook's one-line result (its metrics' ``headline``),
    then every notebook's figures and metrics on the same page."""
    lines = [
        f"# hepfm notebooks — profile `{profile}`",
        "",
        "| notebook | status | time (s) | result | metrics | figures |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    metrics = {r.name: _read_metrics(r) for r in results}
    for r in results:
        rel = r.output_dir.relative_to(out)
        figures = " ".join(f"[{p.name}]({rel / p.name})" for p in sorted(r.output_dir.glob("*.png")))
        link = f"[metrics.json]({rel}/metrics.json)" if (r.output_dir / "metrics.json").exists() else "—"
        headline = str((metrics[r.name] or {}).get(HEADLINE, "")).replace("|", "/") or "—"
        status = "ok" if r.ok else "**FAILED**"
        lines.append(
            f"| [{r.name}]({rel}/{r.name}.ipynb) | {status} | {r.seconds:.0f} | {headline} | {link} | {figures} |"
        )
    lines.append(
        f"\nTotal: {sum(r.seconds for r in results):.0f} s of notebooks"
        + (f", {wall:.0f} s of wall time, {jobs} at a time." if jobs > 1 else ".")
    )
    for r in results:
        rel = r.output_dir.relative_to(out)
        lines += ["", f"## {r.name}", ""]
        m = metrics[r.name]
        if m and m.get(HEADLINE):
            lines += [f"**{m[HEADLINE]}**", ""]
        lines += [f"![{p.stem}]({rel / p.name})" for p in sorted(r.output_dir.glob("*.png"))]
        if m is not None:
            lines += ["", *_metric_lines(m)]
        elif (r.output_dir / "metrics.json").exists():
            lines += ["", f"(metrics.json of {r.name} is not a JSON object)"]
    failed = [r for r in results if not r.ok]
    if failed:
        lines += ["", "## Failures", ""]
        for r in failed:
            lines += [f"### {r.name}", "", "```", r.error.strip()[-3000:], "```", ""]
    (out / "index.md").write_text("\n".join(lines) + "\n")


def suite_jobs(notebooks: int) -> int:
    """Notebooks to run at once: :data:`MAX_JOBS` where this process may use as many cores and the memory
    left (:func:`~hepfm.core.memory.available_memory`, a container's limit included) holds as many notebooks of
    :data:`NOTEBOOK_MEMORY`; else one. Binder (2 GB) runs one; a 2-core laptop with 3 GB free runs two.

    >>> suite_jobs(1)
    1
    """
    memory = available_memory()
    by_memory = MAX_JOBS if memory is None else int(memory // NOTEBOOK_MEMORY)
    return max(1, min(MAX_JOBS, available_cores(), notebooks, by_memory))


def _execute(nb: Path, target: Path, parameters: dict, kernel: str, label: str) -> NotebookResult:
    """Run one notebook with papermill into ``target``; any failure becomes a failed result."""
    import papermill

    print(f"[hepfm] {label} {nb.stem} -> {target}", flush=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(nb),
            str(target / nb.name),
            parameters=parameters,
            kernel_name=kernel,
            language="python",
            cwd=str(nb.parent),
            progress_bar=False,
            log_output=False,
            # the kernel's own notices (local TCP on every start, the interrupt at shutdown) would bury the progress
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
        return NotebookResult(nb.stem, True, time.perf_counter() - start, target)
    except Exception:  # noqa: BLE001 - any failure is reported and the suite goes on
        return NotebookResult(nb.stem, False, time.perf_counter() - start, target, traceback.format_exc())


def _share_threads(threads: int) -> None:
    """In a runner process: the kernels it starts get ``threads`` torch/BLAS threads (OMP_NUM_THREADS caps
    :func:`~hepfm.core.parallel.threads_per_process`, so parallel runs inside a notebook divide that share)."""
    current = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not (current.isdigit() and 0 < int(current) <= threads):
        os.environ["OMP_NUM_THREADS"] = str(threads)


def run_notebooks(
    profile: str,
    out: str | Path | None = None,
    only: list[str] | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    jobs: int | None = None,
) -> list[NotebookResult]:
    """Execute the notebooks with a profile's parameters; never stops at the first failure.

    Args:
        profile: one of :func:`notebook_profiles` (``smoke``, ``demo``, ``cpu``, ``gpu-check``, ``gpu``).
        out: output directory (default ``runs/<profile>``).
        only: notebook names or name prefixes (``"00"``, ``"00_data"``) to run; None runs all.
        notebook_dir: where the notebooks and ``params/`` are.
        jobs: notebooks run at once, each in its own process with an equal share of the cores; None chooses
            (:func:`suite_jobs`; one where the profile chains notebooks through ``{out}``). 1 runs them one
            after the other in this process.

    Returns:
        One :class:`NotebookResult` per notebook run, in the suite's order; ``OUT/index.md`` summarises them.
    """
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise OptionError("jobs", f"must be a positive integer, got {jobs!r}")
    notebook_dir = Path(notebook_dir)
    notebooks = list_notebooks(notebook_dir)
    params = load_profile(profile, notebook_dir)
    out = Path(out or Path("runs") / profile).resolve()
    if only:
        chosen = [nb for nb in notebooks if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
        unknown = [o for o in only if not any(nb.stem == o or nb.stem.startswith(o) for nb in notebooks)]
        if unknown:
            raise OptionError("only", f"no notebook matches {unknown}; have {[nb.stem for nb in notebooks]}")
        notebooks = chosen
    chained = _chained({nb.stem: params.get(nb.stem, {}) for nb in notebooks})
    if chained and jobs is not None and jobs > 1:
        raise OptionError(
            "jobs",
            f"profile {profile!r} chains notebooks (a value names {OUT_PLACEHOLDER}): they run one at a time; "
            "leave --jobs out or pass 1",
        )
    writable_directory(out, "out")
    kernel = _kernel_name()
    jobs = 1 if chained else min(jobs, len(notebooks)) if jobs is not None else suite_jobs(len(notebooks))
    tasks = []
    for nb in notebooks:
        target = out / nb.stem
        target.mkdir(parents=True, exist_ok=True)
        given = {
            k: v.replace(OUT_PLACEHOLDER, str(out)) if isinstance(v, str) else v
            for k, v in params.get(nb.stem, {}).items()
        }
        tasks.append((nb, target, {**given, "output_dir": str(target)}))
    total, suite_start = len(tasks), time.perf_counter()
    results: list[NotebookResult] = []

    def finished(result: NotebookResult) -> None:
        results.append(result)
        if not result.ok:
            print(f"[hepfm] FAILED {result.name}: see {out / 'index.md'}", flush=True)
        print(
            f"[hepfm] [{len(results)}/{total} done] {result.name} {'done' if result.ok else 'FAILED'} in "
            f"{_clock(result.seconds)}, {_clock(time.perf_counter() - suite_start)} elapsed, "
            f"{total - len(results)} to go",
            flush=True,
        )
        results.sort(key=lambda r: r.name)
        _write_index(out, profile, results, time.perf_counter() - suite_start, jobs)

    def label(k: int) -> str:
        return f"[{k}/{total}] ({profile}, {_clock(time.perf_counter() - suite_start)} elapsed)"

    if jobs == 1:
        if chained:
            print(f"[hepfm] {total} notebooks ({profile}) one at a time: the profile chains them", flush=True)
        for k, (nb, target, parameters) in enumerate(tasks, 1):
            finished(_execute(nb, target, parameters, kernel, label(k)))
    else:
        print(f"[hepfm] {total} notebooks ({profile}), {jobs} at a time", flush=True)
        threads = max(1, available_cores() // jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_share_threads, initargs=(threads,)) as pool:
            pending: set[Future] = set()
            queue = list(enumerate(tasks, 1))
            while queue or pending:
                while queue and len(pending) < jobs:  # submit as lanes free up, so the label's clock is right
                    k, (nb, target, parameters) = queue.pop(0)
                    pending.add(pool.submit(_execute, nb, target, parameters, kernel, label(k)))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(future.result())
    summary = {r.name: {"ok": r.ok, "seconds": round(r.seconds, 1)} for r in results}
    atomic_write_json(out / "summary.json", summary)
    return results


def _clock(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``12s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
