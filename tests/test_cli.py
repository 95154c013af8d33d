"""The hepfm command line: help everywhere, generation, inspection, clear errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from hepfm.cli import app
from hepfm.data.storage import read_shard

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["generate"],
        ["generate", "jets"],
        ["generate", "list"],
        ["inspect"],
        ["notebooks"],
        ["notebooks", "run"],
        ["scan"],
        ["finetune"],
        ["pretrain"],
        ["export"],
    ],
)
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_help_shows_brackets():
    result = runner.invoke(app, ["export", "--help"])
    assert "pip install 'hepfm[onnx]'" in " ".join(result.output.split())


def test_generate_and_inspect(tmp_path):
    out = tmp_path / "jets"
    result = runner.invoke(
        app, ["generate", "jets", "--recipe", "top,qcd", "--jets-per-class", "6", "--seed", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "top=6" in result.output and "qcd=6" in result.output


def test_inspect_real_sample(shared_data):
    result = runner.invoke(app, ["inspect", str(shared_data / "jetclass_sample.root")])
    assert result.exit_code == 0 and "Tbqq" in result.output
    result = runner.invoke(app, ["inspect", "--events", str(shared_data / "lhco_rnd_sample.h5")])
    assert result.exit_code == 0 and "signal=93" in result.output


def test_unknown_class_exits_with_message(tmp_path):
    result = runner.invoke(
        app, ["generate", "jets", "--classes", "Tbqq,Nope", "--jets-per-class", "5", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "unknown jet class or recipe 'Nope'" in result.output
    assert not (tmp_path / "x").exists()


def test_missing_file_exits_with_message(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2 and "missing.h5" in result.output


def test_sigterm_stops_generation_keeping_the_shards_written(tmp_path):
    out = tmp_path / "jets"
    cmd = [sys.executable, "-m", "hepfm", "generate", "jets", "--recipe", "qcd", "--jets-per-class", "400"]
    cmd += ["--jets-per-shard", "10", "--seed", "3", "--workers", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("shards/*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped: the command got SIGTERM; finished files are kept" in err
    written = list(out.glob("shards/*.parquet"))
    assert 2 <= len(written) < 40
    assert all(len(read_shard(shard)[0]) == 10 for shard in written)  # whole shards only
