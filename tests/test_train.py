"""The training loop and the pretrain / fine-tune recipes."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_jets
from torch.utils.data import Subset

from hepfm.core.errors import CheckpointError, OptionError, Stopped
from hepfm.core.metrics import background_passing, background_rejection, classifier_metrics, roc_auc
from hepfm.core.progress import LOG_INTERVAL, progress_bar
from hepfm.data import DataError, JetDataset, ShardedJetDataset, read_jets
from hepfm.models import PET, PETConfig
from hepfm.train import ClassifierObjective, TrainConfig, finetune, fit, load_checkpoint, model_outputs, pretrain
from hepfm.train.checkpoint import load_weights
from hepfm.train.finetune import probe_head, recipe_differences
from hepfm.train.loop import data_loader, lr_schedule

FAST = dict(batch_size=16, progress=False, lr=1e-3, warmup_epochs=0.5)


def _objective(seed=0):
    torch.manual_seed(seed)
    return ClassifierObjective(PET(PETConfig.named("tiny", n_classes=2, generative=False, dropout=0.1)))


class Crash(RuntimeError):
    pass


class EveryStep(torch.nn.Module):
    """Wraps an objective and calls ``hook(step)`` before each training step (steps counted from 0)."""

    def __init__(self, objective, hook):
        super().__init__()
        self.inner, self.hook, self.model, self.steps = objective, hook, objective.model, 0

    def forward(self, batch):
        if self.training:
            self.hook(self.steps)
            self.steps += 1
        return self.inner(batch)


def crash_after(objective, n):
    """Raises at training step ``n``, like a killed job."""

    def crash(step):
        if step >= n:
            raise Crash

    return EveryStep(objective, crash)


def test_resume_is_bit_exact(tmp_path):
    ds = JetDataset(synthetic_jets(64))
    train, val = Subset(ds, range(48)), Subset(ds, range(48, 64))
    cfg = TrainConfig(epochs=3, patience=0, **FAST)
    reference = _objective()
    fit(reference, train, val, cfg, tmp_path / "ref")

    crashing = crash_after(_objective(), n=3 + 2)  # 3 steps per epoch: dies inside the second epoch
    with pytest.raises(Crash):
        fit(crashing, train, val, cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "training" / "latest.json").read_text())["epoch"] == 0
    resumed = _objective(seed=123)  # other initial weights: everything must come from the checkpoint
    history = fit(resumed, train, val, cfg, tmp_path / "run", resume=True)
    assert [e["epoch"] for e in history.epochs] == [0, 1, 2]
    # the run's wall time counts the crashed process's epoch too
    assert history.wall_seconds == history.epochs[-1]["wall_seconds"] > history.epochs[0]["wall_seconds"] > 0
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    ref_last = load_weights(tmp_path / "ref" / "training" / "epoch-0002" / "ema.safetensors")
    run_last = load_weights(tmp_path / "run" / "training" / "epoch-0002" / "ema.safetensors")
    assert all(torch.equal(ref_last[k], run_last[k]) for k in ref_last)


@pytest.mark.parametrize("stream", [False, True])
def test_resume_part_way_through_an_epoch_is_bit_exact(small_dataset, tmp_path, stream):
    if stream:  # an hour-long epoch over streamed shards is what part-way states are for
        memory = JetDataset(read_jets(small_dataset))
        train, val = ShardedJetDataset(small_dataset, seed=1, normaliser=memory.normaliser), Subset(memory, range(16))
    else:
        ds = JetDataset(synthetic_jets(64))
        train, val = Subset(ds, range(48)), Subset(ds, range(48, 64))
    cfg = TrainConfig(epochs=2, patience=0, **FAST)  # 3 batches an epoch
    reference = _objective()
    ref_history = fit(reference, train, val, cfg, tmp_path / "ref")

    every_batch = dataclasses.replace(cfg, save_minutes=1e-9)
    crashing = crash_after(_objective(), n=3 + 2)  # dies at the third batch of the second epoch
    with pytest.raises(Crash):
        fit(crashing, train, val, every_batch, tmp_path / "run")
    latest = {"epoch": 1, "dir": "partial-0001-00000002"}  # epoch 1, two batches trained
    assert json.loads((tmp_path / "run" / "training" / "latest.json").read_text()) == latest
    assert [p.name for p in (tmp_path / "run" / "training").glob("partial*")] == [latest["dir"]]  # earlier removed
    resumed = _objective(seed=123)
    history = fit(resumed, train, val, cfg, tmp_path / "run", resume=True)  # save_minutes may change on resume
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [e["train_loss"] for e in history.epochs] == [e["train_loss"] for e in ref_history.epochs]
    assert not list((tmp_path / "run" / "training").glob("partial*"))


class SignalAt(torch.nn.Module):
    """Wraps an objective and sends this process SIGTERM in training step ``step`` or in validation batch
    ``val_batch`` (each counted from 0 over the whole run)."""

    def __init__(self, objective, step=None, val_batch=None):
        super().__init__()
        self.inner, self.model, self.at, self.seen = objective, objective.model, {True: step, False: val_batch}, {}

    def forward(self, batch):
        n = self.seen.get(self.training, 0)
        if self.at[self.training] == n:
            os.kill(os.getpid(), signal.SIGTERM)
        self.seen[self.training] = n + 1
        self.inner.model = self.model  # validation swaps in the EMA weights here
        return self.inner(batch)


@pytest.mark.parametrize(
    ("step", "val_batch", "where", "latest"),
    [
        (4, None, "2 batches into epoch 1", "partial-0001-00000002"),
        (None, 0, "while validating epoch 0", "partial-0000-00000003"),
        (None, 3, "after its last epoch 1", "epoch-0001"),  # the run is finished; its caller still stops
    ],
)
def test_a_signal_stops_training_where_resume_continues_bit_exact(tmp_path, step, val_batch, where, latest):
    ds = JetDataset(synthetic_jets(80))
    train, val = Subset(ds, range(48)), Subset(ds, range(48, 80))
    cfg = TrainConfig(epochs=2, patience=0, **FAST)  # 3 training, 2 validation batches an epoch; no periodic save
    reference = _objective()
    ref_history = fit(reference, train, val, cfg, tmp_path / "ref")

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped, match=f"stopped by SIGTERM {where}") as stopped:
        fit(SignalAt(_objective(), step, val_batch), train, val, cfg, tmp_path / "run")
    assert stopped.value.signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) is before
    assert json.loads((tmp_path / "run" / "training" / "latest.json").read_text())["dir"] == latest
    resumed = _objective(seed=123)
    history = fit(resumed, train, val, cfg, tmp_path / "run", resume=True)
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for key in ("train_loss", "val_loss"):
        assert [e[key] for e in history.epochs] == [e[key] for e in ref_history.epochs]


def test_dataloader_workers_leave_a_sigterm_to_training(tmp_path):
    # a batch system signals every process of the job: the workers must not die before training has saved
    ds = JetDataset(synthetic_jets(400))
    cfg = TrainConfig(epochs=2, patience=0, num_workers=2, **FAST)  # 20 batches an epoch, workers alive

    def everyone(step):
        if step == 1:
            workers = multiprocessing.active_children()
            assert workers
            # sent by another process, as a batch system's is (torch's workers exit on their parent's SIGTERM)
            subprocess.run(["kill", "-TERM", *(str(w.pid) for w in workers)], check=True)
            time.sleep(0.5)  # a worker that dies of it is reported to this process meanwhile
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Stopped, match="2 batches into epoch 0"):
        fit(EveryStep(_objective(), everyone), Subset(ds, range(320)), Subset(ds, range(320, 400)), cfg, tmp_path)


def test_sigterm_stops_the_pretrain_command_with_its_state_saved(small_dataset, tmp_path):
    out = tmp_path / "p"
    cmd = [sys.executable, "-m", "hepfm", "pretrain", "--data", str(small_dataset), "--out", str(out)]
    cmd += ["--epochs", "10000", "--patience", "0", "--batch-size", "8", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "HEPFM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (out / "training" / "latest.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"stopped: {out}: stopped by SIGTERM" in err and "--resume" in err
    assert (out / "training" / "latest.json").exists()


def test_resume_refuses_another_recipe_or_a_broken_state(tmp_path):
    ds = JetDataset(synthetic_jets(32))
    train, val = Subset(ds, range(24)), Subset(ds, range(24, 32))
    cfg = TrainConfig(epochs=1, patience=0, **FAST)
    with pytest.warns(UserWarning, match="no training state to resume from"):
        fit(_objective(), train, val, cfg, tmp_path / "run", resume=True)
    # more epochs would stretch the cosine schedule under the steps already taken
    with pytest.raises(CheckpointError, match=r"state.json: the run was started with another recipe \(epochs=1 -> 2\)"):
        fit(_objective(), train, val, TrainConfig(epochs=2, patience=0, **FAST), tmp_path / "run", resume=True)
    fit(_objective(), train, val, TrainConfig(epochs=1, patience=3, **FAST), tmp_path / "run", resume=True)
    (tmp_path / "run" / "training" / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="latest.json: not valid JSON"):
        fit(_objective(), train, val, cfg, tmp_path / "run", resume=True)
    (tmp_path / "run" / "training" / "latest.json").write_text(json.dumps({"epoch": 0, "dir": "epoch-0000"}))
    big = ClassifierObjective(PET(PETConfig.named("tiny", n_classes=2, generative=False, n_blocks=5)))
    with pytest.raises(CheckpointError, match="epoch-0000/model.safetensors: missing tensor"):
        fit(big, train, val, cfg, tmp_path / "run", resume=True)


@pytest.mark.parametrize("live", [False, True])
def test_progress_bar_redraws_rarely_in_a_log_file(tmp_path, capfd, monkeypatch, live):
    """Written to a file (a batch job's log), the bar redraws once a minute, not ten times a second."""
    if live:  # a notebook kernel: live redraws
        monkeypatch.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel", sys))
    else:
        monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    ds = JetDataset(synthetic_jets(96))
    cfg = TrainConfig(epochs=1, patience=0, **{**FAST, "progress": True})
    fit(
        EveryStep(_objective(), lambda _: time.sleep(0.15)),
        Subset(ds, range(80)),
        Subset(ds, range(80, 96)),
        cfg,
        tmp_path / "run",
    )
    draws = capfd.readouterr().err.count("epoch 0:")  # 5 steps of 0.15 s
    assert draws >= 5 if live else draws <= 3
    # nor does tqdm's monitor thread redraw it every 10 s in between
    with progress_bar(total=1, disable=False) as bar:
        assert bar.maxinterval == (10 if live else LOG_INTERVAL) and bar.mininterval == (0.1 if live else LOG_INTERVAL)


def test_early_stopping_and_history(tmp_path):
    ds = JetDataset(synthetic_jets(32))
    cfg = TrainConfig(epochs=30, patience=2, **{**FAST, "lr": 1e-30})  # no progress -> stops after patience
    history = fit(_objective(), Subset(ds, range(24)), Subset(ds, range(24, 32)), cfg, tmp_path)
    assert history.stopped_early and len(history.epochs) < 30
    assert all({"train_loss", "val_loss", "val_accuracy", "lr", "wall_seconds"} <= set(e) for e in history.epochs)
    assert len(list((tmp_path / "training").glob("epoch-*"))) == cfg.keep_epochs


def test_lion_and_adamw_learn(tmp_path):
    ds = JetDataset(synthetic_jets(96))
    for opt, lr in (("adamw", 2e-3), ("lion", 6e-4)):
        cfg = TrainConfig(epochs=6, patience=0, optimizer=opt, **{**FAST, "lr": lr})
        h = fit(_objective(), Subset(ds, range(64)), Subset(ds, range(64, 96)), cfg, tmp_path / opt)
        assert h.epochs[-1]["val_loss"] < h.epochs[0]["val_loss"], opt
        assert h.epochs[-1]["val_accuracy"] > 0.8, opt


def test_evaluation_batches_cover_everything_once_by_length():
    ds = JetDataset(synthetic_jets(90, seed=2))
    cfg = TrainConfig(batch_size=16)
    for world in (1, 2):
        seen = []
        for rank in range(world):
            for batch in data_loader(Subset(ds, range(10, 90)), cfg, 0, rank, world, shuffle=False):
                n = batch.mask.sum(1)
                assert n.max() - n.min() <= 14  # similar multiplicities (8-34 here; random batches: ~25)
                seen.extend(n.tolist())
        assert sorted(seen) == sorted(ds.lengths[10:90].tolist())


def test_bucket_batches_cover_everything_once_and_group_lengths():
    from hepfm.train.loop import BucketBatchSampler

    lengths = torch.randint(5, 100, (1000,))
    batches = list(BucketBatchSampler(lengths, 20, seed=1, epoch=0, bucket=10))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in map(torch.tensor, batches)])
    assert spread < 20  # vs ~90 for random batches
    assert batches != list(BucketBatchSampler(lengths, 20, seed=1, epoch=1, bucket=10))
    assert batches == list(BucketBatchSampler(lengths, 20, seed=1, epoch=0, bucket=10))
    ranks = [list(BucketBatchSampler(lengths, 20, seed=1, epoch=0, rank=r, world=2, bucket=10)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 25
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


def test_warmup_then_cosine():
    f = lr_schedule(TrainConfig(epochs=10, warmup_epochs=1, min_lr_ratio=0.1), steps_per_epoch=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0, abs=1e-3) and f(99) == pytest.approx(0.1, abs=1e-3)
    assert all(f(s) >= f(s + 1) for s in range(10, 99))


def test_roc_metrics_against_analytic_values():
    rng = np.random.default_rng(0)
    n = 200_000
    labels = np.r_[np.ones(n), np.zeros(n)]
    scores = np.r_[rng.normal(1, 1, n), rng.normal(0, 1, n)]
    # two unit Gaussians one sigma apart: AUC = Phi(1 / sqrt 2)
    assert roc_auc(labels, scores) == pytest.approx(0.7602499, abs=3e-3)
    # at eff_s = 0.5 the cut is at x = 1: eff_b = 1 - Phi(1) = 0.158655
    assert background_rejection(labels, scores, 0.5) == pytest.approx(1 / 0.158655, rel=0.02)
    # and rests on that fraction of the background, counted; the count agrees with the rejection
    passing = background_passing(labels, scores, 0.5)
    assert passing == pytest.approx(0.158655 * n, rel=0.02)
    assert n / passing == pytest.approx(background_rejection(labels, scores, 0.5), rel=1e-3)


def test_pretrain_then_finetune_and_scratch(tmp_path):
    train_cfg = TrainConfig(epochs=2, patience=0, **FAST)
    metrics = pretrain(synthetic_jets(64, seed=1), tmp_path / "pre", config="tiny", train=train_cfg)
    assert metrics["epochs_run"] == 2 and (tmp_path / "pre" / "model.safetensors").exists()
    assert {"val_ce", "val_ce_noised", "val_diffusion", "val_jet"} <= set(metrics["history"][0])
    train, test = synthetic_jets(64, seed=2), synthetic_jets(64, seed=3)
    ft = finetune(tmp_path / "pre", train, test, tmp_path / "ft", train=TrainConfig(epochs=3, patience=0, **FAST))
    sc = finetune(
        tmp_path / "pre",
        train,
        test,
        tmp_path / "sc",
        from_scratch=True,
        train=TrainConfig(epochs=3, patience=0, **FAST),
    )
    for m in (ft, sc):
        assert {"auc", "accuracy", "rej30", "rej50", "epochs_run", "wall_seconds"} <= set(m)
        assert 0 <= m["auc"] <= 1 and m["epochs_run"] == 3
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["auc"] == pytest.approx(ft["auc"])
    assert not ft["from_scratch"] and sc["from_scratch"]


def test_model_outputs_keep_the_input_order():
    ds = JetDataset(synthetic_jets(40, seed=5))
    assert len(set(ds.lengths.tolist())) > 5  # batches are formed by length, the result must not be
    model = _objective().model.eval()
    out = model_outputs(model, ds, batch_size=8, device="cpu")
    for i in (0, 7, 21, 39):
        batch = ds.collate([ds[i]])
        torch.testing.assert_close(
            torch.from_numpy(out[i]), model(batch.x, batch.mask)[0].detach(), atol=1e-5, rtol=1e-5
        )


def test_probe_head_is_the_penalised_logistic_regression_optimum():
    torch.manual_seed(0)
    model = PET(PETConfig.named("tiny", n_classes=2, generative=False))
    model.replace_head(2)
    sample = synthetic_jets(96, seed=4)
    sample.weights = np.random.default_rng(0).uniform(0.5, 2.0, len(sample))
    dataset, idx = JetDataset(sample), np.arange(0, 96, 2)
    probe_head(model, dataset, idx, device="cpu")
    batch = dataset.collate([dataset[int(i)] for i in idx])
    inputs = []  # what the head reads, caught on its way in
    hook = model.head.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach()))
    logits = model.eval()(batch.x, batch.mask)
    hook.remove()
    z, y, w = inputs[0].double(), batch.y, batch.weight.double()
    weight = model.head.weight.detach().double().requires_grad_(True)
    bias = model.head.bias.detach().double().requires_grad_(True)
    w = w / w.mean()
    ce = (w * torch.nn.functional.cross_entropy(z @ weight.T + bias, y, reduction="none")).mean()
    (ce + 0.5 / len(y) * (weight**2).sum()).backward()
    # stationary point of the convex objective (float32 storage of the head limits the precision)
    assert weight.grad.abs().max() < 1e-3 and bias.grad.abs().max() < 1e-3
    assert ce.item() < 0.5 * np.log(2)  # these classes are linearly separable even in random features
    # the model predicts with the probed head: its outputs are the logits of the fit
    assert torch.allclose(logits.double(), z @ weight.detach().T + bias.detach(), atol=1e-4)


def test_recipe_differences_name_what_changed():
    cfg = TrainConfig(epochs=2)
    metrics = {"train_config": dataclasses.asdict(cfg), "head_init": "probe", "from_scratch": False}
    assert recipe_differences(metrics, cfg, {"head_init": "probe"}) is None
    assert recipe_differences(metrics, cfg) == "head_init='probe' -> 'auto'"  # the default asked for
    changed = recipe_differences(
        metrics, dataclasses.replace(cfg, epochs=3), {"head_init": "probe", "from_scratch": True}
    )
    assert changed == "epochs=2 -> 3, from_scratch=False -> True"
    assert recipe_differences({}, cfg) is None  # a run that recorded nothing is taken as it is
    # "auto" probed where the checkpoint's classifier did not match the classes, and takes its rows where it does
    probed = {"train_config": dataclasses.asdict(cfg), "head_init": "auto", "head_start": "probe"}
    assert recipe_differences(probed, cfg, {}, {"pretrained_rows": None}) is None
    assert recipe_differences(probed, cfg, {}, {"pretrained_rows": [0, 8]}) == "head_start='probe' -> 'classes'"
    assert recipe_differences(probed, cfg, {"from_scratch": True}, {"pretrained_rows": [0, 8]}) is None


def test_freeze_backbone_changes_only_the_head(tmp_path):
    pretrain(synthetic_jets(32, seed=1), tmp_path / "pre", train=TrainConfig(epochs=1, patience=0, **FAST))
    before = load_weights(tmp_path / "pre" / "model.safetensors")
    finetune(
        tmp_path / "pre",
        synthetic_jets(48, seed=2),
        synthetic_jets(16, seed=3),
        tmp_path / "probe",
        freeze_backbone=True,
        train=TrainConfig(epochs=2, patience=0, ema_decay=0, **FAST),
    )
    after = load_weights(tmp_path / "probe" / "model.safetensors")
    for k, v in after.items():
        if k.startswith("head."):
            continue
        assert torch.equal(v, before[k]), k
    assert not torch.equal(after["head.weight"], before["head.weight"][: after["head.weight"].shape[0]])


def test_head_starts_from_the_pretrained_rows_of_aliased_classes(tmp_path):
    pre = synthetic_jets(32, seed=1)
    pre.class_names = ["QCD", "Tbqq", "Wqq", "Zqq"]  # the jets are of the first two; the head has four rows
    pretrain(pre, tmp_path / "pre", train=TrainConfig(epochs=1, patience=0, **FAST))
    pretrained = load_weights(tmp_path / "pre" / "model.safetensors")
    still = TrainConfig(epochs=1, patience=0, **{**FAST, "lr": 1e-12}, ema_decay=0.0)  # the head stays where it starts
    # by alias (generated and PFNano names), by name, in any order
    for names, rows in ((["qcd", "top"], [0, 1]), (["top", "QCD"], [1, 0]), (["Z", "W"], [3, 2])):
        sample = synthetic_jets(32, seed=2)
        sample.class_names = names
        out = tmp_path / "-".join(names)
        m = finetune(tmp_path / "pre", sample, sample, out, head_init="classes", freeze_backbone=True, train=still)
        assert m["head_start"] == "classes"
        head = load_weights(out / "model.safetensors")
        torch.testing.assert_close(head["head.weight"], pretrained["head.weight"][rows], atol=1e-6, rtol=0)
        torch.testing.assert_close(head["head.bias"], pretrained["head.bias"][rows], atol=1e-6, rtol=0)
    sample.class_names = ["quark", "gluon"]  # classes the checkpoint does not know: auto probes, classes refuses
    assert finetune(tmp_path / "pre", sample, sample, tmp_path / "qg", train=still)["head_start"] == "probe"
    with pytest.raises(OptionError, match=r"head_init.*does not know \['quark', 'gluon'\]"):
        finetune(tmp_path / "pre", sample, sample, tmp_path / "qg2", head_init="classes", train=still)
    sample.class_names = ["QCD", "qcd"]  # two classes that are the same pretrained class
    with pytest.raises(OptionError, match="one row for several"):
        finetune(tmp_path / "pre", sample, sample, tmp_path / "same", head_init="classes", train=still)


def test_finetune_refuses_mismatched_classes(tmp_path):

    pretrain(synthetic_jets(32, seed=1), tmp_path / "pre", train=TrainConfig(epochs=1, patience=0, **FAST))
    other = synthetic_jets(16)
    other.class_names = ["x", "y"]
    with pytest.raises(DataError, match="class names"):
        finetune(tmp_path / "pre", synthetic_jets(16), other, tmp_path / "ft")


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d"]
TORCHRUN += ["--rdzv-endpoint=localhost:0"]


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_ddp_on_two_cpu_processes(small_dataset, tmp_path, stream):
    # streamed: 6 shards of 8 jets, every 5th held out -> 5 training shards (3 and 2 per rank) and one
    # validation shard (rank 1 has none); the ranks must still step together and agree on the weights
    out = tmp_path / "ddp"
    cmd = [
        *TORCHRUN,
        "-m",
        "hepfm.cli",
        "pretrain",
        "--data",
        str(small_dataset),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--patience",
        "0",
        "--device",
        "cpu",
    ]
    if stream:
        cmd += ["--stream", "--val-fraction", "0.2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("best epoch") == 1  # the result line, from rank 0 alone
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs_run"] == 2
    assert np.isfinite(metrics["best_val_loss"])
    if stream:
        assert (metrics["n_train"], metrics["n_val"]) == (40, 8)
        return
    # fine-tuned, the generator of the pretrained model is a head no step uses: DDP must cope with it
    cmd = [*TORCHRUN, "-m", "hepfm.cli", "finetune", "--checkpoint", str(out), "--train", str(small_dataset)]
    cmd += ["--test", str(small_dataset), "--out", str(tmp_path / "ft"), "--epochs", "1", "--batch-size", "8"]
    result = subprocess.run([*cmd, "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("AUC") == 1
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["n_test"] == 48
    # each rank scored half the test jets; gathered back in order, they score as one process scores them all
    tuned = load_checkpoint(tmp_path / "ft")
    alone = classifier_metrics(
        tuned.read(small_dataset).labels,
        tuned.predict(small_dataset, device="cpu"),
        signal=metrics["class_names"].index(metrics["signal"]),
    )
    assert metrics["auc"] == pytest.approx(alone["auc"], abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(alone["accuracy"], abs=1e-9)


@pytest.mark.slow
def test_a_signal_to_one_ddp_rank_stops_both_where_resume_continues_bit_exact(tmp_path):
    script = Path(__file__).with_name("ddp_fit.py")

    def run(out, *args):
        result = subprocess.run([*TORCHRUN, str(script), str(out), *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return [json.loads((out / f"result-{rank}.json").read_text()) for rank in (0, 1)]

    # the reference saves a part-way state after every step; the others at epoch ends and on the signal only
    reference = run(tmp_path / "ref", "-1", "0", "1e-9")
    assert not list((tmp_path / "ref" / "training").glob("partial*"))  # each removed once its epoch was saved
    # rank 1 alone gets SIGTERM in its 6th step (the 2nd of epoch 1); rank 0 learns of it after that step
    for stopped in run(tmp_path / "run", "5", "1", "0"):
        assert stopped["signum"] == signal.SIGTERM
        assert "stopped by SIGTERM 2 batches into epoch 1" in stopped["stopped"]
    latest = json.loads((tmp_path / "run" / "training" / "latest.json").read_text())
    assert latest["dir"] == "partial-0001-00000002"
    alone = [sys.executable, str(script), str(tmp_path / "run"), "-1", "0", "0", "resume"]
    alone = subprocess.run(alone, capture_output=True, text=True, timeout=300, env={**os.environ, "RANK": "0"})
    assert "part-way through an epoch trained by 2 process(es); resume it with as many (this run has 1)" in alone.stderr
    # every rank ends as it would have: the same weights and the same history (losses over both ranks)
    assert run(tmp_path / "run", "-1", "0", "0", "resume") == reference
    assert reference[0] == reference[1]


def test_streamed_pretraining_holds_out_whole_shards(small_dataset, tmp_path):
    metrics = pretrain(
        small_dataset, tmp_path / "s", stream=True, val_fraction=0.3, train=TrainConfig(epochs=1, patience=0, **FAST)
    )
    # 6 shards of 8 jets: every 3rd shard is validation
    assert (metrics["n_train"], metrics["n_val"]) == (32, 16)
    assert np.isfinite(metrics["best_val_loss"])


def test_streamed_pretraining_of_an_unfinished_production(small_dataset, tmp_path):
    import shutil

    from hepfm.data.normaliser import FeatureNormaliser
    from hepfm.train import load_checkpoint

    data = shutil.copytree(small_dataset, tmp_path / "jets")
    manifest = json.loads((data / "dataset.json").read_text())
    finished = manifest.pop("normalisation")  # as while the production runs
    (data / "dataset.json").write_text(json.dumps({**manifest, "complete": False}))
    for last in ("Tbqq-00002.parquet", "QCD-00002.parquet"):  # the third shard of each class not yet written
        (data / "shards" / last).unlink()
    with pytest.raises(DataError, match="--allow-incomplete"):
        pretrain(data, tmp_path / "refused", stream=True, train=TrainConfig(epochs=1, **FAST))
    metrics = pretrain(
        data, tmp_path / "s", stream=True, val_fraction=0.25, allow_incomplete=True, train=TrainConfig(epochs=1, **FAST)
    )
    assert (metrics["n_train"], metrics["n_val"]) == (24, 8)
    used = load_checkpoint(tmp_path / "s").normaliser.to_dict()
    assert used == FeatureNormaliser.of_production(data, allow_incomplete=True).to_dict()
    assert used["particle_mean"] != finished["particle_mean"]  # fitted on the shards written, not all six


def test_cli_pretrain_and_finetune(small_dataset, tmp_path):
    from typer.testing import CliRunner

    from hepfm.cli import app

    runner = CliRunner()
    r = runner.invoke(
        app,
        ["pretrain", "--data", str(small_dataset), "--out", str(tmp_path / "p"), "--epochs", "1", "--batch-size", "16"],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "finetune",
            "--checkpoint",
            str(tmp_path / "p"),
            "--train",
            str(small_dataset),
            "--test",
            str(small_dataset),
            "--out",
            str(tmp_path / "f"),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--seed",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "AUC" in r.output and (tmp_path / "f" / "metrics.json").exists()
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    # the pretrained model knows these classes: its classifier's rows start the new head
    assert metrics["head_init"] == "auto" and metrics["head_start"] == "classes"
    # bad input: a message naming the file and status 2, not a traceback
    r = runner.invoke(
        app,
        [
            "finetune",
            "--checkpoint",
            str(tmp_path / "no-ckpt"),
            "--train",
            str(small_dataset),
            "--test",
            str(small_dataset),
            "--out",
            str(tmp_path / "g"),
        ],
    )
    assert r.exit_code == 2 and "no-ckpt: checkpoint directory not found" in r.output
    r = runner.invoke(
        app,
        [
            "finetune",
            "--checkpoint",
            str(tmp_path / "p"),
            "--train",
            str(tmp_path / "none.h5"),
            "--test",
            str(small_dataset),
            "--out",
            str(tmp_path / "g"),
        ],
    )
    assert r.exit_code == 2 and "none.h5" in r.output
    r = runner.invoke(app, ["pretrain", "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "q")])
    assert r.exit_code == 2 and "none.h5" in r.output


@pytest.mark.slow
def test_cli_scan_in_parallel_processes(small_dataset, tmp_path):
    from typer.testing import CliRunner

    from hepfm.cli import app

    runner = CliRunner()
    r = runner.invoke(
        app,
        ["pretrain", "--data", str(small_dataset), "--out", str(tmp_path / "p"), "--epochs", "1", "--batch-size", "16"],
    )
    assert r.exit_code == 0, r.output
    args = [
        "scan",
        "--checkpoint",
        str(tmp_path / "p"),
        "--train",
        str(small_dataset),
        "--test",
        str(small_dataset),
        "--sizes",
        "20,40",
        "--seeds",
        "0,1",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
    ]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "s"), "--parallel-runs", "3"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert {(m["mode"], m["size"], m["seed"]) for m in metrics["runs"]} == {
        (m, n, s) for m in ("pretrained", "scratch") for n in (20, 40) for s in (0, 1)
    }
    assert all(m["n_train"] + m["n_val"] == m["size"] and m["epochs_run"] == 2 for m in metrics["runs"])
    assert metrics["summary"]["pretrained"]["40"]["n_seeds"] == 2
    assert (tmp_path / "s" / "scan.png").exists() and (tmp_path / "s" / "convergence.png").exists()
    assert "| scratch | 40 |" in r.output and "median epoch ratio" in r.output
    # the same runs trained one after the other draw the same subsets and train alike
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "serial")])
    assert r.exit_code == 0, r.output
    serial = {
        (m["mode"], m["size"], m["seed"]): m
        for m in json.loads((tmp_path / "serial" / "metrics.json").read_text())["runs"]
    }
    for m in metrics["runs"]:
        twin = serial[(m["mode"], m["size"], m["seed"])]
        assert m["n_train"] == twin["n_train"] and m["auc"] == pytest.approx(twin["auc"], abs=0.05)


def test_pretrain_can_continue_from_a_checkpoint_in_its_label_space(tmp_path):
    from hepfm.train.checkpoint import load_checkpoint

    base = synthetic_jets(64, seed=1)  # classes as built by synthetic_jets
    pretrain(base, tmp_path / "pre", config="tiny", train=TrainConfig(epochs=1, patience=0, **FAST))
    # a sample holding only the second class, under its own one-class label list
    only = base[base.labels == 1]
    only.labels, only.class_names = np.zeros(len(only), dtype=np.int64), [base.class_names[1]]
    # with a vanishing learning rate, the continued run keeps the checkpoint's weights; scratch does not
    frozen = TrainConfig(epochs=1, patience=0, ema_decay=0, **{**FAST, "lr": 1e-30})
    pretrain(only, tmp_path / "tuned", init=tmp_path / "pre", train=frozen)
    pretrain(
        only,
        tmp_path / "scratch",
        init=tmp_path / "pre",
        init_weights=False,
        train=TrainConfig(epochs=1, patience=0, seed=1, ema_decay=0, **{**FAST, "lr": 1e-30}),
    )
    for run in ("tuned", "scratch"):
        ckpt = load_checkpoint(tmp_path / run)
        assert ckpt.class_names == base.class_names and ckpt.model().config.n_classes == 2
    pre, tuned, scratch = (load_weights(tmp_path / r / "model.safetensors") for r in ("pre", "tuned", "scratch"))
    assert all(torch.allclose(tuned[k], pre[k], rtol=0, atol=1e-20) for k in pre)  # steps of ~lr from zero
    assert not all(torch.equal(scratch[k], pre[k]) for k in pre)
    cfg = TrainConfig(epochs=1, patience=0, **FAST)
    bad = base[:4]
    bad.class_names = ["nope", "never"]
    with pytest.raises(DataError, match="not among the classes"):
        pretrain(bad, tmp_path / "bad", init=tmp_path / "pre", train=cfg)


def test_freed_tensor_memory_goes_back_to_the_system():
    # a heap left fragmented by freed tensors (every 16th kept) is what a scan of runs in one kernel leaves behind;
    # fit trims it after every epoch (Binder's 2 GB)
    code = """
import os, torch
from hepfm.core.memory import release_freed_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
keep, freed = [], []
for i in range(6000):
    (keep if i % 16 == 0 else freed).append(torch.empty(8192))
del freed
before = rss()
assert release_freed_memory()
print((before - rss()) / 2**20)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert float(out) > 8  # MB handed back (about 20 on glibc)
