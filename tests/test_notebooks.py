"""Every notebook runs through the runner at the smoke profile; recorded values are checked."""

from __future__ import annotations

import json
import struct

import nbformat
import numpy as np
import papermill
import pytest

from hepfm.core.errors import OptionError
from hepfm.core.memory import available_memory
from hepfm.runner import NOTEBOOK_DIR, list_notebooks, load_profile, notebook_profiles, run_notebooks, suite_jobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    results = run_notebooks("smoke", out)
    return out, {r.name: r for r in results}


def test_notebooks_are_stripped_and_parameterised():
    for path in list_notebooks():
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        names = []
        for line in code[0].source.splitlines():
            assert " = " in line and "  # " in line, f"{path.name}: parameter line without help: {line!r}"
            names.append(line.split(" = ")[0])
        # papermill must understand every line, or a profile's value for it would be silently ignored
        assert list(papermill.inspect_notebook(str(path))) == names, path.name


def test_every_profile_names_only_existing_notebooks():
    names = {p.stem for p in list_notebooks()}
    assert set(notebook_profiles()) == {"smoke", "demo", "cpu", "gpu-check", "gpu"}
    for profile in notebook_profiles():
        # a misspelt parameter would be ignored by papermill: every one must be a notebook's parameter
        for notebook, params in load_profile(profile).items():
            unknown = set(params) - set(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{notebook}.ipynb")))
            assert not unknown, (profile, notebook, unknown)
            # a chained value reads an earlier notebook's output, which runs before it
            for value in params.values():
                if isinstance(value, str) and value.startswith("{out}/"):
                    source = value.split("/")[1]
                    assert source in names and source < notebook, (profile, notebook, value)
        assert set(load_profile(profile)) <= names, profile
        assert set(load_profile(profile)) == names, f"{profile} lacks parameters for some notebook"


def test_all_notebooks_run_at_smoke(smoke_run):
    out, results = smoke_run
    assert set(results) == {p.stem for p in list_notebooks()}
    failed = {name: r.error[-2000:] for name, r in results.items() if not r.ok}
    assert not failed, failed
    index = (out / "index.md").read_text()
    for name in results:
        assert f"[{name}]({name}/{name}.ipynb)" in index
        # each notebook's one-line result heads its section of the index
        headline = json.loads((out / name / "metrics.json").read_text())["headline"]
        assert len(headline) > 40 and f"**{headline}**" in index, name


def _png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG file, read from its header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    return struct.unpack(">II", header[16:24])


def test_data_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "00_data" / "metrics.json").read_text())
    assert metrics["n_jets"] == 3 * 80 and metrics["class_names"] == ["QCD", "Wqq", "Tbqq"]
    assert metrics["detector"] == "cms" and metrics["all_mass_ok"] and metrics["all_multiplicity_ok"]
    classes = metrics["classes"]
    assert {name: c["n_jets"] for name, c in classes.items()} == {"QCD": 80, "Wqq": 80, "Tbqq": 80}
    # generated medians (smoke: Tbqq 171.5, Wqq 83.9, QCD 63.1 GeV) near the real resonances
    assert classes["Tbqq"]["mass_window"] == [160.0, 185.0] and 165 < classes["Tbqq"]["mass"] < 178
    assert classes["Wqq"]["mass_window"] == [75.0, 90.0] and 78 < classes["Wqq"]["mass"] < 88
    assert "mass_window" not in classes["QCD"] and 40 < classes["QCD"]["mass"] < 90
    # three-prong top jets have far more constituents than two-prong W or QCD jets (smoke: 46, 30, 29)
    assert classes["Tbqq"]["n_particles"] > classes["Wqq"]["n_particles"] + 10
    # the real JetClass reference is a fixed file: its medians are exact
    assert classes["Tbqq"]["ref_mass"] == pytest.approx(170.307, abs=0.01)
    assert {name: c["ref_n_particles"] for name, c in classes.items()} == {"QCD": 32.5, "Wqq": 31.0, "Tbqq": 51.0}
    for name, c in classes.items():
        assert 0.8 < c["multiplicity_ratio"] < 1.1, name  # smoke: 0.89, 0.97, 0.90
        assert 500 < c["pt"] < 650, name
    for figure in ("jet_mass", "jet_n_particles", "jet_pt"):
        assert _png_size(out / "00_data" / f"{figure}.png") == (1890, 342)  # one row of five panels at 90 dpi


def test_pretrain_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "01_pretrain_jets" / "metrics.json").read_text())
    assert metrics["checkpoint"].endswith("/01_pretrain_jets/checkpoint")
    assert metrics["model_config"]["n_classes"] == 10 and metrics["model_config"]["dim"] == 64  # tiny PET
    assert metrics["n_eval"] == 10 * 10 and len(metrics["auc_per_class"]) == 10
    confusion = np.array(metrics["confusion"])
    assert confusion.shape == (10, 10) and np.allclose(confusion.sum(1), 1.0)
    pre = metrics["pretraining"]
    assert pre["epochs_run"] == 1 and pre["n_train"] == 108 and pre["n_val"] == 12
    assert pre["n_parameters"] == 284124 and "history" not in pre
    # one epoch on 120 jets: near chance (smoke: accuracy 0.10, mean AUC 0.509, best val loss 5.74)
    assert 4.5 < pre["best_val_loss"] < 6.5
    assert 0.4 < metrics["mean_auc"] < 0.65 and 0.0 < metrics["accuracy"] < 0.3
    width, height = _png_size(out / "01_pretrain_jets" / "confusion.png")
    assert height == 720 and 810 <= width <= 900  # 9 x 8 in at 90 dpi, widened for the colour bar
    assert _png_size(out / "01_pretrain_jets" / "training_curves.png") == (630, 495)


@pytest.mark.parametrize("name", ["02_finetune_top", "03_finetune_qg"])
def test_finetune_notebook_metrics(smoke_run, name):
    out, _ = smoke_run
    metrics = json.loads((out / name / "metrics.json").read_text())
    assert metrics["sizes"] == [30, 60] and metrics["seeds"] == [0]
    assert metrics["checkpoint"].endswith("pet-tiny-jetclass")
    assert set(metrics["summary"]) == {"pretrained", "scratch"}
    runs = metrics["runs"]
    assert sorted((r["mode"], r["size"]) for r in runs) == [
        ("pretrained", 30),
        ("pretrained", 60),
        ("scratch", 30),
        ("scratch", 60),
    ]
    for r in runs:
        assert "history" not in r and r["epochs_run"] == 2 and r["n_test"] == 60
        assert r["n_train"] + r["n_val"] == r["size"]
    summary, targets = metrics["summary"], metrics["targets"]
    assert targets["scratch_auc_at_10x"] is None  # 60 is not ten times 30
    assert targets["pretrained_auc_at_smallest"] == summary["pretrained"]["30"]["auc"][0]
    # two epochs from random weights still call every jet one class; the fine-tuned backbone does not
    for size in ("30", "60"):
        assert summary["scratch"][size]["accuracy"][0] == 0.5
        assert summary["pretrained"][size]["accuracy"][0] > 0.7
    assert metrics["convergence"]["30"]["reached"] == 1 and targets["epoch_ratio_at_smallest"] <= 1.0
    if name == "02_finetune_top":
        # the pretrained classifier's QCD and Tbqq rows start the head (the classes are called qcd and top)
        assert {r["head_start"] for r in runs if r["mode"] == "pretrained"} == {"classes"}
        # top tagging is easy: smoke AUCs 1.000 (fine-tuned) and 0.992 (scratch) at 30 jets
        assert targets["pretrained_auc_at_smallest"] > 0.95 and targets["scratch_auc_at_smallest"] > 0.9
        assert summary["pretrained"]["30"]["rej30"][0] == 30.0 and summary["pretrained"]["30"]["rej30_lower_bound"]
    else:
        # quark/gluon is hard: the backbone is worth ~0.13 AUC (smoke: 0.830 vs 0.696 at 30 jets)
        assert 0.75 < targets["pretrained_auc_at_smallest"] < 0.9
        for size in ("30", "60"):
            assert summary["pretrained"][size]["auc"][0] > summary["scratch"][size]["auc"][0] + 0.08
        folds = metrics["real_two_fold"]
        assert set(folds) == {"pretrained", "scratch"}
        # smoke on 400 real jets: fine-tuned 0.847, 0.798; scratch 0.800, 0.721
        assert all(0.75 < a < 0.9 for a in folds["pretrained"]["auc_per_fold"])
        assert folds["pretrained"]["mean_auc"] > folds["scratch"]["mean_auc"] + 0.03
        assert folds["pretrained"]["mean_auc"] == pytest.approx(np.mean(folds["pretrained"]["auc_per_fold"]))
    assert _png_size(out / name / "scan.png") == (1800, 522)  # three panels, 20 x 5.8 in at 90 dpi
    assert _png_size(out / name / "convergence.png") == (1170, 495)


def test_event_pretrain_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "04_pretrain_events" / "metrics.json").read_text())
    assert metrics["n_eval"] == 12 * 15
    pre = metrics["pretraining"]
    assert {m["epochs_run"] for m in pre.values()} == {2} and {m["n_train"] for m in pre.values()} == {324}
    assert pre["multiclass"]["n_parameters"] == 68876 and pre["multilabel"]["n_parameters"] == 68909  # tiny
    assert all("history" not in m for m in pre.values())
    assert metrics["checkpoints"]["multiclass"].endswith("/04_pretrain_events/checkpoint-multiclass")
    multiclass = metrics["multiclass"]
    assert len(multiclass["auc_per_class"]) == 12 and np.allclose(np.sum(multiclass["confusion"], 1), 1.0)
    # two epochs on 30 events per process (smoke: mean AUC 0.588; ttH, with the most jets, the best at 0.858)
    assert 0.5 < multiclass["mean_auc"] < 0.7
    assert max(multiclass["auc_per_class"], key=multiclass["auc_per_class"].get) == "ttH"
    truth = metrics["multilabel"]
    assert set(truth["auc_per_label"]) == {"top", "W", "Z", "H", "bottom", "lepton", "neutrino", "photon"}
    # the hard-process truth of the fresh events: top in ttH, ttbar, singletop; H in the five Higgs processes
    assert truth["truth_fraction"]["top"] == pytest.approx(3 / 12)
    assert truth["truth_fraction"]["H"] == pytest.approx(5 / 12)
    assert 0.55 < truth["label_accuracy"] < 0.8 and truth["target_correlation"]["top_pt"] > 0.2
    # physics of the generated events: ttH (4 b quarks + W decays) has far more jets and b-tags than WZ or Z+jet
    mult = metrics["multiplicities"]
    assert mult["ttH"]["jets"] > mult["WZ"]["jets"] + 1.5 and mult["ttH"]["btag"] > mult["Zjets"]["btag"] + 0.8
    assert mult["Zjets"]["leptons"] < mult["WZ"]["leptons"]  # smoke: 0.0 against 0.47
    nano = metrics["nanoaod"]
    assert nano["file"].endswith("cms_opendata_2015_ttbar_nanoaod.root") and nano["n_events"] == 200
    assert sum(nano["fraction_called"].values()) == pytest.approx(1.0)
    assert sum(nano["mean_probability"].values()) == pytest.approx(1.0, abs=1e-5)
    file_truth = nano["multilabel"]["truth_fraction"]
    # the file's generator record: W -> l nu in every event, no top quark
    assert file_truth["W"] > 0.95 and file_truth["top"] == 0 and file_truth["lepton"] == file_truth["neutrino"] == 1.0
    assert set(nano["multilabel"]["mean_predicted"]) == set(file_truth)
    figures = out / "04_pretrain_events"
    assert _png_size(figures / "objects.png") == (1890, 540)  # three panels, 21 x 6 in at 90 dpi
    assert _png_size(figures / "truth_labels.png") == (810, 495)
    assert _png_size(figures / "nanoaod.png") == (1710, 522)
    for task in ("multiclass", "multilabel"):
        assert _png_size(figures / f"training_{task}.png") == (630, 495)
    width, height = _png_size(figures / "confusion.png")
    assert height == 810 and 900 <= width <= 1000  # 10 x 9 in at 90 dpi, widened for the colour bar


def test_event_finetune_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "05_finetune_events" / "metrics.json").read_text())
    variants = {"multiclass", "multilabel", "scratch", "frozen"}
    assert set(metrics["tasks"]) == {"ttH_vs_ttbar", "H2_vs_ZZ"}
    assert metrics["tasks"]["H2_vs_ZZ"]["unseen"] and not metrics["tasks"]["ttH_vs_ttbar"]["unseen"]
    assert set(metrics["variants"]) == variants and metrics["sizes"] == [30, 60] and metrics["seeds"] == [0]
    for task in metrics["tasks"].values():
        runs = task["runs"]
        assert sorted((r["mode"], r["size"]) for r in runs) == sorted((m, n) for m in variants for n in (30, 60))
        for r in runs:
            assert r["n_train"] + r["n_val"] == r["size"] and r["n_test"] == 2 * 30 and r["epochs_run"] == 2
            assert r["signal"] == r["class_names"][1]
        assert set(task["summary"]) == variants and all(set(s) == {"30", "60"} for s in task["summary"].values())
    # every pretrained start beats the network trained from scratch at 30 labelled events, in both tasks
    for task, row in metrics["auc_at_smallest"].items():
        assert min(row["multiclass"], row["multilabel"], row["frozen"]) > row["scratch"] + 0.03, task
    assert metrics["auc_at_smallest"]["H2_vs_ZZ"]["multiclass"] > 0.75
    # time to target: the pretrained starts reach it in their first epoch, scratch needs its second
    for task, eff in metrics["efficiency"].items():
        assert 0.4 < eff["target_accuracy"] < 1, task
        for mode in variants:
            assert eff[mode]["reached"] == eff[mode]["of"] == 1 and eff[mode]["median_seconds"] > 0, (task, mode)
            assert eff[mode]["median_epochs"] == (2.0 if mode == "scratch" else 1.0), (task, mode)
    # each pretrained start pays for its own pretraining (the shipped checkpoint's): the arithmetic of the totals
    pretraining = metrics["pretraining_seconds"]
    assert set(pretraining) == variants - {"scratch"}
    for mode, seconds in pretraining.items():
        task = "multilabel" if mode == "multilabel" else "multiclass"
        shipped = NOTEBOOK_DIR.parent / "checkpoints" / f"event-gnn-{task}" / "metrics.json"
        assert seconds == json.loads(shipped.read_text())["wall_seconds"] > 100, mode
    totals, amortised = metrics["total_seconds_to_target"], metrics["total_seconds_with_pretraining"]
    assert set(totals) == set(amortised) == variants
    for mode, seconds in totals.items():
        assert seconds == pytest.approx(sum(e[mode]["median_seconds"] for e in metrics["efficiency"].values()))
        assert amortised[mode] == pytest.approx(seconds + pretraining.get(mode, 0.0))
    for figure in ("scan_H2_vs_ZZ", "scan_ttH_vs_ttbar", "convergence_ttH_vs_ttbar", "tasks", "amortisation"):
        assert (out / "05_finetune_events" / f"{figure}.png").stat().st_size > 20_000, figure


def test_generation_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "06_generation" / "metrics.json").read_text())
    assert set(metrics["scores"]) == set(metrics["two_sample_auc"]) == {"pretrained", "finetuned", "scratch"}
    assert metrics["n_eval"] == 2 * 20 and metrics["n_train"] == 54  # 2 x 30 jets, 10 % held out for validation
    assert metrics["classes"] == ["Tbqq", "QCD"] and metrics["steps"] == 3 and metrics["guidance"] == 0.5
    for name, s in metrics["scores"].items():
        assert set(s["w1p"]) == {"deta", "dphi", "log_pt_rel"} and len(s["w1efp"]) == 5
        assert s["w1p_mean"] == pytest.approx(np.mean(list(s["w1p"].values())), rel=1e-12)
        assert s["w1efp_mean"] == pytest.approx(np.mean(s["w1efp"]), rel=1e-12)
        assert s["w1m"] > 0 and all(v > 0 for v in s["w1efp"]), name
        # three sampler steps make jets a classifier tells from real ones at once
        assert 0.9 <= metrics["two_sample_auc"][name] <= 1, name
    pre, fine, scratch = (metrics["scores"][n] for n in ("pretrained", "finetuned", "scratch"))
    # the pretrained generator makes jets far closer to real ones than one trained from scratch for one epoch
    assert 50 < pre["w1m"] < 0.5 * scratch["w1m"]
    assert pre["w1p_mean"] < 0.5 * scratch["w1p_mean"] and pre["w1efp_mean"] < 0.01 * scratch["w1efp_mean"]
    # one epoch of fine-tuning moves the pretrained generator little
    assert fine["w1m"] == pytest.approx(pre["w1m"], rel=0.1)
    assert fine["w1efp_mean"] == pytest.approx(pre["w1efp_mean"], rel=0.1)
    for figure in ("jet_mass", "w1"):
        assert (out / "06_generation" / f"{figure}.png").stat().st_size > 20_000, figure


def test_cka_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "09_cka" / "metrics.json").read_text())
    layers = {
        "jets": ["embed", "local.0", "local.1", *(f"blocks.{i}" for i in range(4)), "class_blocks.0"],
        "events": ["global_encoder", *(f"blocks.{i}" for i in range(4)), "decoder"],
    }
    pair_names = {"fine-tuned vs scratch", "scratch vs scratch (seeds 0, 1)", "pretrained vs fine-tuned"}
    assert metrics["n_probe_batches"] == {"jets": 2, "events": 2}  # 2 x 20 examples in batches of 20
    assert metrics["events"]["task"] == "ttH_vs_ttbar"
    for model in ("jets", "events"):
        m = metrics[model]
        assert m["layers"] == layers[model]
        pairs = {k: v for k, v in m.items() if isinstance(v, dict) and "mean_diagonal" in v}
        assert set(pairs) == set(m["grids"]) == pair_names
        for name, entry in pairs.items():
            grid = np.array(m["grids"][name])
            assert grid.shape == (len(layers[model]),) * 2
            assert (grid >= -0.1).all() and (grid <= 1 + 1e-6).all()
            assert set(entry["diagonal"]) == set(layers[model])
            assert entry["mean_diagonal"] == pytest.approx(np.diag(grid).mean(), abs=1e-12)
        # a short fine-tuning at lr / 10 barely moves the backbone: every layer keeps its representation
        assert min(pairs["pretrained vs fine-tuned"]["diagonal"].values()) > 0.999
        # training from scratch ends elsewhere, least so in the input embedding
        scratch = pairs["fine-tuned vs scratch"]
        assert scratch["mean_diagonal"] < 0.9
        assert max(scratch["diagonal"], key=scratch["diagonal"].get) == layers[model][0]
        assert (out / "09_cka" / f"cka_{model}.png").stat().st_size > 50_000


_RECORD = (
    "import json, os, pathlib\n"
    "metrics = {'x': x, 'omp': os.environ.get('OMP_NUM_THREADS'), 'headline': f'x is {x}'}\n"
    "pathlib.Path(output_dir, 'metrics.json').write_text(json.dumps(metrics))"
)


@pytest.mark.parametrize("jobs", [1, 2])
def test_runner_carries_on_past_a_failing_notebook(tmp_path, jobs, capfd, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    nbdir = tmp_path / "nbs"
    (nbdir / "params").mkdir(parents=True)
    for name, body in (("00_bad", "raise RuntimeError('boom')"), ("01_good", _RECORD), ("02_good", _RECORD)):
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell("output_dir = ''  # out\nx = 1  # a number", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body),
        ]
        nbformat.write(nb, nbdir / f"{name}.ipynb")
    (nbdir / "params" / "smoke.yaml").write_text("01_good:\n  x: 5\n")
    results = run_notebooks("smoke", tmp_path / "out", notebook_dir=nbdir, jobs=jobs)
    assert [(r.name, r.ok) for r in results] == [("00_bad", False), ("01_good", True), ("02_good", True)]
    # two at a time, each kernel gets its share of the (two) cores; one at a time, the kernel keeps them all
    omp = "1" if jobs == 2 else None
    for name, x in (("01_good", 5), ("02_good", 1)):
        metrics = json.loads((tmp_path / "out" / name / "metrics.json").read_text())
        assert metrics == {"x": x, "omp": omp, "headline": f"x is {x}"}
    captured = capfd.readouterr()
    printed = captured.out
    assert "[3/3 done]" in printed and "0 to go" in printed and "FAILED 00_bad" in printed
    assert "IPKernelApp" not in captured.err  # the kernels' start-up notices stay out of the progress lines
    index = (tmp_path / "out" / "index.md").read_text()
    assert "**FAILED**" in index and "boom" in index
    # one page: every notebook's metrics (and figures) below the table
    assert "## 01_good" in index and "- `x`: 5" in index
    # each notebook's headline in the table and at the head of its section, not again among the metrics
    assert "| x is 5 |" in index and "**x is 5**" in index and "`headline`" not in index


def test_a_profile_chains_notebooks_through_its_output_directory(tmp_path, capfd):
    """{out} in a profile value names the run's output directory: 01 reads what 00 of the same run made."""
    nbdir = tmp_path / "nbs"
    (nbdir / "params").mkdir(parents=True)
    make = "import pathlib\npathlib.Path(output_dir, 'made.txt').write_text('from 00')"
    read = "import pathlib\npathlib.Path(output_dir, 'read.txt').write_text(pathlib.Path(source).read_text())"
    for name, body in (("00_make", make), ("01_read", read)):
        nb = nbformat.v4.new_notebook()
        parameters = "output_dir = ''  # out\nsource = ''  # a file"
        nb.cells = [
            nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body),
        ]
        nbformat.write(nb, nbdir / f"{name}.ipynb")
    (nbdir / "params" / "smoke.yaml").write_text('01_read:\n  source: "{out}/00_make/made.txt"\n')
    with pytest.raises(OptionError, match="jobs: profile 'smoke' chains notebooks"):
        run_notebooks("smoke", tmp_path / "out", notebook_dir=nbdir, jobs=2)
    results = run_notebooks("smoke", tmp_path / "out", notebook_dir=nbdir)
    assert [r.ok for r in results] == [True, True], [r.error for r in results]
    assert (tmp_path / "out" / "01_read" / "read.txt").read_text() == "from 00"
    assert "one at a time: the profile chains them" in capfd.readouterr().out


def test_two_notebooks_at_once_only_where_cores_and_memory_allow(monkeypatch):
    monkeypatch.setattr("hepfm.runner.available_cores", lambda: 2)
    monkeypatch.setattr("hepfm.runner.available_memory", lambda: 20 * 2**30)
    assert suite_jobs(11) == 2 and suite_jobs(1) == 1
    monkeypatch.setattr("hepfm.runner.available_memory", lambda: 2 * 2**30)  # Binder
    assert suite_jobs(11) == 1
    monkeypatch.setattr("hepfm.runner.available_memory", lambda: 20 * 2**30)
    monkeypatch.setattr("hepfm.runner.available_cores", lambda: 1)
    assert suite_jobs(11) == 1
    with pytest.raises(OptionError, match="jobs: must be a positive integer"):
        run_notebooks("smoke", jobs=0)


def test_available_memory_honours_the_cgroup_limit(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 24000000 kB\nMemAvailable: 20000000 kB\n")
    assert available_memory(tmp_path) == 20000000 * 1024
    cgroup = tmp_path / "sys" / "fs" / "cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "memory.max").write_text("max\n")
    assert available_memory(tmp_path) == 20000000 * 1024
    (cgroup / "memory.max").write_text(f"{2 * 2**30}\n")
    (cgroup / "memory.current").write_text(f"{2**29}\n")
    assert available_memory(tmp_path) == 2 * 2**30 - 2**29


def test_unknown_profile_and_notebook(tmp_path):
    with pytest.raises(OptionError, match="profile: unknown profile 'huge'"):
        run_notebooks("huge", tmp_path)
    with pytest.raises(OptionError, match="only: no notebook matches"):
        run_notebooks("smoke", tmp_path, only=["99_nothing"])
    assert NOTEBOOK_DIR.is_dir()


def test_weak_supervision_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "08_weak_supervision" / "metrics.json").read_text())
    runs = metrics["runs"]
    assert [(r["method"], r["n_inject"], r["seed"]) for r in runs] == [
        ("pretrained", 60, 0),
        ("scratch", 60, 0),
        ("IAD", 60, 0),
    ]
    # the samples follow from the generation seeds alone: 800 QCD and 240 W' events at smoke
    assert metrics["n_data_background"] == 275 and metrics["n_reference"] == 45
    assert metrics["n_test"] == {"background": 39, "signal": 79}
    assert all((r["signal_in_sr"], r["background_in_sr"]) == (43, 94) for r in runs)
    assert metrics["s_over_b_signal_region"]["60"] == pytest.approx(43 / 94)
    # every signal event kept at the smallest eps_B the 39 test background events allow (25 of them)
    assert metrics["max_sic_limit"] == pytest.approx((39 / 25) ** 0.5)
    for r in runs:  # eps_S = eps_B = 1 gives SIC 1: the largest SIC lies between 1 and the limit
        assert 1.0 <= r["max_sic"] <= metrics["max_sic_limit"] + 1e-9
    assert set(metrics["max_sic"]) == {"pretrained", "scratch", "IAD"}
    for method, per_n in metrics["max_sic"].items():
        entry, (run,) = per_n["60"], [r for r in runs if r["method"] == method]
        assert entry["max_sic"] == [run["max_sic"]] and entry["max_sic_std"] == 0.0  # one seed
        assert entry["max_sic_mean"] == pytest.approx(run["max_sic"])
        assert entry["auc_mean"] == pytest.approx(run["auc"])
    auc = {m: metrics["max_sic"][m]["60"]["auc_mean"] for m in metrics["max_sic"]}
    # at S/B = 0.46 in the signal region the pretrained start and the IAD find the signal in one epoch; random
    # weights do not
    assert auc["pretrained"] > 0.85 and auc["IAD"] > 0.85 and auc["pretrained"] > auc["scratch"] + 0.2
    med = metrics["lhco_medians"]
    assert {k: v["events"] for k, v in med.items()} == {
        "hepfm background": 800,
        "LHCO R&D background": 907,
        "hepfm signal": 240,
        "LHCO R&D signal": 93,
    }
    # generated W' -> X(500) Y(100) and the real R&D signal: the heavier jet is X, m_jj near 3.5 TeV
    assert 450 < med["hepfm signal"]["heavier_jet_mass"] < 550
    assert 450 < med["LHCO R&D signal"]["heavier_jet_mass"] < 550
    assert 3300 < med["hepfm signal"]["mjj"] < 3700 and 3300 < med["LHCO R&D signal"]["mjj"] < 3700
    assert 150 < med["hepfm background"]["heavier_jet_mass"] < 300
    assert 150 < med["LHCO R&D background"]["heavier_jet_mass"] < 300
    # what the classifiers learned on generated events carries over to the real R&D events
    real = metrics["lhco_real_auc"]
    assert set(real) == {"pretrained", "scratch", "IAD"}
    assert real["pretrained"] > 0.8 and real["IAD"] > 0.75
    for figure in ("mjj_and_jet_mass", "lhco_comparison", "sic"):
        assert _png_size(out / "08_weak_supervision" / f"{figure}.png") == (1620, 585)  # 18 x 6.5 in, 90 dpi


def test_unfolding_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "07_unfolding" / "metrics.json").read_text())
    observables = {"mass", "multiplicity", "width", "tau21", "tau32"}
    assert metrics["n_sim"] == metrics["n_data"] == 120 and metrics["iterations"] == 1
    assert metrics["data_settings"] == ["TimeShower:alphaSvalue 0.118"]
    w1 = metrics["w1"]
    assert set(w1) == {"prior", "pretrained iteration 1", "scratch iteration 1"}
    assert all(set(row) == observables for row in w1.values())
    med = metrics["medians"]
    assert set(med) == {"sim_truth", "sim_reco", "data_truth", "data_reco"}
    for level in ("sim", "data"):
        # the detector loses soft particles and merges neutral ones: about half the constituents remain
        assert 0.35 < med[f"{level}_reco"]["multiplicity"] / med[f"{level}_truth"]["multiplicity"] < 0.7
        assert 40 < med[f"{level}_truth"]["multiplicity"] < 70 and 50 < med[f"{level}_truth"]["mass"] < 100
    # the data's weaker final-state shower (alphaS 0.118 against Monash's 0.1365) radiates less
    assert med["data_truth"]["multiplicity"] < med["sim_truth"]["multiplicity"]
    assert med["data_truth"]["mass"] < med["sim_truth"]["mass"]
    assert 3 < w1["prior"]["mass"] < 10 and 2 < w1["prior"]["multiplicity"] < 8
    for name, ratios in metrics["w1_last_over_prior"].items():
        assert set(ratios) == observables
        for key, r in ratios.items():
            assert r == pytest.approx(w1[f"{name} iteration 1"][key] / w1["prior"][key])
            # one iteration of one epoch on 120 jets moves the weights little
            assert 0.8 < r < 1.2, (name, key)
    closure = metrics["closure"]
    assert closure["weight_mean"] == pytest.approx(1.0) and closure["weight_std"] < 0.05
    assert closure["w1_sim_vs_data_truth"] == w1["prior"]
    # unfolding the simulation onto itself stays far closer to its truth than the data's truth is
    for key in observables:
        assert closure["w1_to_sim_truth"][key] < 0.2 * closure["w1_sim_vs_data_truth"][key], key
    assert _png_size(out / "07_unfolding" / "unfolded.png") == (2700, 765)  # 5 observables x 6 in, 8.5 in
    assert _png_size(out / "07_unfolding" / "w1.png") == (900, 585)


def test_cms_jets_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "10_cms_jets" / "metrics.json").read_text())
    # the real CMS file is fixed: its 24 AK8 jets (PUPPI-weighted constituent sums) and CMS's scores are exact
    assert metrics["n_jets"] == 24 and metrics["median_n_particles"] == 41.5
    assert metrics["median_jet_pt"] == pytest.approx(1295.87, abs=0.1)
    assert metrics["median_jet_mass"] == pytest.approx(103.56, abs=0.05)
    assert metrics["qcd_fraction_particlenet"] == 1.0
    assert metrics["median_particlenet_top"] == pytest.approx(2.650e-4, rel=1e-3)
    # the tagger fine-tuned here: 2 epochs on 32 of 40 generated jets (smoke: test AUC 1.0, accuracy 0.85)
    assert metrics["tagger"].endswith("/10_cms_jets/tagger")
    assert metrics["test_n_train"] == 32 and metrics["test_epochs_run"] == 2
    assert metrics["test_auc"] > 0.8 and metrics["test_accuracy"] >= 0.7
    # it calls most of these QCD jets QCD and orders them as ParticleNet does
    # (smoke: 19 of 24 below 0.5, median top score 0.007, rank correlation 0.83)
    assert 0.6 <= metrics["qcd_fraction_hepfm"] <= 1.0
    assert metrics["median_hepfm_top"] < 0.2
    assert metrics["correlation"] > 0.5
    assert _png_size(out / "10_cms_jets" / "scores.png") == (1620, 495)  # three panels, 18 x 5.5 in at 90 dpi
