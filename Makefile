# Two entry points (see README): `make demo` runs the notebook suite, `make test` the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# `make demo` installs what the notebooks need; `make test` adds the test tools and ONNX (the dev extra).
STAMP  := $(VENV)/.hepfm-installed
DEV_STAMP := $(VENV)/.hepfm-dev-installed
# The model benchmark's peer (omnilearned) and ONNX tools live in their own venv, never in the test environment.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.hepfm-installed
BENCH_ARGS ?=
PROFILE ?= demo

.PHONY: setup demo test lint bench bench-model bench-demo binder-check clean chromium foundation-data foundation-events-data \
	foundation-jets-data foundation-events foundation-pet-tiny foundation-pet-small

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(DEV_STAMP)

setup: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/hepfm notebooks run --profile $(PROFILE) --out runs/$(PROFILE)

# Debian's Chromium for the JupyterLab end-to-end test (tests/test_jupyterlab.py), installed where apt can run;
# elsewhere that one test is skipped and says why.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the JupyterLab end-to-end test will be skipped"

# The tests, after the linters, the formatter's check and the type checker; doctests run with the tests.
test: $(DEV_STAMP) chromium lint
	$(BIN)/python -m pytest --doctest-modules hepfm tests

lint: $(DEV_STAMP)
	$(BIN)/ruff check hepfm tests benchmarks notebooks
	$(BIN)/ruff format --check hepfm tests benchmarks
	$(BIN)/mypy

# Binder as repo2docker builds it, from binder/ alone in a fresh environment, then the smoke suite (~20 min).
binder-check: $(DEV_STAMP)
	$(BIN)/python -m pytest -m binder tests/test_binder.py

# Wall time and peak memory of every demo notebook, quiet and beside a busy process (benchmarks/RESULTS.md).
bench-demo: $(DEV_STAMP)
	$(BIN)/python benchmarks/bench_demo.py $(BENCH_ARGS)

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/bench_generate.py

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV) || python3 -m venv $(BENCH_VENV)
	@echo '*' > $(BENCH_VENV)/.gitignore
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[bench]"
	@touch $(BENCH_STAMP)

bench-model: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/bench_model.py $(BENCH_ARGS)

# The foundation's productions and pretraining (checkpoints/README.md), hours of CPU: kept in a cache outside the
# repository, run niced so that the machine stays usable. Every step resumes where a killed one stopped: re-run it.
HEPFM_CACHE ?= $(HOME)/.cache/hepfm
WORKERS ?= 2
NICE    := nice -n 10
JETS_1M := $(HEPFM_CACHE)/jetclass-1m
EVENTS_300K := $(HEPFM_CACHE)/events-12p-300k

foundation-data: foundation-events-data foundation-jets-data

foundation-events-data: $(STAMP)
	$(NICE) $(BIN)/hepfm generate events --events-per-process 25000 --events-per-shard 2500 --seed 2026 \
	    --workers $(WORKERS) --out $(EVENTS_300K)

foundation-jets-data: $(STAMP)
	$(NICE) $(BIN)/hepfm generate jets --jets-per-class 100000 --jets-per-shard 5000 --seed 2026 \
	    --workers $(WORKERS) --out $(JETS_1M)

# The two event checkpoints, side by side (one thread each), into the cache; checkpoints/ gets them by hand.
foundation-events: foundation-events-data
	for task in multiclass multilabel; do \
	  HEPFM_THREADS=1 $(NICE) $(BIN)/hepfm pretrain --model event_gnn --task $$task --data $(EVENTS_300K) \
	    --out $(HEPFM_CACHE)/event-gnn-$$task --epochs 15 --batch-size 256 --lr 0.002 --patience 4 --seed 0 \
	    --resume & \
	done; wait

# PET on the 10^6 jets, streamed shard by shard; `tiny` (Binder, the demo) and `small` (OmniLearn's size, for a GPU).
# Three epochs of 9x10^5 jets (tiny: about an hour each on two free cores, at the step rate of
# benchmarks/bench_stream_order.py): 2.9 times the jets the shipped checkpoint saw (3 epochs of 3.15x10^5).
foundation-pet-tiny foundation-pet-small: foundation-pet-%: foundation-jets-data
	$(NICE) $(BIN)/hepfm pretrain --data $(JETS_1M) --stream --config $* --epochs 3 --batch-size 128 --lr 0.001 \
	    --patience 0 --seed 0 --out $(HEPFM_CACHE)/pet-$*-jetclass --resume

clean:
	rm -rf runs .pytest_cache
