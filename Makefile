# musepose-operator: every install and build step the project needs lives here.
#   make demo   the main job on embedded defaults (local control plane, MinIO, operator, a video)
#   make test   the whole test suite (what .ci/run calls)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MUSEPOSE_CACHE ?= $(HOME)/.cache/musepose-dev
# Go-built binaries (kube-apiserver, etcd, MinIO, helm, kubectl) are cached outside the repo.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help test demo lint unit integration e2e crd binaries system-deps dev-up dev-down bench clean

help:
	@echo "make demo       local control plane + MinIO + operator + example Animation -> ./demo-output/"
	@echo "make test       lint + the whole test suite (what .ci/run runs)"
	@echo "make dev-up     start the local control plane and MinIO in the background"
	@echo "make dev-down   stop them"
	@echo "make bench      benchmarks (tables on stdout)"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[operator,runner,dev]'
	@touch $@

system-deps:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
	  echo "installing ffmpeg (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }

binaries: $(VENV)/.installed
	@bash tests/harness/build-binaries.sh >/dev/null

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check operator runner tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

crd: $(VENV)/.installed
	$(VENV)/bin/musepose-operator crd > crds/musepose.io_animations.yaml
	cp crds/musepose.io_animations.yaml charts/musepose-operator/crds/musepose.io_animations.yaml

test: $(VENV)/.installed system-deps binaries lint
	$(PY) -m pytest -q -p no:cacheprovider --durations=25 tests

dev-up: $(VENV)/.installed binaries
	@$(PY) -m tests.harness up

dev-down:
	@$(PY) -m tests.harness down

demo: $(VENV)/.installed system-deps binaries
	$(PY) -m tests.harness.demo

bench: $(VENV)/.installed system-deps
	$(PY) bench/runner_bench.py
	$(PY) bench/operator_bench.py
	$(PY) bench/vs_reference.py --cases tiny-cold --redo 0

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
