# Ledger: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

-include mk/*.mk

.PHONY: help install run dev test test-fast lint format typecheck audit load load-smoke chaos bench bench-short lock clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt service/pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	@touch $@

install: $(STAMP) ## Install PostgreSQL's binaries and the Python environment (idempotent)

run: $(STAMP) ## Serve on 127.0.0.1:8080 (embedded PostgreSQL unless LEDGER_DATABASE_URL is set)
	exec $(PY) -m ledger serve --migrate

dev: $(STAMP) ## Serve and restart whenever the code changes
	$(VENV)/bin/watchfiles --filter python '$(PY) -m ledger serve --migrate' service/ledger

test: $(STAMP) lint typecheck audit ## Run every test and check (what CI runs)
	$(PY) -m pytest

test-fast: $(STAMP) ## Unit and integration tests only
	$(PY) -m pytest tests/unit tests/integration

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on the service
	$(VENV)/bin/mypy service/ledger

audit: $(STAMP) ## Audit the locked dependencies for known vulnerabilities (says so when it cannot)
	$(PY) scripts/audit_dependencies.py

SCENARIO ?= steady
LOAD_ARGS ?=
load: $(STAMP) ## k6 load run (SCENARIO=smoke|steady|spike|hot|retry_storm|mix) against make run's service or LEDGER_URL
	$(PY) scripts/load.py $(SCENARIO) $(LOAD_ARGS)

load-smoke: $(STAMP) ## A short k6 smoke run against a throwaway service, with the ledger checks
	$(PY) scripts/load.py smoke --start-service -e DURATION=10s

CHAOS_ARGS ?=
chaos: $(STAMP) ## Fault drills: against make up's stack (real toxiproxy) if it runs, else a local loopback stack
	$(PY) -m chaos.run $(CHAOS_ARGS)

bench: $(STAMP) ## Benchmark the service against raw PostgreSQL in one run (bench/README.md; ~50 min)
	$(PY) bench/run.py

bench-short: $(STAMP) ## The benchmark in ~4 min: 1 repeat, 8 and 32 clients, 5 s a point
	$(PY) bench/run.py --short

lock: ## Re-lock requirements/*.txt (with hashes) from requirements/*.in
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 requirements/runtime.in -o requirements/runtime.txt
	$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 requirements/dev.in -o requirements/dev.txt

clean: ## Remove the virtual environment and caches (keeps .ledger/, the embedded database)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
