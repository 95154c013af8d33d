"""pyproject.toml, environment.yml and binder/ describe one environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name.strip().lower())}=={version.strip()}"


def _pip_section(path: Path) -> set[str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_normalise(r) for r in pip if not r.startswith("-")}


def test_pyproject_pins_every_dependency():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert all("==" in d for d in deps), [d for d in deps if "==" not in d]


def test_environment_files_agree_with_pyproject():
    deps = {_normalise(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert _pip_section(ROOT / "environment.yml") == deps
    assert _pip_section(ROOT / "binder" / "environment.yml") == deps
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        env = yaml.safe_load(path.read_text())
        assert "conda-forge" in env["channels"] and "python=3.11" in env["dependencies"]


def test_binder_postbuild_is_strict_and_executable():
    post = ROOT / "binder" / "postBuild"
    lines = post.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines
    assert os.access(post, os.X_OK)


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1).strip().splitlines()
    commands = [c for c in block if c and not c.startswith("#")]
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_binder_installs_the_cpu_only_torch():
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    torch = [r for r in pip if r.startswith("torch==")]
    assert torch and all("+" not in r for r in torch)  # pip takes the index's +cpu build of the pinned release


def test_every_shipped_checkpoint_travels_with_a_wheel():
    """A wheel installs pyproject's data-files under share/hepfm/checkpoints, where load_checkpoint finds them."""
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = sorted(p.name for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").exists())
    assert data_files == {
        f"share/hepfm/checkpoints/{n}": [f"checkpoints/{n}/*.json", f"checkpoints/{n}/*.safetensors"] for n in shipped
    }


def test_a_wheel_installed_with_a_prefix_loads_the_shipped_checkpoints_by_name(tmp_path):
    """Built and installed with --prefix (as on a cluster, outside the environment): found through its file list."""
    pytest.importorskip("setuptools", minversion="70.1")  # builds wheels without the wheel package
    source = tmp_path / "source"
    for part in ("hepfm", "checkpoints"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__", "training"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    build = ["wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheel", source]
    subprocess.run([*pip, *build], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "wheel").glob("hepfm-*.whl"))
    # --ignore-installed: pip would otherwise uninstall this environment's hepfm first
    install = ["install", "--no-deps", "--ignore-installed", "--prefix", tmp_path / "prefix", wheel]
    subprocess.run([*pip, *install], check=True, cwd=tmp_path)
    assert subprocess.run([sys.executable, "-c", "import hepfm"], cwd=tmp_path).returncode == 0  # still installed
    site = next((tmp_path / "prefix").glob("lib/python*/site-packages"))
    code = "import hepfm, hepfm.train as t; print(hepfm.__file__, t.load_checkpoint('pet-tiny-jetclass').path)"
    env = {k: v for k, v in os.environ.items() if k != "HEPFM_CHECKPOINTS"} | {"PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    package, checkpoint = map(Path, run.stdout.split())
    assert package.is_relative_to(site)
    assert checkpoint == (tmp_path / "prefix" / "share" / "hepfm" / "checkpoints" / "pet-tiny-jetclass").resolve()
