"""PET speed and memory against the peer, measured side by side in one run; prints Markdown tables.

1. The ceiling: this machine's fp32 matmul rate (torch, 2048 x 2048) at the thread count used.
2. Training (forward + backward + AdamW step) and inference (eval, no_grad) throughput in jets/s, and
   the peak resident memory of each, for hepfm's PET classifier and the peer, OmniLearned PET v2
   (PyPI ``omnilearned`` 0.2.0, ``small``, classifier mode, 4 input features). Every model runs in a
   fresh subprocess so that peak-memory numbers do not mix. Rows: the peer; hepfm ``small`` on the same
   4 features; hepfm ``small`` on its 13 features; hepfm widened to the peer's parameter count.
3. FLOPs per jet (``torch.utils.flop_counter``) and achieved GFLOP/s as a fraction of the ceiling.
4. ONNX: hepfm ``small`` exported with dynamic batch and particle axes, checked against PyTorch on a
   padded batch and timed with ONNX Runtime next to PyTorch.

Every model sees the same synthetic jets: ``--particles`` slots per jet, of which a JetClass-like
number (median 51) are real and sorted by pT, the rest zero-padded (``--all-real`` fills every slot).
The peer reads the first 4 features (deta, dphi, log pT, log E) and, as it does, treats a particle as
padding where log pT is 0.

Usage (needs the benchmark-only ``bench`` dependencies: ``make bench-model`` installs them in .venv-bench)::

    python benchmarks/bench_model.py [--warmup 1] [--steps 3] [--batch-size 128] [--particles 128] [--threads 0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from hepfm.models.pet import PET, PETConfig

PEER = "omnilearned==0.2.0"
N_CLASSES = 2  # binary tagging, the peer's default; the same head for every row
MATMUL_SIZE = 2048
OPSET = 18
FLOP_BATCH = 8  # FLOPs per jet do not depend on the batch size: count them on a few jets
aten = torch.ops.aten


def require_bench_dependencies() -> None:
    """Fail with one clear message if a benchmark-only dependency is missing."""
    missing = []
    for module, requirement in (
        ("omnilearned", PEER),
        ("onnx", "onnx"),
        ("onnxscript", "onnxscript"),
        ("onnxruntime", "onnxruntime"),
    ):
        try:
            __import__(module)
        except ImportError as err:
            missing.append(f"{requirement} ({err})")
    if missing:
        raise SystemExit(
            "bench_model.py needs its benchmark-only dependencies, missing: " + "; ".join(missing) + "\n"
            "Run `make bench-model`, which builds .venv-bench with them, or see benchmarks/README.md."
        )


# ---------------------------------------------------------------- inputs and models


def make_jets(batch: int, particles: int, all_real: bool = False, seed: int = 0):
    """Synthetic jets with hepfm's 13 particle features, sorted by pT and zero-padded.

    Returns:
        (x (B, N, 13) float32, mask (B, N) bool, labels (B,) long).
    """
    g = torch.Generator().manual_seed(seed)
    if all_real:
        n_real = torch.full((batch,), particles)
    else:  # JetClass after a detector model: median 51 constituents
        n_real = (51 * torch.exp(0.35 * torch.randn(batch, generator=g))).round().long().clamp(5, particles)
    mask = torch.arange(particles) < n_real[:, None]  # (B, N)
    pt = (1.1 + torch.empty(batch, particles).exponential_(0.1, generator=g)).sort(dim=1, descending=True).values
    deta, dphi = 0.15 * torch.randn(2, batch, particles, generator=g)
    log_pt = pt.log()
    log_energy = log_pt + torch.cosh(deta).log()
    jet_pt = (pt * mask).sum(1, keepdim=True)
    jet_energy = (log_energy.exp() * mask).sum(1, keepdim=True)
    pid = torch.randint(0, 5, (batch, particles), generator=g)  # charged/neutral hadron, photon, e, mu
    charge = torch.where((pid == 0) | (pid >= 3), torch.randint(0, 2, (batch, particles), generator=g) * 2 - 1, 0)
    x = torch.stack(
        [
            deta,
            dphi,
            log_pt,
            log_energy,
            log_pt - jet_pt.log(),
            log_energy - jet_energy.log(),
            torch.hypot(deta, dphi),
            charge.float(),
        ],
        dim=-1,
    )
    x = torch.cat([x, F.one_hot(pid, 5).float()], dim=-1) * mask.unsqueeze(-1)  # (B, N, 13)
    labels = torch.randint(0, N_CLASSES, (batch,), generator=g)
    return x, mask, labels


# ``omnilearned train``'s defaults: classifier mode, 4 features, no interaction matrix, kNN in (deta, dphi)
PEER_KWARGS = dict(
    input_dim=4,
    mode="classifier",
    num_classes=N_CLASSES,
    use_int=False,
    local_int=False,
    num_coord=2,
    K=10,
    mlp_drop=0.0,
    attn_drop=0.0,
)


def peer_model() -> torch.nn.Module:
    """OmniLearned PET v2 ``small``: 128 wide, 8 blocks, 8 heads, 4 class tokens (``get_model_parameters``)."""
    from omnilearned.network import PET2
    from omnilearned.utils import get_model_parameters

    return PET2(**PEER_KWARGS, **get_model_parameters("small"))


def hepfm_config(n_features: int, **overrides) -> PETConfig:
    # PID dropout zeroes features 7-12, which a 4-feature input does not have
    pid = {} if n_features >= 13 else {"pid_dropout": 0.0}
    return PETConfig.named("small", generative=False, n_classes=N_CLASSES, n_features=n_features, **pid, **overrides)


def matched_dim(target: int, n_features: int) -> int:
    """Width of hepfm ``small`` (8 blocks, 4 heads) whose parameter count is closest to ``target``."""
    best, best_gap = 128, None
    for dim in range(128, 513, 4):
        gap = abs(PET(hepfm_config(n_features, dim=dim)).num_parameters() - target)
        if best_gap is not None and gap > best_gap:
            break
        best, best_gap = dim, gap
    return best


def build(spec: dict):
    """(model, forward(x, mask) -> logits, n_features) for one benchmark row."""
    if spec["kind"] == "peer":
        model = peer_model()

        def forward(x, mask):
            # the peer derives its mask from x[..., 2] != 0 and ignores the label in classifier mode
            return model(x, None)["y_pred"]

        return model, forward, 4
    model = PET(hepfm_config(spec["n_features"], **spec.get("overrides", {})))
    return model, model, spec["n_features"]


# ---------------------------------------------------------------- measurements


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_peak() -> float:
    """Reset the peak-RSS mark where Linux allows it; returns the resident MiB now."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mib() -> float:
    """Peak resident MiB since :func:`start_peak` (or, without /proc, since the process started)."""
    return _status_mib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, warmup: int, steps: int) -> float:
    """Median seconds of ``fn()`` over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sdpa_cpu_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward_flop(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the GPU attention kernels only: on CPU, attention would count as zero FLOPs
CPU_ATTENTION_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop,
}


def count_flops(fn) -> int:
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        fn()
    return counter.get_total_flops()


def measure(spec: dict, args: argparse.Namespace) -> dict:
    """One row, in its own process: inference first, then training, then FLOPs."""
    torch.manual_seed(0)
    model, forward, n_features = build(spec)
    x, mask, labels = make_jets(args.batch_size, args.particles, args.all_real)
    x = x[..., :n_features].contiguous()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step(x=x, mask=mask, labels=labels):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x, mask), labels).backward()
        optimizer.step()

    def infer_step(x=x, mask=mask):
        with torch.no_grad():
            forward(x, mask)

    row = {"params": sum(p.numel() for p in model.parameters())}
    model.eval()
    base = start_peak()
    row["infer_s"] = timed(infer_step, args.warmup, args.steps)
    row["infer_mib"] = peak_mib() - base
    model.train()
    base = start_peak()
    row["train_s"] = timed(train_step, args.warmup, args.steps)
    row["train_mib"] = peak_mib() - base

    n = min(FLOP_BATCH, args.batch_size)
    few = (x[:n], mask[:n], labels[:n])
    row["train_flop"] = count_flops(lambda: train_step(*few)) / n
    model.eval()
    # forward with autograd on: the same FLOPs as under no_grad, where FlopCounterMode's module tracker fails
    row["infer_flop"] = count_flops(lambda: forward(*few[:2])) / n
    return row


def run_isolated(spec: dict, args: argparse.Namespace) -> dict:
    """:func:`measure` in a fresh Python process, so that its peak memory is its own."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        json.dumps(spec),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--particles",
        str(args.particles),
        "--threads",
        str(args.threads),
    ] + (["--all-real"] if args.all_real else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark of {spec['name']!r} failed (exit {done.returncode}); its error is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def matmul_gflops(size: int = MATMUL_SIZE, reps: int = 7) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = timed(lambda: a @ b, warmup=2, steps=reps)
    return 2 * size**3 / seconds / 1e9


def onnx_check(args: argparse.Namespace) -> dict:
    """Export hepfm ``small`` to ONNX; max |logit difference| on a padded batch and both inference rates."""
    import numpy as np
    import onnxruntime as ort

    torch.manual_seed(0)
    model = PET(hepfm_config(13)).eval()
    x, mask, _ = make_jets(args.batch_size, args.particles, args.all_real)
    path = Path(tempfile.mkdtemp(prefix="hepfm-onnx-")) / "pet_small.onnx"
    # the TorchScript exporter cannot translate PET's in-place mask update (aten::__ior__): use torch.export
    axes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("particles", min=12)}
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():  # keep the tables clean
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints")  # x and mask share axes
        torch.onnx.export(
            model,
            (x[:2], mask[:2]),
            path,
            dynamo=True,
            verbose=False,
            external_data=False,
            input_names=["x", "mask"],
            output_names=["logits"],
            opset_version=OPSET,
            dynamic_shapes=(axes, axes),
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    # another shape than the export's, so both dynamic axes are exercised, and padding in every jet
    n_check, slots = min(args.batch_size, 32), args.particles - 3
    check_x, check_mask, _ = make_jets(n_check, slots, seed=1)
    check_mask &= torch.arange(slots) < torch.linspace(5, slots - 1, n_check).long()[:, None]
    check_x = check_x * check_mask.unsqueeze(-1)
    with torch.no_grad():
        reference = model(check_x, check_mask).numpy()
    logits = session.run(None, {"x": check_x.numpy(), "mask": check_mask.numpy()})[0]
    feeds = {"x": x.numpy(), "mask": mask.numpy()}

    def torch_step():
        with torch.no_grad():
            model(x, mask)

    return {
        "max_diff": float(np.abs(logits - reference).max()),
        "check_shape": tuple(check_x.shape[:2]),
        "check_padded": float(1 - check_mask.float().mean()),
        "torch_s": timed(torch_step, args.warmup, args.steps),
        "ort_s": timed(lambda: session.run(None, feeds), args.warmup, args.steps),
        "ort_version": ort.__version__,
        "size_mib": path.stat().st_size / 2**20,
    }


# ---------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--steps", type=int, default=3, help="timed steps; the median is reported")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--particles", type=int, default=128, help="particle slots per jet (padded length)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    parser.add_argument("--all-real", action="store_true", help="fill every particle slot (no padding)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.batch_size < 1 or args.particles < 12:
        parser.error("need --steps >= 1, --batch-size >= 1 and --particles >= 12 (k = 10 neighbours + 1)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker), args)))
        return

    require_bench_dependencies()
    import omnilearned

    threads = torch.get_num_threads()
    print("```\n" + shlex.join(["python", *sys.argv]) + "\n```\n")
    print(
        f"# hepfm PET vs OmniLearned PET v2 — {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, omnilearned {omnilearned.__version__}, {time.strftime('%Y-%m-%d')}\n"
    )
    print(
        f"Batch {args.batch_size}, {args.particles} particle slots "
        f"({'all real' if args.all_real else 'JetClass-like multiplicity, median 51 real'}), "
        f"{N_CLASSES} classes, AdamW; median of {args.steps} steps after {args.warmup} warm-up.\n"
    )
    load = os.getloadavg()[0]
    if load > 0.5:  # torch's threads wait for each other at every op: a busy core stalls them all
        print(
            f"**Warning**: load average {load:.1f} on {os.cpu_count()} cores before the run. Other processes "
            f"compete for the cores, which can slow multi-threaded torch several-fold; compare rows of this run "
            f"only, or measure on a quiet machine.\n"
        )

    ceiling = matmul_gflops()
    print("## The ceiling: fp32 matmul\n")
    print("| size | torch threads | GFLOP/s (median of 7) |\n| --- | --- | --- |")
    print(f"| {MATMUL_SIZE}² | {threads} | {ceiling:.1f} |\n")

    peer_params = sum(p.numel() for p in peer_model().parameters())
    dim = matched_dim(peer_params, 4)
    specs = [
        {"name": "OmniLearned PET v2 small (peer)", "kind": "peer", "n_features": 4},
        {"name": "hepfm PET small", "kind": "hepfm", "n_features": 4},
        {"name": "hepfm PET small", "kind": "hepfm", "n_features": 13},
        {
            "name": f"hepfm PET small, dim {dim} (peer's params)",
            "kind": "hepfm",
            "n_features": 4,
            "overrides": {"dim": dim},
        },
    ]
    rows = []
    for spec in specs:
        print(f"measuring {spec['name']} ...", file=sys.stderr, flush=True)
        rows.append(run_isolated(spec, args))

    print("## Throughput and peak memory (each model in a fresh process)\n")
    print(
        "Peak memory: growth of the process's peak resident set over its resident set before the phase "
        "(optimizer state and gradients included for training).\n"
    )
    print("| model | features | params | train jets/s | inference jets/s | train peak MiB | inference peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    peer = rows[0]
    for spec, row in zip(specs, rows, strict=True):
        print(
            f"| {spec['name']} | {spec['n_features']} | {row['params'] / 1e6:.2f} M "
            f"| {args.batch_size / row['train_s']:.1f} ({peer['train_s'] / row['train_s']:.2f}×) "
            f"| {args.batch_size / row['infer_s']:.1f} ({peer['infer_s'] / row['infer_s']:.2f}×) "
            f"| {row['train_mib']:.0f} | {row['infer_mib']:.0f} |"
        )
    print(
        f"\n(×: speed relative to the peer, measured in this run.) Peer: `omnilearned.network.PET2("
        f"{', '.join(f'{k}={v!r}' for k, v in PEER_KWARGS.items())}, **get_model_parameters('small'))`. "
        f"Param-matched row: the width of hepfm `small` whose count is nearest the peer's "
        f"({rows[-1]['params'] / peer['params'] - 1:+.1%}).\n"
    )

    print(f"## FLOPs and achieved rate (ceiling {ceiling:.1f} GFLOP/s)\n")
    print(
        "FlopCounterMode counts matmuls and attention (CPU attention kernels registered here); elementwise ops,"
        " norms and kNN selection are not counted.\n"
    )
    print(
        "| model | features | train GFLOP/jet | train GFLOP/s | of ceiling | inference GFLOP/jet "
        "| inference GFLOP/s | of ceiling |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec, row in zip(specs, rows, strict=True):
        train_rate = row["train_flop"] * args.batch_size / row["train_s"] / 1e9
        infer_rate = row["infer_flop"] * args.batch_size / row["infer_s"] / 1e9
        print(
            f"| {spec['name']} | {spec['n_features']} | {row['train_flop'] / 1e9:.3f} | {train_rate:.1f} "
            f"| {train_rate / ceiling:.0%} | {row['infer_flop'] / 1e9:.3f} | {infer_rate:.1f} "
            f"| {infer_rate / ceiling:.0%} |"
        )

    print("\nmeasuring ONNX export ...", file=sys.stderr, flush=True)
    onnx = onnx_check(args)
    verdict = "pass" if onnx["max_diff"] < 1e-5 else "FAIL"
    print(f"\n## ONNX (hepfm PET small, 13 features, dynamic batch and particle axes, opset {OPSET})\n")
    print(
        f"max |logit difference| vs PyTorch: {onnx['max_diff']:.2e} ({verdict}, tolerance 1e-5) on a "
        f"{onnx['check_shape'][0]} × {onnx['check_shape'][1]} batch, {onnx['check_padded']:.0%} of slots padded; "
        f"model file {onnx['size_mib']:.1f} MiB.\n"
    )
    print("| runtime | threads | inference jets/s |\n| --- | --- | --- |")
    print(f"| PyTorch {torch.__version__} (eval, no_grad) | {threads} | {args.batch_size / onnx['torch_s']:.1f} |")
    print(f"| ONNX Runtime {onnx['ort_version']} (CPU) | {threads} | {args.batch_size / onnx['ort_s']:.1f} |")
    if verdict == "FAIL":
        raise SystemExit(f"ONNX logits differ from PyTorch by {onnx['max_diff']:.2e} (> 1e-5)")


if __name__ == "__main__":
    main()
