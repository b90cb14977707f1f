# The two commands a new user needs are `make dev` and `make test`; both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps dev test test-fast lint format bench clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

# Chromium drives the browser tests; the Firestore emulator backs every store test.
system-deps:
	@command -v chromium >/dev/null || { echo "installing chromium (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@$(PY) -m devstack.emulator --check

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

bench: setup
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	$(PY) -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
