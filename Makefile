# likeguard: everything a developer or CI runs, from a fresh clone.
#
#   make demo    install, start broker + Redis + a worker, stream traffic with attacks, show alerts
#   make test    install, start broker + Redis, run every test (unit, integration, alert rules)
#   make check   lint + type check + test
#   make up / make down     the dev stack (Tansu broker on :9092, Redis on :6379)
#   make bench   throughput / latency / memory figures (see BENCHMARKS.md)

SHELL := /bin/bash
# pipefail: a failing pip must fail the target even though its output goes through grep.
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install up down status demo test test-unit lint typecheck check bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "likeguard needs Python 3.11, found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PY) -m pip install --quiet -e ".[dev,eval]" 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PY) -c "import stream, detectors, schemas, faust, river, redis"
	touch $(STAMP)

install: $(STAMP)

up: install
	$(PY) scripts/devstack.py up --install-missing

down:
	@if [ -x $(PY) ]; then $(PY) scripts/devstack.py down; fi

status: install
	$(PY) scripts/devstack.py status

demo: up
	$(PY) scripts/demo.py

test: up
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check stream detectors schemas

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck test

bench: up
	$(PY) -m bench

clean: down
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache *.egg-info
