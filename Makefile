# The two commands a new user needs are `make dev` and `make test`; both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The benchmarks' baseline SDK (wechatpy) lives in its own venv, away from the tests.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps dev test test-fast lint format bench image deploy preview clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

# Chromium drives the browser tests (a CJK font makes their screenshots readable); the
# Firestore emulator backs every store test, the Pub/Sub emulator every delivery test.
system-deps:
	@command -v chromium >/dev/null || { echo "installing chromium (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@fc-list :lang=zh 2>/dev/null | grep -q . || { echo "installing a CJK font (apt-get)"; \
	  $(SUDO) apt-get install -y -qq fonts-wqy-zenhei >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fonts-wqy-zenhei >/dev/null; }; }
	@$(PY) -m devstack.emulator --check
	@$(PY) -m devstack.pubsub_emulator --check

dev: setup
	$(PY) -m devstack

test: setup
	$(PY) -m pytest

# Unit tests only: no emulator, no processes.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e" tests/service/wechat tests/mock_wechat/test_models.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	@touch $@

bench: setup $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench

# Deployment (see README, "Deploy to Google Cloud"). Both need the Pulumi CLI and a stack;
# `make image` also needs gcloud. STACK picks a stack other than the selected one.
PULUMI := pulumi $(if $(STACK),--stack $(STACK))
IMAGE_TAG ?= $(shell git describe --always --dirty 2>/dev/null || date +%Y%m%d%H%M%S)

define need
	@command -v $(1) >/dev/null || { echo "error: $(1) is not installed: $(2)" >&2; exit 1; }
endef

# Builds the image with Cloud Build into the stack's registry and sets the stack's `image`.
image:
	$(call need,pulumi,install the Pulumi CLI (see README))
	$(call need,gcloud,install the Google Cloud CLI and run 'gcloud auth login')
	@repo=$$($(PULUMI) stack output image_repository 2>/dev/null) || { 	  echo "error: the stack has no image_repository yet: run 'make deploy' once first" 	       "(without 'image' it creates the registry, the network and the secrets)" >&2; exit 1; }; 	project=$$($(PULUMI) config get gcp:project) && 	gcloud builds submit --project "$$project" --tag "$$repo/gateway:$(IMAGE_TAG)" . && 	$(PULUMI) config set image "$$repo/gateway:$(IMAGE_TAG)" && 	echo "image set to $$repo/gateway:$(IMAGE_TAG); now run: make deploy"

preview: $(STAMP)
	$(call need,pulumi,install the Pulumi CLI (see README))
	$(PULUMI) preview --diff

deploy: $(STAMP)
	$(call need,pulumi,install the Pulumi CLI (see README))
	$(PULUMI) up

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
