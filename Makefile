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

.PHONY: setup system-deps dev test test-fast lint format bench clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

# Chromium drives the browser tests (a CJK font makes their screenshots readable); the
# Firestore emulator backs every store test.
system-deps:
	@command -v chromium >/dev/null || { echo "installing chromium (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@fc-list :lang=zh 2>/dev/null | grep -q . || { echo "installing a CJK font (apt-get)"; \
	  $(SUDO) apt-get install -y -qq fonts-wqy-zenhei >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fonts-wqy-zenhei >/dev/null; }; }
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

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	@touch $@

bench: setup $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
