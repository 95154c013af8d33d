#!/bin/bash
# hepfm on an offline GPU node (one GPU, 16 cores) whose python3 already holds PyTorch and the scientific stack:
# the rest of hepfm's pinned dependencies travel as one packed directory, and each call of the node runs one stage.
#
#   here (online, any Python):  benchmarks/gpu_node.sh pack
#       -> build/gpu-node/: site.tar.xz (the dependencies the node lacks, for its CPython 3.12 on x86-64) and
#          shared/ (a copy of ../shared/data, the real files some notebooks read); about 43 MB in all
#   there (in a copy of the checkout, build/gpu-node beside it):
#       benchmarks/gpu_node.sh suite OUT [SECONDS] [PROFILE]
#           the notebook suite at the gpu-check profile (or PROFILE; papermill, device auto), stopped after
#           SECONDS (default 480); OUT gets index.md, the run's metrics.json files and its log (which has
#           each finished notebook's time when the limit cuts the run short, before index.md is written)
#       benchmarks/gpu_node.sh small OUT JETS_PER_CLASS GEN_SECONDS TRAIN_SECONDS [EPOCHS]
#           pet-small on the first shards of the seeded 10^6-jet production (`make foundation-jets-data`'s
#           command with --workers 16, stopped after GEN_SECONDS, whole shards kept), then pretrained with bf16
#           autocast (the default on CUDA) for at most TRAIN_SECONDS; OUT gets the checkpoint (the best finished
#           epoch), its metrics.json and the log
#
# The node's own packages are listed in benchmarks/gpu_node_packages.txt (names, one a line): they are used
# as they are there, whatever their versions. `HEPFM_NODE_PYTHON=3.12` and `HEPFM_NODE_PACKAGES=FILE` pack for
# another node; `HEPFM_NODE_WORKERS` (default 16) sets the Dask workers of `small`.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=build/gpu-node

unpack() {  # there: the packed dependencies under /tmp/hepfm-site, importable in this shell and its children
    local site=/tmp/hepfm-site
    if [ ! -d $site ]; then
        mkdir -p $site.part && tar -C $site.part -xJf $NODE/site.tar.xz && mv $site.part $site
    fi
    export PYTHONPATH=$site:$PWD${PYTHONPATH:+:$PYTHONPATH}
    export PYTHIA8DATA=$site/share/Pythia8/xmldoc PATH=$site/bin:$PATH
    # the notebooks read the real files at ../shared/data, beside the checkout
    [ -e ../shared ] || ln -s "$PWD/$NODE/shared" ../shared
    python3 -c "import torch, hepfm.cli; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
}

case "${1:-}" in
pack)
    py=${HEPFM_NODE_PYTHON:-3.12}
    has=${HEPFM_NODE_PACKAGES:-benchmarks/gpu_node_packages.txt}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
        manylinux2014_x86_64 manylinux1_x86_64; do platforms+=(--platform "$p"); done
    target=(--only-binary=:all: --python-version "$py" --implementation cp "${platforms[@]}")
    # hepfm's pinned runtime dependencies that the node lacks, without the JupyterLab UI (papermill runs the
    # notebooks there); the node's own (PyTorch, say) bring what they need there
    python3 - "$has" "$tmp/wanted.txt" <<'EOF'
import re, sys, tomllib
has, wanted = sys.argv[1:]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
node = {norm(line.split("#")[0].strip()) for line in open(has) if line.split("#")[0].strip()} | {"jupyterlab"}
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
open(wanted, "w").write("\n".join(d for d in deps if norm(re.split(r"[=<>!~;\[ ]", d)[0]) not in node) + "\n")
EOF
    python3 -m pip install --quiet --dry-run --ignore-installed --report "$tmp/report.json" "${target[@]}" \
        --target "$tmp/resolve" -r "$tmp/wanted.txt"
    # what the node lacks, less the packages nothing imports on the way to a result: completion and debugging
    # in the kernel (jedi, parso, debugpy), widgets, and PyTables (hepfm reads pandas HDF5 through h5py)
    python3 - "$tmp/report.json" "$has" "$tmp/pins.txt" <<'EOF'
import json, re, sys
report, has, pins = sys.argv[1:]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
node = {norm(line.split("#")[0].strip()) for line in open(has) if line.split("#")[0].strip()}
unused = {"jedi", "parso", "debugpy", "ipywidgets", "widgetsnbextension", "jupyterlab-widgets", "tables",
          "blosc2", "numexpr", "ndindex", "h2", "hpack", "hyperframe"}
wanted = [i["metadata"] for i in json.load(open(report))["install"]]
keep = [f"{m['name']}=={m['version']}" for m in wanted if norm(m["name"]) not in node | unused]
open(pins, "w").write("\n".join(sorted(keep)) + "\n")
print(f"{len(wanted)} packages resolved, {len(keep)} to pack (the node has the others)")
EOF
    python3 -m pip install --quiet --no-deps --no-compile "${target[@]}" --target "$tmp/site" -r "$tmp/pins.txt"
    # Pythia8's manuals, and of hdf5plugin's filters only Blosc (the one real file that needs a filter uses it)
    rm -rf "$tmp"/site/share/Pythia8/{htmldoc,pdfdoc,phpdoc} "$tmp"/site/share/man
    find "$tmp/site/hdf5plugin/plugins" -type f ! -name 'libh5blosc.*' -delete
    python3 - "$tmp/site/hdf5plugin/_config.py" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
text, n = re.subn(r"'embedded_filters': \([^)]*\)", "'embedded_filters': ('blosc',)", text)
assert n == 1, f"{path}: no embedded_filters to narrow"
open(path, "w").write(text)
EOF
    find "$tmp/site" -name __pycache__ -prune -exec rm -rf {} +
    mkdir -p $NODE
    tar -C "$tmp/site" -cf - . | xz -T0 -6 > $NODE/site.tar.xz.part && mv $NODE/site.tar.xz.part $NODE/site.tar.xz
    rm -rf $NODE/shared && mkdir -p $NODE/shared && cp -r ../shared/data $NODE/shared/data
    du -sh $NODE/site.tar.xz $NODE/shared
    ;;
suite)
    out=${2:?usage: $0 suite OUT [SECONDS] [PROFILE]}
    unpack
    mkdir -p "$out"
    status=0
    timeout -s INT "${3:-480}" python3 -m hepfm.cli notebooks run --profile "${4:-gpu-check}" --out /tmp/hepfm-run \
        > >(tee "$out/suite.log") 2>&1 || status=$?
    cp /tmp/hepfm-run/index.md "$out/" 2>/dev/null || true
    (cd /tmp/hepfm-run && find . -name metrics.json | tar -czf "$out/metrics.tar.gz" -T -) || true
    exit $status
    ;;
small)
    out=${2:?usage: $0 small OUT JETS_PER_CLASS GEN_SECONDS TRAIN_SECONDS [EPOCHS]}
    unpack
    mkdir -p "$out"
    jets=/tmp/hepfm-jets ckpt=/tmp/pet-small-jetclass
    { timeout -s TERM "${4:?}" python3 -m hepfm.cli generate jets --jets-per-class "${3:?}" --jets-per-shard 5000 \
        --seed 2026 --workers "${HEPFM_NODE_WORKERS:-16}" --out $jets || true
      timeout -s TERM "${5:?}" python3 -m hepfm.cli pretrain --data $jets --allow-incomplete --stream \
        --config small --epochs "${6:-3}" --batch-size 256 --lr 0.001 --patience 0 --seed 0 --num-workers 4 \
        --out $ckpt --resume || true
    } 2>&1 | tee "$out/small.log"
    if [ -f $ckpt/metrics.json ]; then  # the whole schedule ran
        cp $ckpt/config.json $ckpt/metrics.json $ckpt/model.safetensors "$out/"
    else  # stopped: the best finished epoch's checkpoint, and the history in the last epoch's state
        cp $ckpt/training/best/config.json $ckpt/training/best/model.safetensors "$out/" || true
        last=$(python3 -c "import json; print(json.load(open('$ckpt/training/latest.json'))['dir'])") &&
            cp "$ckpt/training/$last/state.json" "$out/" || true
    fi
    ls -la "$out"
    ;;
*)
    sed -n "2,/^set -euo/p" "$0" | sed "\$d"
    exit 2
    ;;
esac
