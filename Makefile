# Two entry points for a fresh machine: `make run` (the pipeline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint

$(BIN)/nanorec: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/nanorec

# Runs the default pipeline (synthetic shop); needs a git repository for DVC.
run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src stages tests benchmarks
