# Each target bootstraps .venv on its own: a fresh clone needs only Python (and, for the PostgreSQL
# tests, Debian's postgresql package, which `make test` installs when it is missing and it runs as root).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# pytest-xdist workers for `make test`, each with its own throwaway PostgreSQL; TEST_WORKERS=0 runs the
# suite in one process. Three on a two-core machine: with two, nearly a third of the CPU sat idle while tests
# waited on real processes, servers and lock timeouts (pytest 5:22 with two, 4:24 with three, quiet machine).
# Work-stealing keeps every worker busy past the few long process tests.
TEST_WORKERS ?= 3

.PHONY: demo test lint typecheck bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: $(DEV_STAMP)
	$(BIN)/mypy --strict -p bapp_cli

# pytest's assertion-rewritten test modules are cached while mypy runs: on a fresh clone each worker rewrote every
# one of them side by side (~20 CPU s; 12 with the cache, 32 without). PYTHONDONTWRITEBYTECODE (set in some
# container images) would keep pytest from writing that cache.
test: $(DEV_STAMP)
	bash scripts/ensure-postgres.sh
	$(BIN)/ruff check src tests bench migrations
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -p no:cacheprovider --collect-only -q >/dev/null 2>&1 & \
	$(BIN)/mypy --strict -p bapp_cli; typed=$$?; wait; exit $$typed
	BAPP_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

docs: $(RUNTIME_STAMP)
	$(BIN)/python -m bapp_cli.cli.reference > docs/cli.md

bench: $(DEV_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .demo .bench dist build
