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

.PHONY: setup system-deps dev test test-fast lint format bench image deploy preview smoke clean

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

# One worker per core (at most 4), a test file to a worker: each worker starts its own
# emulators, and a file's module-scoped stack stays on one worker.
test: setup
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

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

# Last, the cost model turns bench/results.json into bench/README.md's cost table.
bench: setup $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench
	$(BENCH_VENV)/bin/python -m bench.cost_model

# Deployment (see docs/deploy.md). Both need the Pulumi CLI and a stack;
# `make image` also needs gcloud. STACK picks a stack other than the selected one.
PULUMI := pulumi $(if $(STACK),--stack $(STACK))

define need
	@command -v $(1) >/dev/null || { echo "error: $(1) is not installed: $(2)" >&2; exit 1; }
endef

# Builds the image with Cloud Build into the stack's registry and pins the stack's `image` to
# the pushed digest (a tag may be built twice; a digest never), ops/image.py.
image: $(STAMP)
	@$(PY) -m ops.image $(if $(STACK),--stack $(STACK)) $(if $(IMAGE_TAG),--tag $(IMAGE_TAG))

preview: $(STAMP)
	$(call need,pulumi,install the Pulumi CLI (see docs/deploy.md))
	$(PULUMI) preview --diff

deploy: $(STAMP)
	$(call need,pulumi,install the Pulumi CLI (see docs/deploy.md))
	$(PULUMI) up

# Checks the deployed stack (STACK picks one) and changes nothing; LOCAL=1 checks the running
# `make dev` instead. Without the Pulumi CLI it checks `make dev` if that runs (docs/deploy.md).
smoke: $(STAMP)
	@$(PY) -m ops.smoke $(if $(LOCAL),--local) $(if $(STACK),--stack $(STACK))

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
