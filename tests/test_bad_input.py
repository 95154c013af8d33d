"""Bad input, as a new user makes it, across readers, generation, checkpoints, training options, notebooks and the CLI.

Every case must end in one clear line: through the Python API a :class:`~hepfm.core.errors.HepfmError` (of the
class the case names) whose message holds the file, field or option at fault; through the command line exit
status 2 and one ``error: ...`` line on stderr, no traceback. Where something was written before, its bytes
must be unchanged afterwards. ``benchmarks/bad_input_sweep.py`` runs this table and prints the tally that
``benchmarks/RESULTS.md`` records. Faults (kill -9, a full disk, a read-only directory, two writers at once)
follow the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import pytest
import uproot
from conftest import KNOWN_JETS, synthetic_jets, write_jetclass_tree, write_toptagging
from typer.testing import CliRunner

from hepfm.cli import app
from hepfm.core.errors import (
    CheckpointError,
    DataError,
    HepfmError,
    MissingInputError,
    OptionError,
    OutputError,
)
from hepfm.data import read_events, read_jets
from hepfm.data.schema import EVENT_SCHEMA
from hepfm.data.storage import write_shard
from hepfm.runner import parameter_list, run_notebooks
from hepfm.sim import generate_events, generate_jets
from hepfm.train import FinetuneConfig, TrainConfig, finetune, load_checkpoint, pretrain, pretrain_events

LOCK = ".hepfm.lock"  # a writer's advisory lock: its holder's pid, not data
FAST = dict(batch_size=16, progress=False, lr=1e-3, warmup_epochs=0.5, patience=0, device="cpu")
runner = CliRunner()


# -- the workspace every case builds its bad input in --------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory, small_dataset):
    """A pretrained tiny PET, a finished fine-tune from it, and a tiny generated jet dataset (never modified:
    cases that must not overwrite get copies)."""
    root = tmp_path_factory.mktemp("bad-input")
    pretrain(synthetic_jets(64, seed=1), root / "pre", train=TrainConfig(epochs=1, **FAST))
    finetune(
        root / "pre",
        synthetic_jets(48, seed=2),
        synthetic_jets(32, seed=3),
        root / "ft",
        train=TrainConfig(epochs=1, **FAST),
    )
    return SimpleNamespace(root=root, pre=root / "pre", ft=root / "ft", jets=small_dataset)


@pytest.fixture
def w(base, tmp_path):
    """Per case: copies of the checkpoint and the finished run, the dataset, a scratch directory."""
    shutil.copytree(base.pre, tmp_path / "pre")
    shutil.copytree(base.ft, tmp_path / "ft")
    shutil.copytree(base.jets, tmp_path / "jets")
    return SimpleNamespace(tmp=tmp_path, pre=tmp_path / "pre", ft=tmp_path / "ft", jets=tmp_path / "jets")


@dataclass
class Case:
    """One bad input: ``run(w)`` makes the call (API) or returns the arguments of a ``hepfm`` command (CLI).

    ``expect``: the exception class (API), or the exit status (CLI, always 2). ``names``: fragments the message
    must hold, formatted with the workspace (``{tmp}``, ``{pre}``...). ``keep``: paths (files or directories)
    whose bytes must not change.
    """

    id: str
    run: Callable
    expect: type[BaseException] | int
    names: tuple[str, ...]
    keep: Callable = field(default=lambda w: [])
    env: dict = field(default_factory=dict)


def api(id, run, expect, *names, keep=None):
    return Case(id, run, expect, names, keep or (lambda w: []))


def cli(id, args, *names, keep=None, env=None):
    return Case(id, args, 2, names, keep or (lambda w: []), env or {})


# -- bad files -------------------------------------------------------------------------------------------------


def text_file(w, name="notes.h5", text="not a dataset\n"):
    path = w.tmp / name
    path.write_text(text)
    return path


def shard(w, jets=None, name="a.parquet", class_names=("b", "s"), **changes):
    """A hepfm jet shard of five synthetic jets, with fields replaced by ``changes``."""
    sample = synthetic_jets(5)
    counts = sample.mask.sum(1)
    rng = np.random.default_rng(0)
    records = {"label": sample.labels.astype(np.int32)}
    for f in ("part_px", "part_py", "part_pz"):
        records[f] = ak.unflatten(rng.normal(0, 20, counts.sum()), counts)
    records["part_energy"] = ak.unflatten(np.full(counts.sum(), 100.0), counts)
    records["part_charge"] = ak.unflatten(np.zeros(counts.sum()), counts)
    records["part_pid"] = ak.unflatten(np.full(counts.sum(), 22, np.int32), counts)
    for key, value in changes.items():
        if value is None:
            records.pop(key)
        else:
            records[key] = value(records[key]) if callable(value) else value
    path = w.tmp / name
    write_shard(ak.Array(records), path, {"class_names": list(class_names)})
    return path


def with_nan(jagged):
    flat = ak.to_numpy(ak.flatten(jagged)).astype(np.float64).copy()
    flat[2] = np.nan
    return ak.unflatten(flat, ak.num(jagged))


def event_shard(w, field_name=None, label=None, version=EVENT_SCHEMA):
    records = {"label": np.zeros(3, np.int32)}
    n = np.array([2, 1, 3])
    for f in ("obj_pt", "obj_eta", "obj_phi", "obj_energy", "obj_btag", "obj_charge", "obj_type"):
        records[f] = ak.unflatten(np.ones(n.sum()) * (50.0 if f in ("obj_pt", "obj_energy") else 0.0), n)
    records["truth_top"] = np.zeros(3, np.float32)
    if field_name:
        records[field_name] = (
            with_nan(records[field_name]) if field_name.startswith("obj") else np.array([0.0, np.nan, 1.0], np.float32)
        )
    if label is not None:
        records["label"] = np.full(3, label, np.int32)
    path = w.tmp / "events.parquet"
    write_shard(ak.Array(records), path, {"class_names": ["ttH"], "content": "objects", "event_schema": version})
    return path


def manifest(w, text):
    (w.jets / "dataset.json").write_text(text)
    return w.jets


def edit_manifest(w, **changes):
    m = json.loads((w.jets / "dataset.json").read_text())
    m.update(changes)
    (w.jets / "dataset.json").write_text(json.dumps(m))
    return w.jets


def toptagging(w, **kw):
    return write_toptagging(
        w.tmp / "top.h5", [c for _, c, _, _ in KNOWN_JETS], [label for label, *_ in KNOWN_JETS], **kw
    )


def config_json(w, edit):
    cfg = json.loads((w.pre / "config.json").read_text())
    edit(cfg)
    (w.pre / "config.json").write_text(json.dumps(cfg) if not isinstance(cfg, str) else cfg)
    return w.pre


def drop(key):
    return lambda cfg: cfg.pop(key)


def set_(key, value):
    return lambda cfg: cfg.__setitem__(key, value)


def weights(w, data: bytes):
    (w.pre / "model.safetensors").write_bytes(data)
    return w.pre


def changed_weights(w):
    data = bytearray((w.pre / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of the last tensor
    return weights(w, bytes(data))


def one_class(n=24):
    s = synthetic_jets(n)
    return s[s.labels == 0]


def ft_args(w, *extra, out=None, checkpoint=None):
    return [
        "finetune",
        "--checkpoint",
        str(checkpoint or w.pre),
        "--train",
        str(w.jets),
        "--test",
        str(w.jets),
        "--out",
        str(out if out is not None else w.tmp / "run"),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        *extra,
    ]


def pt_args(w, *extra, out=None):
    return [
        "pretrain",
        "--data",
        str(w.jets),
        "--out",
        str(out if out is not None else w.tmp / "p"),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        *extra,
    ]


def scan_args(w, *extra, out=None, sizes="16", seeds="0"):
    return [
        "scan",
        "--checkpoint",
        str(w.pre),
        "--train",
        str(w.jets),
        "--test",
        str(w.jets),
        "--out",
        str(out if out is not None else w.tmp / "scan"),
        "--sizes",
        sizes,
        "--seeds",
        seeds,
        "--epochs",
        "1",
        "--device",
        "cpu",
        *extra,
    ]


def gen_args(w, *extra, out=None):
    return [
        "generate",
        "jets",
        "--recipe",
        "top,qcd",
        "--jets-per-class",
        "4",
        "--out",
        str(out if out is not None else w.tmp / "gen"),
        *extra,
    ]


def lhe_file(w, events=1):
    text = '<LesHouchesEvents version="3.0">\n<init>\n 2212 2212 6.5e3 6.5e3 0 0 0 0 3 1\n 1 0 1 1\n</init>\n'
    text += "<event>\n 1 1 1 1 1 1\n 21 -1 0 0 501 502 0 0 100 100 0 -1 9\n</event>\n" * events
    path = w.tmp / "few.lhe"
    path.write_text(text + "</LesHouchesEvents>\n")
    return path


CKPT = lambda w: [w.pre]  # noqa: E731 - the starting checkpoint must survive every case
FINISHED = lambda w: [w.ft, w.pre]  # noqa: E731

CASES = [
    # ---- readers
    api("read-missing-file", lambda w: read_jets(w.tmp / "nope.h5"), MissingInputError, "nope.h5"),
    api("read-events-missing-file", lambda w: read_events(w.tmp / "nope.root"), MissingInputError, "nope.root"),
    api("read-unknown-format", lambda w: read_jets(w.jets, format="csv"), DataError, "unknown jet format 'csv'"),
    api(
        "read-undetectable",
        lambda w: read_jets(text_file(w, "notes.txt")),
        DataError,
        "notes.txt",
        "cannot detect the format",
    ),
    api("read-fake-hdf5", lambda w: read_jets(text_file(w, "fake.h5")), DataError, "fake.h5", "cannot read"),
    api("read-negative-max-jets", lambda w: read_jets(w.jets, max_jets=-3), OptionError, "max_jets", "-3"),
    api("read-zero-max-particles", lambda w: read_jets(w.jets, max_particles=0), OptionError, "max_particles"),
    api("read-events-negative-max", lambda w: read_events(w.jets, max_events=-1), OptionError, "max_events"),
    api("read-float-max-jets", lambda w: read_jets(w.jets, max_jets=2.5), OptionError, "max_jets"),
    api(
        "read-particle-level-unpaired",
        lambda w: read_jets(w.jets, level="particle"),
        DataError,
        "particle",
        "gen_part_px",
    ),
    api(
        "read-level-other-format",
        lambda w: read_jets(toptagging(w), level="particle"),
        DataError,
        "top.h5",
        "level='particle'",
    ),
    api("read-jets-of-events", lambda w: read_jets(event_shard(w)), DataError, "events.parquet", "part_px"),
    api("read-events-of-jets", lambda w: read_events(w.jets), DataError, "label", "use read_jets"),
    api("shard-nan-px", lambda w: read_jets(shard(w, part_px=with_nan)), DataError, "a.parquet", "'part_px'", "NaN"),
    api(
        "shard-nan-charge",
        lambda w: read_jets(shard(w, part_charge=with_nan)),
        DataError,
        "a.parquet",
        "'part_charge'",
        "NaN",
    ),
    api("shard-nan-energy", lambda w: read_jets(shard(w, part_energy=with_nan)), DataError, "'part_energy'"),
    api(
        "shard-label-out-of-range",
        lambda w: read_jets(shard(w, label=np.full(5, 7, np.int32))),
        DataError,
        "a.parquet",
        "'label'",
        "outside [0, 1]",
    ),
    api(
        "shard-negative-label",
        lambda w: read_jets(shard(w, label=np.full(5, -1, np.int32))),
        DataError,
        "'label'",
        "outside",
    ),
    api("shard-missing-field", lambda w: read_jets(shard(w, part_pid=None)), DataError, "a.parquet", "part_pid"),
    api("shard-not-hepfm", lambda w: read_jets(_plain_parquet(w)), DataError, "plain.parquet", "'hepfm'"),
    api(
        "event-shard-nan-pt",
        lambda w: read_events(event_shard(w, "obj_pt")),
        DataError,
        "events.parquet",
        "'obj_pt'",
        "NaN",
    ),
    api("event-shard-layout-99", lambda w: read_events(event_shard(w, version=99)), DataError, "'event_schema'", "99"),
    api("event-shard-nan-truth", lambda w: read_events(event_shard(w, "truth_top")), DataError, "'truth_top'", "NaN"),
    api("event-shard-nan-charge", lambda w: read_events(event_shard(w, "obj_charge")), DataError, "'obj_charge'"),
    api(
        "event-shard-label-out-of-range",
        lambda w: read_events(event_shard(w, label=4)),
        DataError,
        "events.parquet",
        "'label'",
        "outside",
    ),
    api(
        "manifest-json-list", lambda w: read_jets(manifest(w, "[1, 2]")), DataError, "dataset.json", "not a JSON object"
    ),
    api(
        "manifest-invalid-json",
        lambda w: read_jets(manifest(w, "{shards:")),
        DataError,
        "dataset.json",
        "not valid JSON",
    ),
    api(
        "manifest-incomplete",
        lambda w: read_jets(edit_manifest(w, complete=False)),
        DataError,
        "dataset.json",
        "'complete'",
        "allow_incomplete",
    ),
    api(
        "manifest-missing-shard",
        lambda w: read_jets(edit_manifest(w, shards=["QCD-00000.parquet", "QCD-00042.parquet"])),
        DataError,
        "dataset.json",
        "QCD-00042.parquet",
    ),
    api("manifest-shards-not-list", lambda w: read_jets(edit_manifest(w, shards="all")), DataError, "'shards'"),
    api(
        "toptagging-object-column",
        lambda w: read_jets(_pickled_toptagging_fixed(w)),
        DataError,
        "top_obj.h5",
        "objects or strings",
    ),
    api(
        "toptagging-pickled-attribute",
        lambda w: read_jets(_pickled_toptagging_table(w)),
        DataError,
        "top_attr.h5",
        "values_block_0_kind",
        "pickled object",
    ),
    api("lhco-object-column", lambda w: read_events(_pickled_lhco(w)), DataError, "lhco_obj.h5", "objects or strings"),
    api("energyflow-object-array", lambda w: read_jets(_pickled_npz(w)), DataError, "obj.npz", "cannot read"),
    api(
        "jetclass-nan-charge",
        lambda w: read_jets(_jetclass_nan_charge(w)),
        DataError,
        "jetclass.root",
        "'part_charge'",
        "NaN",
    ),
    # ---- generation
    api(
        "gen-unknown-class", lambda w: generate_jets(["Tbqq", "Nope"], 4, w.tmp / "g"), OptionError, "classes", "'Nope'"
    ),
    api("gen-zero-jets", lambda w: generate_jets(["top"], 0, w.tmp / "g"), OptionError, "jets_per_class", "0"),
    api(
        "gen-negative-shard",
        lambda w: generate_jets(["top"], 4, w.tmp / "g", jets_per_shard=-1),
        OptionError,
        "jets_per_shard",
    ),
    api(
        "gen-unknown-detector",
        lambda w: generate_jets(["top"], 4, w.tmp / "g", detector="atlas"),
        OptionError,
        "detector",
        "'atlas'",
    ),
    api(
        "gen-bad-setting",
        lambda w: generate_jets(["top"], 4, w.tmp / "g", settings=["Bogus:thing = 1"]),
        OptionError,
        "settings",
        "Bogus:thing",
    ),
    api("gen-twice-listed", lambda w: generate_jets(["top", "top"], 4, w.tmp / "g"), OptionError, "classes", "twice"),
    api(
        "gen-unknown-process",
        lambda w: generate_events(["ttH", "ttQ"], 4, w.tmp / "e"),
        OptionError,
        "processes",
        "'ttQ'",
    ),
    api(
        "gen-unknown-content",
        lambda w: generate_events(["ttH"], 4, w.tmp / "e", content="hits"),
        OptionError,
        "content",
        "'hits'",
    ),
    api(
        "gen-negative-trigger",
        lambda w: generate_events(["ttH"], 4, w.tmp / "e", trigger_pt=-5),
        OptionError,
        "trigger_pt",
    ),
    api(
        "gen-lhe-too-few",
        lambda w: generate_events(["ttW"], 5, w.tmp / "e", lhe={"ttW": lhe_file(w)}),
        DataError,
        "few.lhe",
        "fewer than the 5",
    ),
    api("gen-workers-zero", lambda w: generate_jets(["top"], 4, w.tmp / "g", workers=0), OptionError, "workers"),
    api(
        "gen-other-production",
        lambda w: generate_jets(["Tbqq", "QCD"], 24, w.jets, seed=9, jets_per_shard=8),
        DataError,
        "dataset.json",
        "other settings",
        "seed",
        keep=lambda w: [w.jets],
    ),
    api(
        "gen-smaller-production",
        lambda w: generate_jets(["Tbqq", "QCD"], 16, w.jets, seed=5, jets_per_shard=8),
        DataError,
        "dataset.json",
        "24 jets per class",
        keep=lambda w: [w.jets],
    ),
    api(
        "gen-out-is-file",
        lambda w: generate_jets(["top"], 4, w.tmp / "out.txt"),
        OutputError,
        "out.txt",
        "is a file",
        keep=lambda w: [text_file(w, "out.txt")],
    ),
    cli(
        "cli-gen-unknown-class",
        lambda w: ["generate", "jets", "--classes", "Nope", "--jets-per-class", "3", "--out", str(w.tmp / "g")],
        "--classes",
        "'Nope'",
    ),
    cli(
        "cli-gen-no-size",
        lambda w: ["generate", "jets", "--recipe", "top", "--out", str(w.tmp / "g")],
        "--jets-per-class",
        "--profile",
    ),
    cli("cli-gen-bad-set", lambda w: gen_args(w, "--set", "Bogus:thing = 1"), "--set: ", "Bogus:thing"),
    cli(
        "cli-gen-bad-recipe",
        lambda w: ["generate", "jets", "--recipe", "topp", "--jets-per-class", "2", "--out", str(w.tmp / "g")],
        "--classes/--recipe: ",
        "'topp'",
    ),
    cli(
        "cli-gen-bad-lhe",
        lambda w: ["generate", "events", "--events-per-process", "3", "--lhe", "ttW", "--out", str(w.tmp / "e")],
        "--lhe",
        "NAME=FILE",
    ),
    cli("cli-gen-zero-per-shard", lambda w: gen_args(w, "--jets-per-shard", "0"), "--jets-per-shard"),
    cli(
        "cli-gen-into-other-production",
        lambda w: [
            "generate",
            "jets",
            "--classes",
            "Tbqq,QCD",
            "--jets-per-class",
            "24",
            "--jets-per-shard",
            "8",
            "--seed",
            "7",
            "--out",
            str(w.jets),
        ],
        "dataset.json",
        "other settings",
        keep=lambda w: [w.jets],
    ),
    # ---- checkpoints
    api("ckpt-missing", lambda w: load_checkpoint(w.tmp / "nope"), CheckpointError, "nope", "not found"),
    api(
        "ckpt-unknown-name",
        lambda w: load_checkpoint("pet-gigantic"),
        CheckpointError,
        "pet-gigantic",
        "pet-tiny-jetclass",
        "HEPFM_CHECKPOINTS=DIR",
    ),
    api(
        "ckpt-config-missing",
        lambda w: load_checkpoint(_without(w.pre / "config.json")),
        CheckpointError,
        "config.json",
        "missing",
    ),
    api(
        "ckpt-config-list",
        lambda w: load_checkpoint(_write(w.pre / "config.json", "[1]")),
        CheckpointError,
        "config.json",
        "not a JSON object",
    ),
    api("ckpt-format", lambda w: load_checkpoint(config_json(w, set_("format", 9))), CheckpointError, "'format'", "9"),
    api(
        "ckpt-unknown-model",
        lambda w: load_checkpoint(config_json(w, set_("model", "transformer"))),
        CheckpointError,
        "'model'",
        "'transformer'",
    ),
    api(
        "ckpt-no-model-config",
        lambda w: load_checkpoint(config_json(w, drop("model_config"))),
        CheckpointError,
        "'model_config'",
    ),
    api(
        "ckpt-no-normaliser",
        lambda w: load_checkpoint(config_json(w, drop("normaliser"))),
        CheckpointError,
        "'normaliser'",
        "normalisation",
    ),
    api(
        "ckpt-bad-normaliser",
        lambda w: load_checkpoint(config_json(w, set_("normaliser", {"x": 1}))),
        CheckpointError,
        "normaliser",
    ),
    api(
        "ckpt-no-class-names",
        lambda w: load_checkpoint(config_json(w, drop("class_names"))),
        CheckpointError,
        "'class_names'",
    ),
    api(
        "ckpt-bad-max-particles",
        lambda w: load_checkpoint(config_json(w, set_("max_particles", -2))),
        CheckpointError,
        "'max_particles'",
    ),
    api(
        "ckpt-corrupt-weights",
        lambda w: load_checkpoint(weights(w, b"\0" * 64)),
        CheckpointError,
        "model.safetensors",
        "corrupt",
    ),
    api(
        "ckpt-pickled-weights",
        lambda w: load_checkpoint(weights(w, pickle.dumps({"a": 1}))),
        CheckpointError,
        "model.safetensors",
        "not a safetensors file",
    ),
    api(
        "ckpt-changed-weights",
        lambda w: load_checkpoint(changed_weights(w)),
        CheckpointError,
        "model.safetensors",
        "sha256",
    ),
    api(
        "ckpt-shape-mismatch",
        lambda w: load_checkpoint(config_json(w, lambda c: c["model_config"].update(dim=32))),
        CheckpointError,
        "model.safetensors",
        "shape",
    ),
    api("ckpt-is-file", lambda w: load_checkpoint(w.pre / "config.json"), CheckpointError, "config.json"),
    cli("cli-ckpt-missing", lambda w: ft_args(w, checkpoint=w.tmp / "none"), "none", "not found"),
    # ---- training options (API)
    api("train-batch-zero", lambda w: TrainConfig(batch_size=0), OptionError, "batch_size", ">= 1"),
    api("train-epochs-zero", lambda w: TrainConfig(epochs=0), OptionError, "epochs", ">= 1"),
    api("train-lr-negative", lambda w: TrainConfig(lr=-1), OptionError, "lr", "> 0"),
    api("train-lr-nan", lambda w: TrainConfig(lr=float("nan")), OptionError, "lr", "finite"),
    api("train-optimizer", lambda w: TrainConfig(optimizer="sgd"), OptionError, "optimizer", "adamw, lion"),
    api("train-ema", lambda w: TrainConfig(ema_decay=1.0), OptionError, "ema_decay", "< 1"),
    api("train-device-cuda", lambda w: TrainConfig(device="cuda"), OptionError, "device", "CUDA is not available"),
    api("train-device-unknown", lambda w: TrainConfig(device="tpu7"), OptionError, "device", "'tpu7'"),
    api("train-patience-negative", lambda w: TrainConfig(patience=-1), OptionError, "patience"),
    api("finetune-head-init", lambda w: FinetuneConfig(head_init="foo"), OptionError, "head_init", "probe, zero"),
    api("finetune-lr-factor", lambda w: FinetuneConfig(lr_factor=0), OptionError, "lr_factor", "> 0"),
    api("finetune-val-fraction", lambda w: FinetuneConfig(val_fraction=1.5), OptionError, "val_fraction"),
    api("finetune-n-train-zero", lambda w: FinetuneConfig(n_train=0), OptionError, "n_train"),
    api(
        "finetune-unknown-option",
        lambda w: finetune(w.pre, w.jets, w.jets, w.tmp / "r", colour="red"),
        OptionError,
        "colour",
    ),
    api(
        "finetune-n-train-too-many",
        lambda w: finetune(w.pre, w.jets, w.jets, w.tmp / "r", n_train=10_000, train=TrainConfig(**FAST)),
        DataError,
        "10000",
    ),
    api(
        "finetune-one-class",
        lambda w: finetune(w.pre, one_class(), synthetic_jets(16), w.tmp / "r", train=TrainConfig(**FAST)),
        DataError,
        "one class",
        "narrow",
    ),
    api(
        "finetune-empty-test",
        lambda w: finetune(w.pre, synthetic_jets(24), synthetic_jets(8)[:0], w.tmp / "r", train=TrainConfig(**FAST)),
        DataError,
        "test",
        "no examples",
    ),
    api(
        "finetune-one-class-test",
        lambda w: finetune(w.pre, synthetic_jets(24), one_class(16), w.tmp / "r", train=TrainConfig(**FAST)),
        DataError,
        "test",
        "one class",
    ),
    api(
        "finetune-signal-class",
        lambda w: finetune(
            w.pre, synthetic_jets(24), synthetic_jets(16), w.tmp / "r", signal=5, train=TrainConfig(**FAST)
        ),
        OptionError,
        "signal",
    ),
    api(
        "finetune-events-into-pet",
        lambda w: finetune(w.pre, read_events_sample(), read_events_sample(), w.tmp / "r", train=TrainConfig(**FAST)),
        DataError,
        "holds events",
    ),
    api(
        "finetune-out-is-checkpoint",
        lambda w: finetune(w.pre, synthetic_jets(24), synthetic_jets(16), w.pre, train=TrainConfig(**FAST)),
        OutputError,
        "pre",
        "the checkpoint",
        keep=CKPT,
    ),
    api(
        "finetune-out-inside-checkpoint",
        lambda w: finetune(w.pre, synthetic_jets(24), synthetic_jets(16), w.pre / "sub", train=TrainConfig(**FAST)),
        OutputError,
        "sub",
        "checkpoint",
        keep=CKPT,
    ),
    api(
        "finetune-into-finished-run",
        lambda w: finetune(w.pre, synthetic_jets(24), synthetic_jets(16), w.ft, train=TrainConfig(**FAST)),
        OutputError,
        "ft",
        "finished run",
        "--resume",
        "--overwrite",
        keep=FINISHED,
    ),
    api(
        "finetune-resume-other-data",
        lambda w: finetune(
            w.pre,
            synthetic_jets(48, seed=9),
            synthetic_jets(32, seed=3),
            w.ft,
            resume=True,
            train=TrainConfig(epochs=1, **FAST),
        ),
        DataError,
        "run.json",
        "other data",
        keep=FINISHED,
    ),
    api(
        "finetune-resume-other-recipe",
        lambda w: finetune(
            w.pre,
            synthetic_jets(48, seed=2),
            synthetic_jets(32, seed=3),
            w.ft,
            resume=True,
            train=TrainConfig(epochs=4, **FAST),
        ),
        CheckpointError,
        "state.json",
        "epochs=1 -> 4",
        keep=FINISHED,
    ),
    api(
        "finetune-resume-and-overwrite",
        lambda w: finetune(w.pre, synthetic_jets(24), synthetic_jets(16), w.ft, resume=True, overwrite=True),
        OutputError,
        "resume",
        "overwrite",
        keep=FINISHED,
    ),
    api(
        "pretrain-into-finished-run",
        lambda w: pretrain(synthetic_jets(32), w.pre, train=TrainConfig(**FAST)),
        OutputError,
        "pre",
        "finished run",
        keep=CKPT,
    ),
    api(
        "pretrain-one-class",
        lambda w: pretrain(one_class(), w.tmp / "p", train=TrainConfig(**FAST)),
        DataError,
        "one class",
    ),
    api(
        "pretrain-unknown-size",
        lambda w: pretrain(synthetic_jets(32), w.tmp / "p", config="huge"),
        OptionError,
        "config",
        "'huge'",
    ),
    api(
        "pretrain-stream-and-init",
        lambda w: pretrain(w.jets, w.tmp / "p", stream=True, init=w.pre),
        OptionError,
        "stream",
    ),
    api(
        "pretrain-val-fraction",
        lambda w: pretrain(synthetic_jets(32), w.tmp / "p", val_fraction=0),
        OptionError,
        "val_fraction",
    ),
    api(
        "pretrain-incomplete",
        lambda w: pretrain(edit_manifest(w, complete=False), w.tmp / "p", train=TrainConfig(**FAST)),
        DataError,
        "'complete'",
    ),
    api(
        "pretrain-events-unknown-task",
        lambda w: pretrain_events(w.jets, w.tmp / "p", task="regression"),
        OptionError,
        "task",
        "'regression'",
    ),
    # ---- training options (CLI)
    cli("cli-batch-size-zero", lambda w: ft_args(w, "--batch-size", "0"), "--batch-size", ">= 1"),
    cli("cli-epochs-zero", lambda w: pt_args(w, "--epochs", "0"), "--epochs", ">= 1"),
    cli("cli-lr-negative", lambda w: ft_args(w, "--lr", "-1"), "--lr", "> 0"),
    cli("cli-lr-factor-zero", lambda w: ft_args(w, "--lr-factor", "0"), "--lr-factor", "> 0"),
    cli("cli-optimizer", lambda w: ft_args(w, "--optimizer", "sgd"), "--optimizer", "adamw, lion"),
    cli("cli-head-init", lambda w: ft_args(w, "--head-init", "foo"), "--head-init", "probe, zero"),
    cli("cli-device-cuda", lambda w: ft_args(w, "--device", "cuda"), "--device", "CUDA is not available"),
    cli("cli-pretrain-model", lambda w: pt_args(w, "--model", "bert"), "--model", "'bert'"),
    cli("cli-pretrain-config", lambda w: pt_args(w, "--config", "huge"), "--config", "'huge'"),
    cli("cli-pretrain-max-particles", lambda w: pt_args(w, "--max-particles", "0"), "--max-particles"),
    cli("cli-pretrain-max-jets", lambda w: pt_args(w, "--max-jets", "-5"), "--max-jets"),
    cli(
        "cli-pretrain-events-stream-jets",
        lambda w: pt_args(w, "--model", "event_gnn", "--stream", "--val-fraction", "0.5"),
        "{jets}",
        "is this a jet dataset",
    ),
    cli("cli-pretrain-pet-task", lambda w: pt_args(w, "--task", "multilabel"), "--task: ", "event_gnn"),
    cli(
        "cli-pretrain-events-max-particles",
        lambda w: pt_args(w, "--model", "event_gnn", "--max-particles", "50"),
        "--max-particles: ",
        "PET",
    ),
    cli(
        "cli-pretrain-incomplete",
        lambda w: (edit_manifest(w, complete=False), pt_args(w))[1],
        "dataset.json",
        "--allow-incomplete",
    ),
    cli(
        "cli-finetune-missing-train",
        lambda w: [
            "finetune",
            "--checkpoint",
            str(w.pre),
            "--train",
            str(w.tmp / "none.h5"),
            "--test",
            str(w.jets),
            "--out",
            str(w.tmp / "r"),
        ],
        "none.h5",
    ),
    cli("cli-finetune-out-is-checkpoint", lambda w: ft_args(w, out=w.pre), "checkpoint", keep=CKPT),
    cli("cli-finetune-into-finished", lambda w: ft_args(w, out=w.ft), "finished run", "--resume", keep=FINISHED),
    cli(
        "cli-finetune-out-is-file",
        lambda w: ft_args(w, out=w.tmp / "file.txt"),
        "file.txt",
        "is a file",
        keep=lambda w: [text_file(w, "file.txt")],
    ),
    cli("cli-scan-bad-sizes", lambda w: scan_args(w, sizes="a,b"), "--sizes", "'a,b'"),
    cli("cli-scan-no-seeds", lambda w: scan_args(w, seeds=","), "--seeds"),
    cli("cli-scan-zero-size", lambda w: scan_args(w, sizes="0,16"), "--sizes"),
    cli("cli-scan-parallel-zero", lambda w: scan_args(w, "--parallel-runs", "0"), "--parallel-runs"),
    cli("cli-scan-out-is-checkpoint", lambda w: scan_args(w, out=w.pre), "checkpoint", keep=CKPT),
    cli(
        "cli-scan-into-earlier-scan",
        lambda w: scan_args(w, out=w.tmp / "old-scan"),
        "earlier scan",
        "--resume",
        keep=lambda w: [_earlier_scan(w)],
    ),
    cli("cli-threads-env", lambda w: ft_args(w), "HEPFM_THREADS", "'many'", env={"HEPFM_THREADS": "many"}),
    # ---- inspection, notebooks
    cli("cli-inspect-missing", lambda w: ["inspect", str(w.tmp / "gone.root")], "gone.root"),
    cli("cli-inspect-bad-format", lambda w: ["inspect", str(w.jets), "--format", "xml"], "'xml'"),
    cli(
        "cli-inspect-incomplete",
        lambda w: ["inspect", str(edit_manifest(w, complete=False))],
        "'complete'",
        "--allow-incomplete",
    ),
    cli(
        "cli-inspect-pickle", lambda w: ["inspect", str(_pickled_toptagging_table(w))], "top_attr.h5", "pickled object"
    ),
    api(
        "notebooks-unknown-profile",
        lambda w: run_notebooks("laptop", w.tmp / "nb"),
        OptionError,
        "profile",
        "'laptop'",
        "smoke",
    ),
    api(
        "notebooks-unknown-name", lambda w: run_notebooks("smoke", w.tmp / "nb", only=["99"]), OptionError, "only", "99"
    ),
    api(
        "notebooks-missing-dir",
        lambda w: run_notebooks("smoke", w.tmp / "nb", notebook_dir=w.tmp / "nbs"),
        OptionError,
        "notebooks",
        "nbs",
    ),
    api(
        "notebooks-param-not-int",
        lambda w: parameter_list("sizes", "100,1k", int),
        OptionError,
        "sizes",
        "'100,1k'",
        "int",
    ),
    api(
        "notebooks-bad-yaml",
        lambda w: run_notebooks("smoke", w.tmp / "nb", notebook_dir=_bad_profile(w)),
        DataError,
        "smoke.yaml",
    ),
    cli(
        "cli-notebooks-profile",
        lambda w: ["notebooks", "run", "--profile", "laptop", "--out", str(w.tmp / "nb")],
        "--profile",
        "'laptop'",
    ),
    cli(
        "cli-notebooks-only",
        lambda w: ["notebooks", "run", "--profile", "smoke", "--only", "99", "--out", str(w.tmp / "nb")],
        "--only",
        "99",
    ),
]


# -- builders of files that must never run code ------------------------------------------------------------------

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"hepfm-pickle-ran-{os.getpid()}"


class Payload:
    """Unpickling this runs a shell command that creates :data:`MARKER`."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _pickled_toptagging_fixed(w):
    jets = [c for _, c, _, _ in KNOWN_JETS]
    path = write_toptagging(w.tmp / "top_obj.h5", jets, [0, 1, 1], format="fixed", n_max=3)
    frame = pd.read_hdf(path, key="table")
    frame["E_1"] = [Payload(), Payload(), Payload()]  # an object column: pandas pickles every row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        frame.to_hdf(path, key="table", format="fixed", mode="w")
    return path


def _pickled_toptagging_table(w):
    jets = [c for _, c, _, _ in KNOWN_JETS]
    path = write_toptagging(w.tmp / "top_attr.h5", jets, [0, 1, 1], n_max=3)
    with h5py.File(path, "r+") as f:  # the column names pandas reads back through pickle
        f["table/table"].attrs["values_block_0_kind"] = np.bytes_(pickle.dumps(Payload(), protocol=0))
    return path


def _pickled_lhco(w):
    values = np.zeros((3, 13))
    values[:, 0] = 100.0
    frame = pd.DataFrame(values)
    frame[4] = [Payload(), Payload(), Payload()]
    path = w.tmp / "lhco_obj.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        frame.to_hdf(path, key="df", format="fixed")
    return path


def _pickled_npz(w):
    path = w.tmp / "obj.npz"
    np.savez(path, X=np.array([Payload()], dtype=object), y=np.zeros(1))
    return path


def _jetclass_nan_charge(w):
    path = write_jetclass_tree(w.tmp / "jetclass.root", [c for _, c, _, _ in KNOWN_JETS], [0, 8, 7])
    with uproot.open(path) as f:
        arrays = f["tree"].arrays()
    charge = ak.to_numpy(ak.flatten(arrays["part_charge"])).copy()
    charge[0] = np.nan
    arrays["part_charge"] = ak.unflatten(charge, ak.num(arrays["part_charge"]))
    with uproot.recreate(path) as f:
        f["tree"] = {k: arrays[k] for k in arrays.fields}
    return path


def _plain_parquet(w):
    path = w.tmp / "plain.parquet"
    ak.to_parquet(ak.Array({"label": [0, 1]}), path)
    return path


def _without(path: Path) -> Path:
    path.unlink()
    return path.parent


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path.parent


def _earlier_scan(w):
    old = w.tmp / "old-scan"
    shutil.copytree(w.ft, old / "pretrained-n16-s0")
    return old


def _bad_profile(w):
    nbs = w.tmp / "nbs"
    (nbs / "params").mkdir(parents=True)
    (nbs / "00_x.ipynb").write_text("{}")
    (nbs / "params" / "smoke.yaml").write_text("00_x: [unclosed\n")
    return nbs


_EVENTS: list = []


def read_events_sample():
    """A tiny object-level event sample (cached)."""
    if not _EVENTS:
        from hepfm.data.sample import EventSample

        objects = np.zeros((4, 3, 7), np.float32)
        objects[..., 0] = 30.0
        _EVENTS.append(
            EventSample(
                objects,
                np.ones((4, 3), bool),
                np.array([0, 1, 0, 1]),
                ["a", "b"],
                "toy",
                particle_features=("pt", "eta", "phi", "energy", "btag", "charge", "type"),
            )
        )
    return _EVENTS[0]


# -- the table, run -----------------------------------------------------------------------------------------------


def _digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.name != LOCK)
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def run_case(case: Case, w) -> str:
    """Run one case; returns its message, having checked the kind of error and that nothing was changed."""
    keep = case.keep(w)
    before = _digest(keep)
    env = dict(os.environ)
    try:
        if isinstance(case.expect, int):
            result = runner.invoke(app, [str(a) for a in case.run(w)], env=case.env)
            assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
            assert result.exit_code == case.expect, result.output
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), result.output
            assert "Traceback" not in result.output
            message = lines[0]
        else:
            with pytest.raises(case.expect) as info:
                case.run(w)
            assert isinstance(info.value, HepfmError), type(info.value)
            message = str(info.value)
    finally:
        os.environ.clear()
        os.environ.update(env)
    for name in case.names:
        assert name.format(**vars(w)) in message, (name, message)
    assert _digest(keep) == before, "bytes written before the case changed"
    return message


def test_the_table_is_large_and_unique():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case, w):
    run_case(case, w)
    assert not MARKER.exists(), "a pickle in a data file ran code"


# -- no code from data -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [_pickled_toptagging_fixed, _pickled_toptagging_table, _pickled_lhco, _pickled_npz])
def test_a_pickled_payload_in_a_data_file_never_runs(w, build):
    MARKER.unlink(missing_ok=True)
    path = build(w)
    for read in (read_jets, read_events):
        with pytest.raises(DataError):
            read(path)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2
    assert not MARKER.exists(), f"{path.name}: unpickling ran the payload"
    # the payload is live: pandas itself would run it
    if path.suffix == ".h5":
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever pandas makes of it after running it
            frame = pd.read_hdf(path, key="df" if "lhco" in path.name else "table")
            raise RuntimeError(frame.shape)
        assert MARKER.exists()
        MARKER.unlink()


# -- nothing overwritten, reusable after errors ----------------------------------------------------------------


def test_a_rejected_setting_leaves_the_directory_reusable(w):
    out = w.tmp / "gen"
    with pytest.raises(OptionError, match="Bogus"):
        generate_jets(["top"], 2, out, settings=["Bogus:thing = 1"], progress=False)
    generate_jets(["top"], 2, out, settings=["TimeShower:alphaSvalue = 0.118"], progress=False)
    assert len(read_jets(out)) == 2


def test_an_unfinished_production_reads_only_when_asked(w):
    edit_manifest(w, complete=False)
    sample = read_jets(w.jets, allow_incomplete=True)
    assert len(sample) == 48
    result = runner.invoke(app, ["inspect", str(w.jets), "--allow-incomplete"])
    assert result.exit_code == 0 and "QCD=24" in result.output


def test_overwrite_replaces_a_finished_run_without_leftover_states(w):
    old_states = sorted((w.ft / "training").glob("epoch-*"))
    assert old_states
    finetune(
        w.pre,
        synthetic_jets(48, seed=5),
        synthetic_jets(32, seed=3),
        w.ft,
        overwrite=True,
        train=TrainConfig(epochs=2, keep_epochs=5, **FAST),
    )
    states = sorted(p.name for p in (w.ft / "training").glob("epoch-*"))
    assert states == ["epoch-0000", "epoch-0001"]
    latest = json.loads((w.ft / "training" / "latest.json").read_text())
    assert (w.ft / "training" / latest["dir"]).is_dir()
    assert json.loads((w.ft / "metrics.json").read_text())["epochs_run"] == 2


# -- faults ------------------------------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


@pytest.mark.slow
def test_kill_9_mid_generation_then_rerun_gives_identical_shards(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "hepfm",
        "generate",
        "jets",
        "--recipe",
        "top,qcd",
        "--jets-per-class",
        "12",
        "--jets-per-shard",
        "4",
        "--seed",
        "3",
    ]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=600)
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "shards").glob("*.parquet"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list((out / "shards").glob("*.parquet"))) < 6, "the kill came too late to test anything"
    with pytest.raises(DataError, match="unfinished"):
        read_jets(out)
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, timeout=600)
    assert _files(out) == _files(tmp_path / "whole")


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_is_bit_exact(base, tmp_path):
    args = [
        "finetune",
        "--checkpoint",
        str(base.pre),
        "--train",
        str(base.jets),
        "--test",
        str(base.jets),
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--patience",
        "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "hepfm", *args, "--out", str(tmp_path / "whole")],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepfm", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "training" / "epoch-0001").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2 and "unfinished run" in result.stderr
    subprocess.run(
        [sys.executable, "-m", "hepfm", *args, "--out", str(out), "--resume"],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (out, tmp_path / "whole"))
    assert a["auc"] == b["auc"] and [e["val_loss"] for e in a["history"]] == [e["val_loss"] for e in b["history"]]


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("a small tmpfs cannot be mounted here (needs root and mount)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_what_was_there(small_disk, base):
    keep = small_disk / "keep.txt"
    keep.write_text("earlier result\n")
    (small_disk / "filler").write_bytes(b"\0" * 500_000)
    result = runner.invoke(
        app,
        [
            "finetune",
            "--checkpoint",
            str(base.pre),
            "--train",
            str(base.jets),
            "--test",
            str(base.jets),
            "--out",
            str(small_disk / "run"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in result.output
    assert keep.read_text() == "earlier result\n"
    assert not (small_disk / "run" / "model.safetensors").exists()
    assert not list(small_disk.rglob("*.tmp"))


def test_a_read_only_output_is_one_line(tmp_path, base):
    mount = tmp_path / "ro"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("a read-only tmpfs cannot be mounted here (needs root and mount)")
    try:
        for args in (
            ["generate", "jets", "--recipe", "top", "--jets-per-class", "2", "--out", str(mount / "g")],
            [
                "finetune",
                "--checkpoint",
                str(base.pre),
                "--train",
                str(base.jets),
                "--test",
                str(base.jets),
                "--out",
                str(mount / "f"),
            ],
        ):
            result = runner.invoke(app, args)
            assert result.exit_code == 2, result.output
            assert result.stderr.startswith("error: ") and str(mount) in result.stderr
            assert "Read-only file system" in result.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_two_productions_into_one_directory_cannot_mix(tmp_path):
    out = tmp_path / "one"
    cmd = [
        sys.executable,
        "-m",
        "hepfm",
        "generate",
        "jets",
        "--recipe",
        "top",
        "--jets-per-class",
        "6",
        "--jets-per-shard",
        "2",
        "--out",
        str(out),
    ]
    first = subprocess.Popen([*cmd, "--seed", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / ".hepfm.lock").exists():
        time.sleep(0.02)
    time.sleep(0.5)
    second = subprocess.run([*cmd, "--seed", "2"], capture_output=True, text=True, timeout=300)
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and "is writing a production into this directory" in second.stderr
    assert json.loads((out / "dataset.json").read_text())["seed"] == 1
    assert len(read_jets(out)) == 6
