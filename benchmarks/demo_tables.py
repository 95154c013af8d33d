"""Print the markdown tables of benchmarks/RESULTS.md from an executed notebook run (metrics.json files).

    python benchmarks/demo_tables.py runs/demo

Every number printed is read from ``RUN/<notebook>/metrics.json`` or ``RUN/summary.json``; nothing is computed
beyond means already stored there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(run: Path, name: str) -> dict | None:
    path = run / name / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def _pm(pair, digits: int = 4) -> str:
    if pair is None:
        return "—"
    if pair[0] is None:  # a rejection where no test background passes the cut
        return "no test background passes"
    mean, std = pair
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def timing(run: Path) -> None:
    if not (run / "summary.json").exists():  # written when the run ends
        return
    summary = json.loads((run / "summary.json").read_text())
    total = sum(v["seconds"] for v in summary.values())
    print("| notebook | status | seconds |\n| --- | --- | --- |")
    for name, v in summary.items():
        print(f"| {name} | {'ok' if v['ok'] else 'FAILED'} | {v['seconds']:.0f} |")
    print(f"| **sum** | | **{total:.0f}** ({total / 60:.1f} min; two at a time the suite takes less) |\n")


def data(m: dict) -> None:
    print("Notebook `00_data`, generated jets against the real JetClass sample (medians):\n")
    print("| class | jets | mass [GeV] | window | JetClass mass | constituents | JetClass constituents | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, c in sorted(m["classes"].items()):
        window = c.get("mass_window")
        print(
            f"| {name} | {c['n_jets']} | {c['mass']:.1f} | {window or '—'} | {c['ref_mass']:.1f} | "
            f"{c['n_particles']:.1f} | {c['ref_n_particles']:.1f} | {c['multiplicity_ratio']:.2f} |"
        )
    print(f"\nall_mass_ok {m['all_mass_ok']}, all_multiplicity_ok {m['all_multiplicity_ok']}\n")


def pretrain_jets(m: dict) -> None:
    print(
        f"Notebook `01_pretrain_jets`, {m['checkpoint']} on {m['n_eval']} fresh jets: 10-class accuracy "
        f"{m['accuracy']:.3f}, mean one-vs-rest AUC {m['mean_auc']:.3f}.\n"
    )


def finetune(name: str, m: dict) -> None:
    print(f"Notebook `{name}` (seeds {m['seeds']}; mean ± std over seeds):\n")
    print("| start | labelled jets | AUC | accuracy | rej30 | rej50 | rej30 rests on (bkg) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode, sizes in m["summary"].items():
        for size, s in sizes.items():
            print(
                f"| {mode} | {size} | {_pm(s['auc'])} | {_pm(s['accuracy'], 3)} | {_pm(s['rej30'], 1)} | "
                f"{_pm(s['rej50'], 1)} | {s.get('rej30_passing', '—')} |"
            )
    ratios = ", ".join(
        f"{size}: {c['median_epoch_ratio']:.2f} ({c['reached']}/{c['of']} reached)"
        for size, c in m["convergence"].items()
    )
    print(
        f"\nEpochs the fine-tuned model needs to reach scratch's best validation loss over scratch's epochs "
        f"(median over seeds): {ratios}."
    )
    if m.get("real_two_fold"):
        real = m["real_two_fold"]
        parts = []
        for mode, r in real.items():
            if isinstance(r, dict) and "mean_auc" in r:
                folds = ", ".join(f"{a:.4f}" for a in r["auc_per_fold"])
                parts.append(f"{mode} mean AUC {r['mean_auc']:.4f} (folds {folds})")
        if parts:
            print("Real quark/gluon jets, fixed two-fold split: " + "; ".join(parts) + ".")
    print()


def pretrain_events(m: dict) -> None:
    mc, ml = m["multiclass"], m["multilabel"]
    print(
        f"Notebook `04_pretrain_events` on {m['n_eval']} fresh events: multiclass accuracy {mc['accuracy']:.3f}, "
        f"mean one-vs-rest AUC {mc['mean_auc']:.3f}; multilabel truth labels right "
        f"{ml['label_accuracy']:.3f}.\n"
    )
    print("| label | " + " | ".join(ml["auc_per_label"]) + " |")
    print("| --- |" + " --- |" * len(ml["auc_per_label"]))
    print("| AUC | " + " | ".join(f"{v:.3f}" for v in ml["auc_per_label"].values()) + " |\n")
    nano = m.get("nanoaod")
    if nano:
        called = sorted(nano["fraction_called"].items(), key=lambda kv: -kv[1])[:5]
        print(
            f"NanoAOD file ({nano['n_events']} events): called "
            + ", ".join(f"{name} {frac:.3f}" for name, frac in called)
            + "\n"
        )
        labels = list(nano["multilabel"]["truth_fraction"])
        print("| label | " + " | ".join(labels) + " |")
        print("| --- |" + " --- |" * len(labels))
        for row, key in (
            ("file truth (GenPart)", "truth_fraction"),
            ("multilabel model, mean probability", "mean_predicted"),
        ):
            print(f"| {row} | " + " | ".join(f"{nano['multilabel'][key][k]:.2f}" for k in labels) + " |")
        print()


def finetune_events(m: dict) -> None:
    print(f"Notebook `05_finetune_events` (seeds {m['seeds']}; test AUC, mean ± std over seeds):\n")
    variants = m["variants"]
    print("| task | unseen | events | " + " | ".join(variants) + " |")
    print("| --- | --- | --- |" + " --- |" * len(variants))
    for task, t in m["tasks"].items():
        for size in map(str, m["sizes"]):
            cells = [_pm(t["summary"].get(v, {}).get(size, {}).get("auc"), 3) for v in variants]
            print(f"| {task} | {'yes' if t['unseen'] else 'no'} | {size} | " + " | ".join(cells) + " |")
    cost = m["pretraining_seconds"]
    cost = cost if isinstance(cost, dict) else {"each pretrained start": cost}
    print("\nPretraining: " + ", ".join(f"{mode} {s:.0f} s" for mode, s in cost.items()) + ".\n")
    if "efficiency" not in m:
        return
    size = m["sizes"][-1]
    print(f"Time to the target validation accuracy at {size} events (median over the seeds that reach it):\n")
    print("| task | target | " + " | ".join(variants) + " |")
    print("| --- | --- |" + " --- |" * len(variants))
    for task, e in m["efficiency"].items():
        cells = []
        for v in variants:
            r = e.get(v, {})
            seconds = "—" if r.get("median_seconds") is None else f"{r['median_seconds']:.0f} s"
            cells.append(f"{seconds} ({r.get('reached', 0)}/{r.get('of', 0)})")
        print(f"| {task} | {e['target_accuracy']:.3f} | " + " | ".join(cells) + " |")
    totals, even = m["total_seconds_to_target"], m.get("break_even_tasks", {})
    cells = [f"{totals[v]:.0f} s" if v in totals else "—" for v in variants]
    print("| **all tasks** | | " + " | ".join(cells) + " |")
    with_pre = m["total_seconds_with_pretraining"]
    cells = [f"{with_pre[v]:.0f} s" if v in with_pre else "—" for v in variants]
    print("| **with its pretraining** | | " + " | ".join(cells) + " |")
    cells = ["—" if v not in even else ("never" if even[v] is None else f"{even[v]:.1f}") for v in variants]
    print("| **pays for itself after (tasks)** | | " + " | ".join(cells) + " |\n")


def generation(m: dict) -> None:
    print(
        f"Notebook `06_generation` ({', '.join(m['classes'])}; {m['n_train']} training jets; {m['n_eval']} "
        f"held-out jets; {m['steps']} sampler steps, guidance {m['guidance']}):\n"
    )
    print("| generator | W1M [GeV] | W1P (mean) | W1EFP (mean of 5) | two-sample AUC |")
    print("| --- | --- | --- | --- | --- |")
    for name, s in m["scores"].items():
        print(
            f"| {name} | {s['w1m']:.2f} | {s['w1p_mean']:.4f} | {s['w1efp_mean']:.2e} | "
            f"{m['two_sample_auc'][name]:.3f} |"
        )
    print()


def unfolding(m: dict) -> None:
    print(
        f"Notebook `07_unfolding` ({m['n_sim']} simulated and {m['n_data']} data jets; data settings "
        f"{m['data_settings']}; {m['iterations']} iterations). W1 to the data's particle-level truth:\n"
    )
    observables = list(m["w1"]["prior"])
    print("| | " + " | ".join(observables) + " |\n| --- |" + " --- |" * len(observables))
    for row, d in m["w1"].items():
        print(f"| {row} | " + " | ".join(f"{d[k]:.4g}" for k in observables) + " |")
    print("\nLast iteration over the prior (< 1: closer to the truth):\n")
    print("| classifier | " + " | ".join(observables) + " |\n| --- |" + " --- |" * len(observables))
    for name, d in m["w1_last_over_prior"].items():
        print(f"| {name} | " + " | ".join(f"{d[k]:.2f}" for k in observables) + " |")
    c = m.get("closure") or {}
    if c:
        print(
            f"\nClosure (simulation unfolded onto itself, pretrained, one iteration): weights {c['weight_mean']:.3f} "
            f"± {c['weight_std']:.3f}; W1 to its own truth over W1(simulation, data truth): "
            + ", ".join(f"{k} {c['w1_to_sim_truth'][k] / c['w1_sim_vs_data_truth'][k]:.2f}" for k in observables)
            + "."
        )
    print()


def weak(m: dict) -> None:
    print(
        f"Notebook `08_weak_supervision` (seeds {m['seeds']}; test: {m['n_test']['background']} background and "
        f"{m['n_test']['signal']} signal events of the signal region). max SIC (mean ± std over seeds) and AUC:\n"
    )
    methods = list(m["max_sic"])
    print("| injected | S/B in SR | " + " | ".join(f"{x} max SIC | {x} AUC" for x in methods) + " |")
    print("| --- | --- |" + " --- | --- |" * len(methods))
    for n in map(str, m["n_inject"]):
        cells = []
        for x in methods:
            s = m["max_sic"][x][n]
            cells.append(f"{s['max_sic_mean']:.2f} ± {s['max_sic_std']:.2f} | {s['auc_mean']:.3f}")
        print(f"| {n} | {m['s_over_b_signal_region'][n]:.3f} | " + " | ".join(cells) + " |")
    if "max_sic_limit" in m:
        print(
            f"\nThe test sample bounds the max SIC at {m['max_sic_limit']:.2f} (every signal event kept at the "
            "smallest background efficiency the SIC curve allows, 25 background events)."
        )
    if m.get("lhco_real_auc"):
        print(
            "\nClassifiers of the largest injection on the real LHCO R&D signal-region events, AUC: "
            + ", ".join(f"{k} {v:.3f}" for k, v in m["lhco_real_auc"].items())
            + "."
        )
    if m.get("lhco_medians"):
        print("\n| sample | events | median m_jj [GeV] | median heavier-jet mass [GeV] |\n| --- | --- | --- | --- |")
        for k, v in m["lhco_medians"].items():
            print(f"| {k} | {v['events']} | {v['mjj']:.0f} | {v['heavier_jet_mass']:.0f} |")
    print()


def cka(m: dict) -> None:
    print("Notebook `09_cka` (mean linear CKA along the layer diagonal):\n")
    print("| comparison | PET | event model |\n| --- | --- | --- |")
    for pair, v in m["jets"].items():
        if isinstance(v, dict) and "mean_diagonal" in v:
            events = m["events"].get(pair, {}).get("mean_diagonal", float("nan"))
            print(f"| {pair} | {v['mean_diagonal']:.3f} | {events:.3f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run directory, e.g. runs/demo")
    run = parser.parse_args().run
    timing(run)
    printers = [
        ("00_data", data),
        ("01_pretrain_jets", pretrain_jets),
        ("02_finetune_top", lambda m: finetune("02_finetune_top", m)),
        ("03_finetune_qg", lambda m: finetune("03_finetune_qg", m)),
        ("04_pretrain_events", pretrain_events),
        ("05_finetune_events", finetune_events),
        ("06_generation", generation),
        ("07_unfolding", unfolding),
        ("08_weak_supervision", weak),
        ("09_cka", cka),
    ]
    for name, printer in printers:
        m = _load(run, name)
        if m is not None:
            printer(m)


if __name__ == "__main__":
    main()
