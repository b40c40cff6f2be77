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
export PATH := $(abspath $(VENV))/bin:$(PATH)
# The dependency lock (requirements/*.txt, hash-pinned, compiled by `make lock` with uv):
# dev.txt is this venv and CI; operator.txt and runner.txt are the images.
UV_VERSION := 0.13.8
UV := $(MUSEPOSE_CACHE)/tools/uv-$(UV_VERSION)/bin/uv
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command 'make lock' --quiet

.PHONY: help lock images image-test image-deps test demo lint unit integration e2e crd binaries system-deps dev-up dev-down bench clean node-deps node-binaries e2e-real

help:
	@echo "make demo       local control plane + MinIO + operator + example Animation -> ./demo-output/"
	@echo "               (KEEP=1: then keep it up with the web page on loopback)"
	@echo "make test       lint + the whole test suite (what .ci/run runs)"
	@echo "make dev-up     start the local control plane and MinIO in the background"
	@echo "make dev-down   stop them"
	@echo "make bench      benchmarks (tables on stdout)"
	@echo "make images     build both images (docker if its daemon answers, else buildah)"
	@echo "make image-test build both images with buildah and run them as the chart's pods do"
	@echo "make e2e-real   the real-node suite (containerd + kubelet here, the built images: docs/tests.md)"
	@echo "make lock       recompile requirements/*.txt (hash-pinned) after changing pyproject.toml"

# Every dependency from the lock (exact versions, hashes checked), then the project alone.
$(VENV)/.installed: pyproject.toml requirements/dev.txt
	@$(PYTHON) requirements/lock.py check
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes \
	  -r requirements/dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# uv itself, once, outside the repo (only `make lock` needs it).
$(UV):
	$(PYTHON) -m venv $(dir $(UV))..
	$(dir $(UV))pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Resolve pyproject.toml into the three lock files: dev first (everything), then each image's
# extra constrained by it, so a package has the same version in all three. The stamp records
# which pyproject.toml they were compiled from (tests/unit/test_lock.py checks it).
lock: $(UV)
	$(PYTHON) requirements/lock.py build-requires > requirements/build.in
	$(UV) pip compile pyproject.toml requirements/build.in --extra operator --extra runner \
	  --extra dev $(LOCK_FLAGS) -o requirements/dev.txt
	$(UV) pip compile pyproject.toml requirements/build.in --extra operator \
	  -c requirements/dev.txt $(LOCK_FLAGS) -o requirements/operator.txt
	$(UV) pip compile pyproject.toml requirements/build.in --extra runner \
	  -c requirements/dev.txt $(LOCK_FLAGS) -o requirements/runner.txt
	$(PYTHON) requirements/lock.py stamp

system-deps:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
	  echo "installing ffmpeg (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
	@# tests/browser: Debian's chromium and its chromedriver (no browser download here).
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    chromium-driver >/dev/null; }

# Daemonless image builds (images/*.sh): buildah, and mmdebstrap for the Debian base.
image-deps:
	@command -v buildah >/dev/null && command -v mmdebstrap >/dev/null || { \
	  echo "installing buildah and mmdebstrap (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    buildah mmdebstrap >/dev/null; }

images:
	@if [[ -z "$${IMAGE_BUILDER:-}" ]] && docker info >/dev/null 2>&1; then :; \
	  else $(MAKE) --no-print-directory image-deps; fi
	bash images/build.sh operator
	bash images/build.sh runner

# Both images built (cached by content in $(MUSEPOSE_CACHE)/images) and run: tests/images.
image-test: $(VENV)/.installed image-deps
	MUSEPOSE_OPERATOR_IMAGE=$$(IMAGE_BUILDER=buildah bash images/build.sh operator) && \
	MUSEPOSE_RUNNER_IMAGE=$$(IMAGE_BUILDER=buildah bash images/build.sh runner) && \
	export MUSEPOSE_OPERATOR_IMAGE MUSEPOSE_RUNNER_IMAGE && \
	  $(PY) -m pytest -q -p no:cacheprovider tests/images

binaries: $(VENV)/.installed
	@bash tests/harness/build-binaries.sh >/dev/null
	@if [[ "$${MUSEPOSE_NODE:-}" == real ]]; then $(MAKE) --no-print-directory node-binaries; fi

# The real node (MUSEPOSE_NODE=real): runc, the CNI plugins, socat (the node's relays), buildah
# and nftables (the host-safety check reads its ruleset) from apt; kubelet, containerd and
# CoreDNS built from the Go module proxy, cached by version.
node-deps:
	@command -v runc >/dev/null && [[ -x /usr/lib/cni/bridge ]] && command -v socat >/dev/null \
	  && command -v buildah >/dev/null && command -v mmdebstrap >/dev/null \
	  && command -v nft >/dev/null || { \
	  echo "installing runc, the CNI plugins, socat, buildah, mmdebstrap, nftables (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends runc containernetworking-plugins socat buildah mmdebstrap \
	    nftables >/dev/null; }

node-binaries: node-deps
	@bash tests/harness/build-node-binaries.sh >/dev/null

# The chart from the built images on a real node (tests/realnode; docs/tests.md, "A real node").
# The images first (cached by content): the suite's own time is then the tests'.
e2e-real: $(VENV)/.installed system-deps binaries node-binaries
	IMAGE_BUILDER=buildah bash images/build.sh operator >/dev/null
	IMAGE_BUILDER=buildah bash images/build.sh runner >/dev/null
	MUSEPOSE_NODE=real $(PY) -m pytest -q -p no:cacheprovider --durations=0 -n 0 tests/realnode

lint: $(VENV)/.installed binaries
	$(VENV)/bin/ruff check operator runner tests bench requirements
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	@# actionlint (built from the Go module proxy by build-binaries.sh); shellcheck and pyflakes
	@# integrations off, so the result does not depend on what else the machine has.
	"$$(bash tests/harness/build-binaries.sh)/actionlint" -shellcheck= -pyflakes= \
	  .github/workflows/*.yml
	@# The docs site (mkdocs.yml, docs/): --strict turns a broken link or anchor, or a page left
	@# out of the nav, into a failure. Not --quiet: mkdocs 1.6 then drops the warnings strict
	@# counts and passes. NO_MKDOCS_2_WARNING: mkdocs-material's notice, not a finding.
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

crd: $(VENV)/.installed
	$(VENV)/bin/musepose-operator crd > crds/musepose.io_animations.yaml
	cp crds/musepose.io_animations.yaml charts/musepose-operator/crds/musepose.io_animations.yaml

# The whole suite, with the operator image built and run (tests/images/test_operator_image.py);
# the runner image's test is in make image-test (its cold build is too long for CI: docs/images.md).
test: $(VENV)/.installed system-deps binaries lint image-deps
	MUSEPOSE_OPERATOR_IMAGE=$$(IMAGE_BUILDER=buildah bash images/build.sh operator) && \
	export MUSEPOSE_OPERATOR_IMAGE && \
	  $(PY) -m pytest -q -p no:cacheprovider --durations=25 -n 2 --dist loadfile tests \
	    --ignore=tests/images/test_runner_image.py --ignore=tests/realnode
	@# CI's time: the runner image is make image-test's, the real-node suite make e2e-real's

dev-up: $(VENV)/.installed binaries
	@$(PY) -m tests.harness up

dev-down:
	@$(PY) -m tests.harness down

demo: $(VENV)/.installed system-deps binaries
	$(PY) -m tests.harness.demo $(if $(KEEP),--keep)

bench: $(VENV)/.installed system-deps
	$(PY) bench/runner_bench.py
	$(PY) bench/operator_bench.py
	$(PY) bench/vs_reference.py --cases tiny-cold --redo 0

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache .cache/site
