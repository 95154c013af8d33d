"""Every notebook runs through the runner at the smoke profile; recorded values are checked."""

from __future__ import annotations

import json

import nbformat
import papermill
import pytest

from hepfm.runner import NOTEBOOK_DIR, list_notebooks, load_profile, run_notebooks

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
    for profile in ("smoke", "demo", "cpu", "gpu"):
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


def test_data_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "00_data" / "metrics.json").read_text())
    assert metrics["all_mass_ok"] and metrics["all_multiplicity_ok"]
    assert metrics["classes"]["Tbqq"]["mass_window"] == [160.0, 185.0]
    assert 160 <= metrics["classes"]["Tbqq"]["mass"] <= 185
    for name, c in metrics["classes"].items():
        assert abs(c["multiplicity_ratio"] - 1) <= 0.25, name
    for figure in ("jet_mass", "jet_n_particles", "jet_pt"):
        assert (out / "00_data" / f"{figure}.png").stat().st_size > 10_000


def test_pretrain_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "01_pretrain_jets" / "metrics.json").read_text())
    assert len(metrics["auc_per_class"]) == 10 and 0 <= metrics["accuracy"] <= 1
    assert metrics["pretraining"]["epochs_run"] == 1
    assert (out / "01_pretrain_jets" / "confusion.png").exists()


@pytest.mark.parametrize("name", ["02_finetune_top", "03_finetune_qg"])
def test_finetune_notebook_metrics(smoke_run, name):
    out, _ = smoke_run
    metrics = json.loads((out / name / "metrics.json").read_text())
    assert set(metrics["summary"]) == {"pretrained", "scratch"}
    assert len(metrics["runs"]) == 4  # 2 sizes x 1 seed x 2 modes
    # the shipped backbone already separates the classes with a handful of labelled jets
    assert metrics["targets"]["pretrained_auc_at_smallest"] > 0.7
    for figure in ("scan", "convergence"):
        assert (out / name / f"{figure}.png").exists()
    if name == "03_finetune_qg":
        folds = metrics["real_two_fold"]
        assert set(folds) == {"pretrained", "scratch"}
        assert all(0.5 < a <= 1 for a in folds["pretrained"]["auc_per_fold"])


def test_event_pretrain_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "04_pretrain_events" / "metrics.json").read_text())
    assert metrics["n_eval"] == 12 * 15
    assert {m["epochs_run"] for m in metrics["pretraining"].values()} == {2}
    assert len(metrics["multiclass"]["auc_per_class"]) == 12 and 0 <= metrics["multiclass"]["accuracy"] <= 1
    assert set(metrics["multilabel"]["auc_per_label"]) <= {
        "top",
        "W",
        "Z",
        "H",
        "bottom",
        "lepton",
        "neutrino",
        "photon",
    }
    # physics of the generated events: ttH (4 b quarks + W decays) has far more jets and b-tags than WZ or Z+jet
    mult = metrics["multiplicities"]
    assert mult["ttH"]["jets"] > mult["WZ"]["jets"] + 1.5 and mult["ttH"]["btag"] > mult["Zjets"]["btag"] + 0.8
    nano = metrics["nanoaod"]
    assert nano["n_events"] == 200 and abs(sum(nano["fraction_called"].values()) - 1) < 1e-9
    assert nano["multilabel"]["truth_fraction"]["W"] > 0.95 and nano["multilabel"]["truth_fraction"]["top"] == 0
    assert set(nano["multilabel"]["mean_predicted"]) == set(nano["multilabel"]["truth_fraction"])
    for figure in ("objects", "confusion", "truth_labels", "nanoaod", "training_multiclass"):
        assert (out / "04_pretrain_events" / f"{figure}.png").exists()


def test_event_finetune_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "05_finetune_events" / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"ttH_vs_ttbar", "H2_vs_ZZ"}
    assert metrics["tasks"]["H2_vs_ZZ"]["unseen"] and not metrics["tasks"]["ttH_vs_ttbar"]["unseen"]
    assert set(metrics["variants"]) == {"multiclass", "multilabel", "scratch", "frozen"}
    for task in metrics["tasks"].values():
        assert len(task["runs"]) == 2 * 1 * 4  # sizes x seeds x variants
        assert all(0 <= r["auc"] <= 1 for r in task["runs"])
    # the shipped multiclass backbone already tells H2 -> ZZ from ZZ with 30 labelled events
    assert metrics["auc_at_smallest"]["H2_vs_ZZ"]["multiclass"] > 0.7
    assert metrics["pretraining_seconds"] > 0
    for figure in ("scan_H2_vs_ZZ", "convergence_ttH_vs_ttbar", "tasks"):
        assert (out / "05_finetune_events" / f"{figure}.png").exists()


def test_generation_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "06_generation" / "metrics.json").read_text())
    assert set(metrics["scores"]) == set(metrics["two_sample_auc"]) == {"pretrained", "finetuned", "scratch"}
    assert metrics["n_eval"] == 2 * 20
    for name, s in metrics["scores"].items():
        assert s["w1m"] >= 0 and len(s["w1efp"]) == 5 and set(s["w1p"]) == {"deta", "dphi", "log_pt_rel"}
        assert 0 <= metrics["two_sample_auc"][name] <= 1
    # the pretrained generator makes jets far closer to real ones than a generator trained for one epoch
    assert metrics["scores"]["pretrained"]["w1m"] < metrics["scores"]["scratch"]["w1m"]
    for figure in ("jet_mass", "w1"):
        assert (out / "06_generation" / f"{figure}.png").exists()


def test_cka_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "09_cka" / "metrics.json").read_text())
    for model in ("jets", "events"):
        m = metrics[model]
        pairs = {k: v for k, v in m.items() if isinstance(v, dict) and "mean_diagonal" in v}
        assert set(pairs) == {"fine-tuned vs scratch", "scratch vs scratch (seeds 0, 1)", "pretrained vs fine-tuned"}
        for entry in pairs.values():
            assert all(-0.1 <= v <= 1.0 + 1e-6 for v in entry["diagonal"].values())
        # a short fine-tuning at lr / 10 barely moves the backbone; training from scratch ends elsewhere
        assert pairs["pretrained vs fine-tuned"]["mean_diagonal"] > pairs["fine-tuned vs scratch"]["mean_diagonal"]
        assert pairs["pretrained vs fine-tuned"]["mean_diagonal"] > 0.9
        assert (out / "09_cka" / f"cka_{model}.png").exists()


def test_runner_carries_on_past_a_failing_notebook(tmp_path):
    nbdir = tmp_path / "nbs"
    (nbdir / "params").mkdir(parents=True)
    for name, body in (
        ("00_bad", "raise RuntimeError('boom')"),
        ("01_good", "import json, pathlib\npathlib.Path(output_dir, 'metrics.json').write_text(json.dumps({'x': x}))"),
    ):
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell("output_dir = ''  # out\nx = 1  # a number", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body),
        ]
        nbformat.write(nb, nbdir / f"{name}.ipynb")
    (nbdir / "params" / "smoke.yaml").write_text("01_good:\n  x: 5\n")
    results = run_notebooks("smoke", tmp_path / "out", notebook_dir=nbdir)
    assert [(r.name, r.ok) for r in results] == [("00_bad", False), ("01_good", True)]
    assert json.loads((tmp_path / "out" / "01_good" / "metrics.json").read_text()) == {"x": 5}
    index = (tmp_path / "out" / "index.md").read_text()
    assert "**FAILED**" in index and "boom" in index
    # one page: every notebook's metrics (and figures) below the table
    assert "## 01_good" in index and "- `x`: 5" in index


def test_unknown_profile_and_notebook(tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        run_notebooks("huge", tmp_path)
    with pytest.raises(ValueError, match="no notebook matches"):
        run_notebooks("smoke", tmp_path, only=["99_nothing"])
    assert NOTEBOOK_DIR.is_dir()


def test_weak_supervision_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "08_weak_supervision" / "metrics.json").read_text())
    assert set(metrics["max_sic"]) == {"pretrained", "scratch", "IAD"}
    assert len(metrics["runs"]) == 3  # 1 injection x 1 seed x 3 classifiers
    for method in metrics["max_sic"].values():
        assert method["60"]["max_sic_mean"] > 0
    assert metrics["n_test"]["background"] > 0 and metrics["n_test"]["signal"] > 0
    assert 0 < metrics["s_over_b_signal_region"]["60"] < 2
    med = metrics["lhco_medians"]
    # generated W' -> X(500) Y(100) and the real R&D signal: the heavier jet is X
    assert 400 < med["hepfm signal"]["heavier_jet_mass"] < 600
    assert 400 < med["LHCO R&D signal"]["heavier_jet_mass"] < 600
    assert med["hepfm background"]["heavier_jet_mass"] < 350
    assert set(metrics["lhco_real_auc"]) == {"pretrained", "scratch", "IAD"}
    for figure in ("mjj_and_jet_mass", "lhco_comparison", "sic"):
        assert (out / "08_weak_supervision" / f"{figure}.png").exists()


def test_unfolding_notebook_metrics(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "07_unfolding" / "metrics.json").read_text())
    observables = {"mass", "multiplicity", "width", "tau21", "tau32"}
    assert set(metrics["w1"]) == {"prior", "pretrained iteration 1", "scratch iteration 1"}
    assert all(set(row) == observables for row in metrics["w1"].values())
    med = metrics["medians"]
    assert med["sim_truth"]["multiplicity"] > med["sim_reco"]["multiplicity"]  # the detector loses particles
    closure = metrics["closure"]
    assert closure["weight_mean"] == pytest.approx(1.0) and closure["weight_std"] < 0.3
    # unfolding the simulation onto itself stays far closer to its truth than the data's truth is
    for key in ("mass", "multiplicity"):
        assert closure["w1_to_sim_truth"][key] < 0.5 * closure["w1_sim_vs_data_truth"][key]
    for figure in ("unfolded", "w1"):
        assert (out / "07_unfolding" / f"{figure}.png").exists()
