"""Binder, built as repo2docker builds it: from binder/ alone, in a fresh environment, then the smoke suite.

repo2docker reads ``binder/environment.yml`` (which wins over a ``requirements.txt``), installs its pip section
into the image's Python, runs ``binder/postBuild``, and serves the repository. Here the same steps run in a
fresh virtual environment of this Python 3.11. The build takes minutes and the suite about ten more, so the
test is marked ``binder`` and runs with ``make binder-check`` (its timings go into benchmarks/RESULTS.md),
not with ``make test``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.binder


def _pip_lines(env: dict) -> list[str]:
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def test_binder_builds_from_its_own_files_and_runs_the_smoke_suite(tmp_path):
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"] and sys.version_info[:2] == (3, 11)
    venv = tmp_path / "binder-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(_pip_lines(env)) + "\n")
    # the CPU wheel index may be out of reach (a closed network): pip then falls back to what it finds, without
    # retrying for minutes
    pip_env = {**os.environ, "PIP_RETRIES": "0", "PIP_DEFAULT_TIMEOUT": "10"}
    timings = {}
    start = time.perf_counter()
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True, env=pip_env, timeout=3600
    )
    timings["pip_install_seconds"] = time.perf_counter() - start
    path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    start = time.perf_counter()
    subprocess.run(
        ["bash", str(ROOT / "binder" / "postBuild")],
        cwd=ROOT,
        check=True,
        env={**pip_env, "PATH": path, "VIRTUAL_ENV": str(venv)},
        timeout=1200,
    )
    timings["postbuild_seconds"] = time.perf_counter() - start
    # the image holds PyTorch's CPU build: no CUDA runtime, no NVIDIA wheels
    probe = subprocess.run(
        [str(python), "-c", "import torch, json; print(json.dumps([torch.__version__, torch.version.cuda]))"],
        capture_output=True,
        text=True,
        check=True,
    )
    version, cuda = json.loads(probe.stdout)
    assert version.startswith("2.13.0") and cuda is None, (version, cuda)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    assert not [p["name"] for p in json.loads(listed.stdout) if p["name"].startswith("nvidia-")]
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file())
    timings["environment_bytes"] = size
    start = time.perf_counter()
    run = subprocess.run(
        [str(venv / "bin" / "hepfm"), "notebooks", "run", "--profile", "smoke", "--out", str(tmp_path / "smoke")],
        cwd=ROOT,
        env={**pip_env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    timings["smoke_suite_seconds"] = time.perf_counter() - start
    summary = json.loads((tmp_path / "smoke" / "summary.json").read_text())
    (ROOT / "runs").mkdir(exist_ok=True)
    (ROOT / "runs" / "binder-check.json").write_text(json.dumps({**timings, "notebooks": summary}, indent=2) + "\n")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert all(entry["ok"] for entry in summary.values()), summary
    assert size < 2.5e9  # a CUDA build alone is several GB
