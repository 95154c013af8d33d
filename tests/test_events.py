"""Whole-event production, the NanoAOD reader, event graphs and the event model."""

from __future__ import annotations

import dataclasses
import filecmp

import numpy as np
import pytest
import torch

from hepfm.core.errors import OptionError
from hepfm.data import DataError, read_events
from hepfm.data.graphs import EventGraphDataset, ShardedEventDataset
from hepfm.data.sample import EventSample
from hepfm.data.schema import EDGE_FEATURES, GLOBAL_FEATURES, NODE_FEATURES, OBJECT_TYPES, TRUTH_LABELS, TRUTH_TARGETS
from hepfm.data.storage import shard_paths
from hepfm.models.event_gnn import EventGNN, EventGNNConfig
from hepfm.sim.events import count_lhe_events
from hepfm.sim.factory import generate_events

MET, JET = OBJECT_TYPES.index("met"), OBJECT_TYPES.index("jet")


def _truth(sample, name):
    return sample.truth[:, TRUTH_LABELS.index(name)]


def test_events_hold_the_hard_process_and_its_objects(event_dataset):
    s = read_events(event_dataset)
    assert s.class_names == ["ttH", "ttbar", "WZ"]
    assert np.bincount(s.labels).tolist() == [100, 100, 100]
    assert s.truth.shape == (300, len(TRUTH_LABELS)) and s.targets.shape == (300, len(TRUTH_TARGETS))
    tth, tt, wz = (s.labels == k for k in range(3))
    # hard-process content follows from the process
    assert _truth(s, "top")[tth | tt].all() and not _truth(s, "top")[wz].any()
    assert _truth(s, "H")[tth].all() and not _truth(s, "H")[tt | wz].any()
    assert _truth(s, "W")[wz].all() and _truth(s, "Z")[wz].all()
    top_pt = s.targets[:, TRUTH_TARGETS.index("top_pt")]
    assert (top_pt[tth | tt] > 0).all() and (top_pt[wz] == 0).all()
    # exactly one MET object per event; jets above threshold; objects sorted by pT
    kind = np.where(s.mask, s.feature("type"), -1)
    assert ((kind == MET).sum(1) == 1).all()
    assert (s.feature("pt")[kind == JET] > 25).all()
    pt = np.where(s.mask, s.feature("pt"), -1)
    assert (np.diff(pt, axis=1) <= 0).all()
    # physics: ttH has more jets and b-tags than WZ (ttH -> b b b b + jets; WZ -> at most 2 b)
    n_jets = (kind == JET).sum(1)
    n_b = ((kind == JET) & (s.feature("btag") > 0)).sum(1)
    assert n_jets[tth].mean() > n_jets[wz].mean() + 2
    assert n_b[tth].mean() > 1.2 > n_b[wz].mean()


def test_event_production_is_seeded_and_resumable(event_dataset, tmp_path):
    out = tmp_path / "again"
    generate_events(["ttH", "ttbar", "WZ"], 100, out, seed=5, events_per_shard=50, progress=False)
    first = shard_paths(out)
    for a, b in zip(shard_paths(event_dataset), first, strict=True):
        assert filecmp.cmp(a, b, shallow=False), a.name
    victim = first[3]
    victim.unlink()
    generate_events(["ttH", "ttbar", "WZ"], 100, out, seed=5, events_per_shard=50, progress=False)
    assert filecmp.cmp(victim, shard_paths(event_dataset)[3], shallow=False)
    with pytest.raises(DataError, match="other settings"):
        generate_events(["ttH", "ttbar", "WZ"], 100, out, seed=6, events_per_shard=50, progress=False)


def test_production_makes_shard_k_of_every_process_before_shard_k_plus_1(tmp_path, monkeypatch):
    """A production stopped partway (a long one in the background) then holds every process alike."""
    from hepfm.sim import factory

    made = []
    run_shard = factory.run_shard

    def recording(production, spec, progress=False):
        made.append((spec.class_name, spec.shard_index))
        return run_shard(production, spec, progress)

    monkeypatch.setattr(factory, "run_shard", recording)
    generate_events(["WZ", "ZZ"], 20, tmp_path / "ev", seed=3, events_per_shard=10, progress=False)
    assert made == [("WZ", 0), ("ZZ", 0), ("WZ", 1), ("ZZ", 1)]
    # the manifest keeps its order, process by process, so reading is unchanged
    assert [p.name for p in shard_paths(tmp_path / "ev")] == [
        f"{c}-{k:05d}.parquet" for c in ("WZ", "ZZ") for k in (0, 1)
    ]


def test_lhe_input_is_showered_by_pythia(shared_data, tmp_path):
    lhe = shared_data.parent / "lhe" / "ttbar_tevatron_pythia6.lhe"
    assert count_lhe_events(lhe) == 100
    out = generate_events(["tt_lhe"], 40, tmp_path / "lhe", lhe={"tt_lhe": lhe}, events_per_shard=20, progress=False)
    s = read_events(out)
    assert len(s) == 40 and _truth(s, "top").all() and _truth(s, "W").all()
    # two shards read different events of the file
    first, second = s.targets[:20, 0], s.targets[20:, 0]
    assert not np.allclose(np.sort(first), np.sort(second))
    with pytest.raises(DataError, match="ttbar_tevatron_pythia6.lhe: holds 100 events"):
        generate_events(["tt_lhe"], 150, tmp_path / "lhe2", lhe={"tt_lhe": lhe}, progress=False)


def test_unknown_process_is_named(tmp_path):
    with pytest.raises(OptionError, match="ttW.*LHE"):
        generate_events(["ttW"], 10, tmp_path / "x", progress=False)


def test_nanoaod_becomes_event_objects(shared_data):
    path = shared_data.parent / "nanoaod" / "cms_opendata_2015_ttbar_nanoaod.root"
    s = read_events(path)
    assert len(s) == 200 and s.particle_features == ("pt", "eta", "phi", "energy", "btag", "charge", "type")
    kind = np.where(s.mask, s.feature("type"), -1)
    assert ((kind == MET).sum(1) == 1).all()
    assert (s.feature("pt")[kind == JET] > 25).all()
    leptons = np.isin(kind, [OBJECT_TYPES.index("electron"), OBJECT_TYPES.index("muon")])
    assert set(np.abs(s.feature("charge")[leptons])) == {1.0}
    # the file's README: 0.35 electrons and 0.2 muons per event before hepfm's isolation and thresholds
    assert 0.05 < leptons.sum() / 200 < 0.55
    # simulation: hard-process truth from GenPart. Whatever the file's name says, its generator record
    # holds W -> l nu (+ jets) and no top quark
    truth = dict(zip(s.truth_names, s.truth.mean(0), strict=True))
    assert truth["W"] > 0.95 and truth["lepton"] == 1 and truth["neutrino"] == 1 and truth["top"] == 0
    targets = dict(zip(s.target_names, s.targets.T, strict=True))
    assert (targets["top_pt"] == 0).all() and targets["W_pt"].max() > 20
    # every event becomes a graph the model reads
    batch = EventGraphDataset(s).collate(list(range(200)))
    assert torch.isfinite(EventGNN(EventGNNConfig.named("tiny"))(batch.graph)).all()


def test_nanoaod_through_dask_executor_matches_iterative(shared_data):
    from hepfm.data.formats.nanoaod import read_nanoaod

    path = shared_data.parent / "nanoaod" / "cms_opendata_2015_ttbar_nanoaod.root"
    a = read_nanoaod(path, chunksize=50)
    b = read_nanoaod(path, chunksize=50, executor="dask", workers=1)
    order_a = np.lexsort(a.particles[..., 0].T[::-1])
    order_b = np.lexsort(b.particles[..., 0].T[::-1])
    np.testing.assert_array_equal(a.particles[order_a], b.particles[order_b])


def test_not_a_nanoaod_file_is_named(tmp_path):
    bad = tmp_path / "broken.root"
    bad.write_bytes(b"root" + b"\0" * 100)
    with pytest.raises(DataError, match="broken.root"):
        read_events(bad)


# -- graphs ---------------------------------------------------------------------------------------------------


def _objects(rows: list[list[tuple]]) -> EventSample:
    """An object-level sample from per-event lists of (pt, eta, phi, energy, btag, charge, type)."""
    width = max(len(r) for r in rows) + 2  # extra padding on purpose
    obj = np.zeros((len(rows), width, 7), np.float32)
    mask = np.zeros((len(rows), width), bool)
    for i, r in enumerate(rows):
        obj[i, : len(r)] = r
        mask[i, : len(r)] = True
    return EventSample(
        obj,
        mask,
        np.zeros(len(rows), np.int64),
        ["x"],
        "toy",
        particle_features=("pt", "eta", "phi", "energy", "btag", "charge", "type"),
    )


TOY = [
    [
        (120, 0.5, 1.0, 140, 1, 0, JET),
        (80, -1.0, -2.0, 130, 0, 0, JET),
        (40, 0.2, 3.1, 41, 0, -1, 2),
        (50, 0, 0.3, 50, 0, 0, MET),
    ],
    [(30, 0, 0, 30, 0, 0, MET)],  # no jets, no leptons: only MET
    [(60, 1.0, -3.1, 95, 0, 1, 1), (25, 2.0, 0.0, 95, 0, 0, 3), (20, 0, 1.5, 20, 0, 0, MET)],
]


def test_graph_batches_have_every_ordered_pair_as_an_edge():
    batch = EventGraphDataset(_objects(TOY)).collate([0, 1, 2]).graph
    assert batch.num_graphs == 3 and batch.x.shape == (8, len(NODE_FEATURES))
    assert batch.edge_index.shape == (2, 4 * 3 + 0 + 3 * 2) and batch.edge_attr.shape[1] == len(EDGE_FEATURES)
    assert batch.u.shape == (3, len(GLOBAL_FEATURES))
    src, dst = batch.edge_index
    assert (batch.batch[src] == batch.batch[dst]).all() and (src != dst).all()
    # delta phi wraps: objects at phi = 3.1 and -2.0 are 1.18 apart, not 5.1
    deta, dphi, dr = batch.edge_attr.T
    assert dphi.abs().max() <= np.pi and torch.allclose(dr, torch.hypot(deta, dphi))
    # the MET-only event: one node, no edges, a finite output
    model = EventGNN(EventGNNConfig.named("tiny", n_outputs=3)).eval()
    out = model(batch)
    assert out.shape == (3, 3) and torch.isfinite(out).all()


def test_event_model_is_invariant_to_object_order_and_padding():
    torch.manual_seed(0)
    model = EventGNN(EventGNNConfig()).eval()
    sample = _objects(TOY)
    out = model(EventGraphDataset(sample).collate([0, 1, 2]).graph)
    perm = np.array([3, 0, 5, 2, 1, 4])
    shuffled = dataclasses.replace(sample, particles=sample.particles[:, perm], mask=sample.mask[:, perm])
    torch.testing.assert_close(model(EventGraphDataset(shuffled).collate([0, 1, 2]).graph), out, atol=1e-5, rtol=1e-5)
    # one event alone, or with different neighbours in the batch, gives the same output
    torch.testing.assert_close(model(EventGraphDataset(sample).collate([2]).graph)[0], out[2], atol=1e-5, rtol=1e-5)


def test_event_model_has_the_papers_size():
    n = EventGNN(EventGNNConfig()).num_parameters()
    assert 3e5 < n < 6e5, n


# -- pretraining and fine-tuning ------------------------------------------------------------------------------

FAST = dict(batch_size=32, progress=False, lr=5e-3, warmup_epochs=0.5, patience=0)


@pytest.fixture(scope="module")
def event_checkpoints(event_dataset, tmp_path_factory):
    from hepfm.train import TrainConfig, pretrain_events

    out = tmp_path_factory.mktemp("event-ckpt")
    metrics = {
        task: pretrain_events(
            event_dataset, out / task, config="tiny", task=task, val_fraction=0.25, train=TrainConfig(epochs=12, **FAST)
        )
        for task in ("multiclass", "multilabel")
    }
    return out, metrics


def test_multiclass_pretraining_learns_the_processes(event_checkpoints):
    _, metrics = event_checkpoints
    m = metrics["multiclass"]
    history = [e["val_loss"] for e in m["history"]]
    assert min(history) < history[0] and m["val_accuracy"] > 0.55  # chance is 1/3


def test_multilabel_pretraining_learns_the_truth(event_checkpoints, event_dataset):
    from hepfm.train.checkpoint import load_checkpoint

    out, metrics = event_checkpoints
    m = metrics["multilabel"]
    assert m["config"]["n_outputs"] == len(TRUTH_LABELS) + len(TRUTH_TARGETS)
    assert m["config"]["n_labels"] == len(TRUTH_LABELS)
    # better than knowing only how often each label is on: that predictor's cross entropy is the entropy
    p = read_events(event_dataset).truth.mean(0).clip(1e-6, 1 - 1e-6)
    baseline = float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))
    best = m["history"][m["best_epoch"]]
    assert best["val_bce"] < 0.8 * baseline
    assert best["val_mse"] < 0.6 * m["history"][0]["val_mse"]
    assert m["val_accuracy"] > 0.8  # per-label accuracy
    config = load_checkpoint(out / "multilabel").config
    assert config["truth_names"] == list(TRUTH_LABELS) and config["target_names"] == list(TRUTH_TARGETS)


def test_streamed_events_make_the_batches_of_events_in_memory(event_dataset):
    memory = EventGraphDataset(read_events(event_dataset))
    items = list(ShardedEventDataset(event_dataset))  # file order: the order read_events reads
    assert len(items) == len(memory) == 300
    for idx in (list(range(50)), list(range(30, 130)), [0, 299, 150]):  # one shard, three shards, far apart
        streamed = ShardedEventDataset(event_dataset).collate([items[i] for i in idx])
        expected = memory.collate(idx)
        for key in ("x", "edge_index", "edge_attr", "u", "batch", "ptr"):
            torch.testing.assert_close(streamed.graph[key], expected.graph[key], rtol=0, atol=0)
        for key in ("y", "truth", "targets"):
            torch.testing.assert_close(getattr(streamed, key), getattr(expected, key), rtol=0, atol=0)


def test_streamed_multilabel_pretraining_holds_out_whole_shards(event_dataset, tmp_path):
    from hepfm.train import TrainConfig, pretrain_events
    from hepfm.train.checkpoint import load_checkpoint

    m = pretrain_events(
        event_dataset,
        tmp_path / "s",
        config="tiny",
        task="multilabel",
        stream=True,
        val_fraction=0.5,
        train=TrainConfig(epochs=6, **FAST),
    )
    assert (m["n_train"], m["n_val"]) == (150, 150)  # every second shard: one of each process
    history = [e["val_mse"] for e in m["history"]]
    assert min(history) < 0.8 * history[0]
    config = load_checkpoint(tmp_path / "s").config
    assert config["truth_names"] == list(TRUTH_LABELS) and config["target_names"] == list(TRUTH_TARGETS)


def test_event_finetuning_replaces_the_head_and_keeps_the_recipe(event_checkpoints, event_dataset, tmp_path):
    from hepfm.train import TrainConfig, finetune
    from hepfm.train.checkpoint import load_checkpoint, load_weights

    out, _ = event_checkpoints
    cfg = TrainConfig(epochs=3, **FAST)
    m = finetune(out / "multilabel", event_dataset, event_dataset, tmp_path / "ft", train=cfg)
    assert {"auc", "accuracy", "rej30", "rej50", "epochs_run", "wall_seconds"} <= set(m)
    assert m["signal"] == "WZ" and m["auc"] > 0.8
    frozen = finetune(
        out / "multiclass", event_dataset, event_dataset, tmp_path / "frozen", train=cfg, freeze_backbone=True
    )
    assert frozen["freeze_backbone"]
    before = load_weights(out / "multiclass" / "model.safetensors")
    after = load_weights(tmp_path / "frozen" / "model.safetensors")
    backbone = [k for k in before if not k.startswith("head.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)
    assert (
        not torch.equal(before["head.weight"], after["head.weight"])
        or before["head.weight"].shape != after["head.weight"].shape
    )
    ckpt = load_checkpoint(tmp_path / "ft")
    assert ckpt.config["model"] == "event_gnn" and ckpt.model().config.n_outputs == 3


def test_finetuning_on_pretrained_processes_starts_from_their_classifier(event_checkpoints, event_dataset, tmp_path):
    """The new head of a task whose processes the multiclass model was pretrained on takes that classifier's rows
    (matched by name, in the task's order): before any step it is the pretrained classifier restricted to them."""
    from hepfm.train import TrainConfig, finetune
    from hepfm.train.checkpoint import load_checkpoint

    out, _ = event_checkpoints
    events = read_events(event_dataset)
    pretrained = load_checkpoint(out / "multiclass")
    p = pretrained.predict(events, device="cpu")  # classes ttH, ttbar, WZ
    # a two-process task in the other order: WZ (label 0) against ttH (label 1)
    keep = events.labels != 1
    task = dataclasses.replace(
        events[keep], labels=(events.labels[keep] == 0).astype(np.int64), class_names=["WZ", "ttH"]
    )
    still = TrainConfig(epochs=1, batch_size=32, lr=1e-12, ema_decay=0, weight_decay=0, progress=False, patience=0)
    m = finetune(out / "multiclass", task, task, tmp_path / "ft", train=still, freeze_backbone=True)
    assert m["head_init"] == "auto" and m["head_start"] == "classes"
    q = load_checkpoint(tmp_path / "ft").predict(task, device="cpu")
    expected = p[keep][:, [2, 0]] / p[keep][:, [2, 0]].sum(1, keepdims=True)
    assert np.allclose(q, expected, atol=1e-5)
    assert m["auc"] > 0.9  # the pretrained classifier already tells ttH from WZ
    # the multilabel model has no class rows: auto probes, classes is refused before anything is written
    m = finetune(out / "multilabel", task, task, tmp_path / "ml", train=still, freeze_backbone=True)
    assert m["head_start"] == "probe"
    with pytest.raises(OptionError, match="head_init.*multilabel model"):
        finetune(out / "multilabel", task, task, tmp_path / "refused", train=still, head_init="classes")
    unseen = dataclasses.replace(task, class_names=["WZ", "Zprime"])
    with pytest.raises(OptionError, match=r"does not know \['Zprime'\]"):
        finetune(out / "multiclass", unseen, unseen, tmp_path / "refused", train=still, head_init="classes")
    assert not any((tmp_path / "refused").iterdir())  # refused before any training wrote there
    # from scratch there is no pretrained classifier: its random features are probed
    m = finetune(out / "multiclass", task, task, tmp_path / "scratch", train=still, from_scratch=True)
    assert m["head_start"] == "probe"


def test_pretrained_event_model_classifies_nanoaod(event_checkpoints, shared_data):
    from hepfm.train import evaluate_checkpoint

    out, _ = event_checkpoints
    path = shared_data.parent / "nanoaod" / "cms_opendata_2015_ttbar_nanoaod.root"
    probs, sample, config = evaluate_checkpoint(out / "multiclass", path)
    assert probs.shape == (200, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    with pytest.raises(DataError, match="multilabel checkpoint has no class probabilities"):
        evaluate_checkpoint(out / "multilabel", path)


def test_cli_generates_pretrains_and_finetunes_events(tmp_path):
    from typer.testing import CliRunner

    from hepfm.cli import app

    runner = CliRunner()
    data = tmp_path / "ev"
    r = runner.invoke(
        app,
        [
            "generate",
            "events",
            "--processes",
            "WZ,ttbar",
            "--events-per-process",
            "40",
            "--events-per-shard",
            "20",
            "--seed",
            "1",
            "--out",
            str(data),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "pretrain",
            "--model",
            "event_gnn",
            "--config",
            "tiny",
            "--task",
            "multilabel",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "ck"),
            "--epochs",
            "2",
            "--batch-size",
            "16",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "finetune",
            "--checkpoint",
            str(tmp_path / "ck"),
            "--train",
            str(data),
            "--test",
            str(data),
            "--out",
            str(tmp_path / "ft"),
            "--epochs",
            "1",
            "--batch-size",
            "16",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ft" / "metrics.json").exists() and "AUC" in r.output
    r = runner.invoke(
        app, ["generate", "events", "--processes", "ttW", "--events-per-process", "5", "--out", str(tmp_path / "bad")]
    )
    assert r.exit_code == 2 and "ttW" in r.output


def _delphes_events(columns: dict[str, list]):
    """NanoEvents with coffea's DelphesSchema from per-event lists named as in a Delphes file (no ROOT file needed)."""
    import uuid

    import awkward as ak
    from coffea.nanoevents import DelphesSchema, NanoEventsFactory

    class Source(dict):
        metadata: dict = {}

    src = Source()
    for collection, fields in columns.items():
        n = len(next(iter(fields.values())))
        src[f"{collection}_size"] = ak.with_parameter(
            ak.Array([len(v) for v in next(iter(fields.values()))]), "__doc__", f"{collection}_size"
        )
        for field, values in fields.items():
            key = f"{collection}/{collection}.{field}"
            src[key] = ak.with_parameter(ak.Array(values), "__doc__", key)
    src.metadata = {"uuid": str(uuid.uuid4()), "num_rows": n, "object_path": "Delphes"}
    return NanoEventsFactory.from_preloaded(src, schemaclass=DelphesSchema).events()


def test_delphes_events_become_the_same_objects():
    from hepfm.data.formats.nanoaod import EventGraphProcessor, accumulated_to_events
    from hepfm.data.storage import events_to_sample

    events = _delphes_events(
        {
            "Jet": {
                "PT": [[120.0, 40.0, 20.0], [], [60.0]],
                "Eta": [[0.5, -1.0, 0.0], [], [3.5]],
                "Phi": [[1.0, -2.0, 0.0], [], [0.3]],
                "Mass": [[10.0, 5.0, 2.0], [], [6.0]],
                "BTag": [[1, 0, 1], [], [1]],
            },
            "Electron": {
                "PT": [[], [35.0], []],
                "Eta": [[], [0.2], []],
                "Phi": [[], [1.5], []],
                "Charge": [[], [-1], []],
            },
            "Muon": {
                "PT": [[25.0], [], [5.0]],
                "Eta": [[1.0], [], [0.0]],
                "Phi": [[0.0], [], [0.0]],
                "Charge": [[1], [], [1]],
            },
            "Photon": {"PT": [[], [], [15.0]], "Eta": [[], [], [0.4]], "Phi": [[], [], [2.0]], "E": [[], [], [16.2]]},
            "MissingET": {"MET": [[30.0], [12.0], [55.0]], "Eta": [[0.0], [0.0], [0.0]], "Phi": [[0.7], [-0.7], [3.0]]},
        }
    )
    out = EventGraphProcessor(schema="delphes").process(events)
    s = events_to_sample(accumulated_to_events(out), ["delphes"], source="toy")
    kind = np.where(s.mask, s.feature("type"), -1)
    # event 0: jets 120 (b) and 40 (the 20 GeV jet fails the 25 GeV cut), a muon, MET
    assert s.mask.sum(1).tolist() == [4, 2, 2]
    np.testing.assert_allclose(s.feature("pt")[0, :4], [120, 40, 30, 25])
    assert kind[0, :4].tolist() == [JET, JET, MET, OBJECT_TYPES.index("muon")]
    assert s.feature("btag")[0, :2].tolist() == [1, 0] and s.feature("charge")[0, 3] == 1
    # event 1: electron with its charge; event 2: the jet at |eta| 3.5 and the 5 GeV muon are dropped
    assert kind[1, :2].tolist() == [OBJECT_TYPES.index("electron"), MET] and s.feature("charge")[1, 0] == -1
    assert sorted(kind[2, :2].tolist()) == [OBJECT_TYPES.index("photon"), MET]
    np.testing.assert_allclose(s.feature("energy")[0, 0], np.sqrt((120 * np.cosh(0.5)) ** 2 + 100), rtol=1e-5)
    assert s.truth is None


# -- representations for CKA -----------------------------------------------------------------------------------


def test_event_model_representation_layers_and_their_event_vectors():
    torch.manual_seed(0)
    model = EventGNN(EventGNNConfig.named("tiny", n_outputs=3)).eval()
    layers = model.representation_layers()
    assert list(layers) == ["global_encoder", "blocks.0", "blocks.1", "decoder"]  # tiny: two message-passing steps
    assert all(model.get_submodule(name) is module for name, module in layers.items())
    batch = EventGraphDataset(_objects(TOY)).collate([0, 1, 2])
    outputs = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: outputs.setdefault(n, out)) for n, m in layers.items()]
    model(batch.graph)
    for h in hooks:
        h.remove()
    for name in layers:
        vector = model.pool_representation(name, outputs[name], batch)
        assert vector.shape == (3, model.config.hidden) and vector.dtype == torch.float64, name
    # a graph-network block's event vector is its global output (nodes, edges, global)
    torch.testing.assert_close(
        model.pool_representation("blocks.1", outputs["blocks.1"], batch), outputs["blocks.1"][2].double()
    )
    torch.testing.assert_close(
        model.pool_representation("decoder", outputs["decoder"], batch), model.embed(batch.graph).double()
    )
