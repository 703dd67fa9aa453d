# The front door. `make run` and `make test` install what they need first.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCE ?= sample
ARGS ?=
# Some shells export PYTHONDONTWRITEBYTECODE; every pipeline step is a new process, so
# without cached bytecode each one recompiles its imports (seconds per step).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install run test test-fast lint format compile bench clean constraints

$(STAMP): pyproject.toml constraints.txt
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[all,dev]"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project + dev tools from the pinned constraints

run: install  ## dataops then mlops on the embedded default (DuckDB + local MLflow)
	$(BIN)/python -m pipelines run all --local --source $(SOURCE) $(ARGS)

test: install  ## the whole test suite (what CI runs)
	$(BIN)/pytest $(ARGS)

test-fast: install  ## unit tests only (no whole-pipeline runs)
	$(BIN)/pytest -m "not e2e and not docker and not slow" $(ARGS)

lint: install  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compile: install  ## pipeline YAML into build/pipelines
	$(BIN)/python -m pipelines compile --out build/pipelines

bench: install  ## benchmarks: prints the figures
	$(BIN)/python benchmarks/run.py $(ARGS)

constraints: install  ## re-resolve the pinned set after changing pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 --no-header --no-annotate -o constraints.txt.new
	{ echo "# Pinned set for local installs and every image (resolved for CPython 3.11, linux x86_64)."; \
	  echo "# Regenerate: make constraints"; grep -v '^kfp-mlops' constraints.txt.new; } > constraints.txt
	rm constraints.txt.new

clean:  ## remove run outputs and caches (keeps .venv)
	rm -rf stores build .pytest_cache .mypy_cache .ruff_cache dbt_transforms/target dbt_transforms/logs
