"""Print the facts of a checkpoint's card in checkpoints/README.md, read from the checkpoint's own files.

    python benchmarks/card.py checkpoints/pet-tiny-jetclass

Size and sha256 of ``model.safetensors`` (checked against the ``weights_sha256`` its ``config.json`` records),
parameters, training and validation counts, wall time, the best epoch, and the per-epoch validation table of
its ``metrics.json`` (every ``val_*`` column it holds). Nothing is computed beyond sums of stored numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def card(path: Path) -> str:
    config = json.loads((path / "config.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    weights = (path / "model.safetensors").read_bytes()
    sha = hashlib.sha256(weights).hexdigest()
    if sha != config.get("weights_sha256"):
        raise SystemExit(f"{path / 'model.safetensors'}: sha256 {sha} differs from config.json's weights_sha256")
    history = metrics["history"]  # its last wall time is the run's over every resume (older metrics.json files
    # give the last process's alone as wall_seconds)
    lines = [
        f"`{path.name}`: {len(weights) / 2**20:.1f} MiB; sha256 of `model.safetensors`: `{sha}`.",
        f"{metrics['n_parameters']:,} parameters; {metrics['n_train']:,} training and {metrics['n_val']:,} "
        f"validation examples; {metrics['epochs_run']} epochs in {history[-1]['wall_seconds']:,.0f} s "
        f"(training {sum(e['train_seconds'] for e in history):,.0f} s); best epoch {metrics['best_epoch']} "
        f"(of 0–{history[-1]['epoch']}), validation loss {metrics['best_val_loss']:.3f}, "
        f"validation accuracy {metrics['val_accuracy']:.3f}.",
        "",
    ]
    columns = ["train_loss", "val_loss"] + sorted(k for k in history[0] if k.startswith("val_") and k != "val_loss")
    lines.append("| epoch | " + " | ".join(c.replace("_", " ") for c in columns) + " | wall s |")
    lines.append("| --- " * (len(columns) + 2) + "|")
    for e in history:
        cells = [f"{e[c]:.3f}" if c in e else "—" for c in columns]
        lines.append(f"| {e['epoch']} | " + " | ".join(cells) + f" | {e['wall_seconds']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint directory")
    print(card(parser.parse_args().checkpoint))


if __name__ == "__main__":
    main()
