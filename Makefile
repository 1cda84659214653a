# toolkiln: the two commands of the quick start, and what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test demo test lint typecheck conformance bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	cd tests/clients && npm ci --no-audit --no-fund

# The main job on the embedded default: serve the conformance fixtures over stdio.
demo: install
	$(BIN)/toolkiln tools --conformance-fixtures

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy

test: install-test lint typecheck
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python benchmarks/bench_call_latency.py

clean:
	rm -rf $(VENV) tests/clients/node_modules .toolkiln .toolkiln-test-home
