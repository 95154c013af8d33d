"""The layers import one way (docs/architecture.md), and a fine-tune reads its checkpoint's config once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import synthetic_jets

import hepfm
from hepfm.train import TrainConfig, finetune, pretrain

PACKAGE = Path(hepfm.__file__).parent
# Rank of each layer: a module may import its own layer and those below it. sim and data share a rank, but data
# must not import sim (checked apart).
RANKS = {
    "core": 0,
    "data": 1,
    "sim": 1,
    "models": 2,
    "train": 3,
    "analysis": 4,
    "cli": 5,
    "runner": 5,
    "__main__": 5,
    "__init__": 0,
}
# Modules imported inside functions because their dependencies are heavy and needed by few: torch-geometric
# (event model, graphs), coffea (NanoAOD, Delphes) and torch itself (the datasets, so that hepfm.sim and every
# Dask worker of a production stay free of it). The CLI imports everything on use, so --help is instant.
LAZY = {
    "hepfm.models.event_gnn",
    "hepfm.data.graphs",
    "hepfm.data.formats.nanoaod",
    "hepfm.models",
    "hepfm.data.datasets",
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path):
    """(imported hepfm module, at module level?, under TYPE_CHECKING?) of a file."""
    tree = ast.parse(path.read_text())
    checking = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            checking |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hepfm"):
            yield node.module, node.col_offset == 0, id(node) in checking
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hepfm"):
                    yield alias.name, node.col_offset == 0, id(node) in checking


def test_layers_import_one_way():
    wrong = []
    for module, path in _modules():
        layer = _layer(module)
        for imported, _, _ in _imports(path):
            target = _layer(imported)
            if RANKS[target] > RANKS[layer] or (layer == "data" and target == "sim"):
                wrong.append(f"{module} imports {imported}")
            if layer == "models" and target == "sim":
                wrong.append(f"{module} imports {imported}")
    assert not wrong, wrong


def test_simulation_and_readers_do_not_import_torch():
    # each Dask worker of a production imports hepfm.sim: torch would cost it seconds and ~180 MB
    code = "import sys, hepfm.sim, hepfm.data; print(sorted(m for m in ('torch', 'distributed') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import hepfm.data

    assert hepfm.data.JetDataset.__module__ == "hepfm.data.datasets"


def test_function_local_imports_are_only_for_heavy_dependencies():
    hidden = [
        f"{module} imports {imported} inside a function"
        for module, path in _modules()
        if _layer(module) not in ("cli",)
        for imported, top, checking in _imports(path)
        if not top and not checking and imported not in LAZY
    ]
    assert not hidden, hidden


def test_a_finetune_reads_the_checkpoint_config_once(tmp_path, monkeypatch):
    fast = dict(epochs=1, batch_size=16, progress=False, patience=0, device="cpu")
    pretrain(synthetic_jets(32, seed=1), tmp_path / "pre", train=TrainConfig(**fast))
    reads = []
    original = Path.read_text

    def counting(self, *args, **kwargs):
        if self.name == "config.json" and self.parent == tmp_path / "pre":
            reads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    finetune(
        tmp_path / "pre",
        synthetic_jets(32, seed=2),
        synthetic_jets(16, seed=3),
        tmp_path / "ft",
        train=TrainConfig(**fast),
    )
    assert len(reads) == 1
