"""Deployment of the shipped checkpoints: ONNX Runtime against PyTorch on real files, agreement and inference rate.

Each shipped checkpoint's classifier is exported with :func:`hepfm.train.export.export_onnx` and both runtimes
classify the same real data in the same batches at the same thread count: PET on the JetClass sample
(``shared/data/public-samples``), the event model on the CMS NanoAOD file (``shared/data/nanoaod``). Prints the
largest logit difference and jets (events) per second, median of ``--repeats`` passes after one warm-up.

    python benchmarks/bench_export.py [--batch-size 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from hepfm.core.parallel import threads_per_process
from hepfm.train import load_checkpoint
from hepfm.train.export import OPSET, export_onnx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES = {
    "pet-tiny-jetclass": SHARED / "public-samples" / "jetclass_sample.root",
    "event-gnn-multiclass": SHARED / "nanoaod" / "cms_opendata_2015_ttbar_nanoaod.root",
}


def batches(ckpt, sample, batch_size: int) -> list[tuple[dict, tuple]]:
    """(ONNX feeds, PyTorch inputs) of each batch, built once so that the timings are the models' alone."""
    dataset = ckpt.dataset(sample)
    out = []
    for start in range(0, len(sample), batch_size):
        index = list(range(start, min(start + batch_size, len(sample))))
        if ckpt.family.name == "jets":
            n = int(sample.mask[index].sum(1).max())  # the batch's longest jet sets its width, as in inference
            feeds = {"x": sample.particles[index, :n].astype(np.float32), "mask": sample.mask[index, :n]}
            out.append((feeds, (dataset.x[index, :n], dataset.mask[index, :n])))
        else:
            g = dataset.collate(index).graph
            tensors = (g.x, g.edge_index, g.edge_attr, g.u, g.batch)
            feeds = {k: t.numpy() for k, t in zip(("x", "edge_index", "edge_attr", "u", "batch"), tensors, strict=True)}
            out.append((feeds, (g,)))
    return out


def timed(run, items, repeats: int) -> tuple[float, list[np.ndarray]]:
    """Median wall seconds of a pass over ``items`` (one warm-up pass first) and the last pass's outputs."""
    outputs = [run(item) for item in items]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = [run(item) for item in items]
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threads = threads_per_process()
    torch.set_num_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    print(
        f"torch {torch.__version__}, ONNX Runtime {ort.__version__} (CPU), opset {OPSET}, {threads} thread(s) "
        f"each, batches of {args.batch_size}; median of {args.repeats} passes after one warm-up\n"
    )
    print("| checkpoint | data | examples | max abs logit difference | PyTorch /s | ONNX Runtime /s | file MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, path in CASES.items():
        ckpt = load_checkpoint(name)
        sample = ckpt.read(path)  # jets or events, as the checkpoint's family reads them
        items = batches(ckpt, sample, args.batch_size)
        model = ckpt.classifier().eval()
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(ckpt, Path(tmp) / f"{name}.onnx")
            size = onnx_path.stat().st_size / 2**20
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            with torch.no_grad():
                torch_s, expected = timed(lambda item, m=model: m(*item[1]).numpy(), items, args.repeats)
            ort_s, got = timed(lambda item, s=session: s.run(None, item[0])[0], items, args.repeats)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True))
        print(
            f"| {name} | {path.name} | {len(sample)} {ckpt.family.name} | {diff:.2e} | {len(sample) / torch_s:.0f} | "
            f"{len(sample) / ort_s:.0f} | {size:.1f} |"
        )


if __name__ == "__main__":
    main()
