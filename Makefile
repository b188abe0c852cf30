# Two entry points for a fresh machine: `make demo` and `make test`.
# The declared range's ends (pyproject.toml): .venv (every test, e2e included) runs on the highest
# Python with the newest Airflow; the unit suite and one e2e also run on the lowest Python with the
# lowest Airflow we declare (test-pythons).
LOWEST_PYTHON := 3.10
HIGHEST_PYTHON := 3.13
# Found as .ci/python-matrix finds its interpreters (pyenv, then PATH); none fails the build loudly.
PYTHON ?= $(shell .ci/find-python $(HIGHEST_PYTHON))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml sandbox/pyproject.toml | cksum | cut -d' ' -f1)
# Three workers on the CI machine's 2 cores: a third of the suite's time is spent waiting (the
# sandbox's latency, Airflow's deferrals), which a third worker fills. Measured side by side under
# the same load: -n 2 18 min 8 s, -n 3 15 min 15 s, -n 4 13 min 56 s (that one doubles each e2e's own
# time, too close to the timing margins on a loaded machine). A test module stays on one worker,
# which keeps its module-scoped fixtures (an Airflow home, a sandbox) to itself. The floor's unit
# leg (.ci/python-matrix) too: 3 min 15 s on 2 workers, 2 min 23 s on 3 (quiet).
PYTEST_ARGS ?= -n 3 --dist loadfile
FLOOR_AIRFLOW := 3.0.6
# What Airflow 3.0.6's constraints file pins and newer releases broke: universal-pathlib 0.3 (its
# ObjectStoragePath refuses every URL); cadwyn, fastapi, pydantic (its execution API answers every
# task start with a validation error, so `airflow dags test` fails).
FLOOR_PINS := universal-pathlib<0.3 cadwyn<5.5 fastapi<0.117 pydantic<2.12
# The one real-Airflow run on the floor: an export into S3 (moto) through the built wheel.
FLOOR_E2E := tests/e2e/test_object_storage.py::test_s3_with_destination_conn_id
UNIT_MARKS := not e2e and not heavy
# Azure Blob emulator for tests/e2e/test_object_storage.py, from the npm registry, project-local.
# 3.35 runs on Node 20, the node here (3.37 needs Node 22).
AZURITE_VERSION := 3.35.0
AZURITE := .cache/azurite/node_modules/.bin/azurite-blob

.PHONY: install lint typecheck check test test-pythons dist demo bench sandbox clean redis-server azurite

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "no python$(HIGHEST_PYTHON) to build $(VENV) with (make PYTHON=... picks one)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv

# The provider and, beside it, the sandbox distribution (tests, demo, benchmarks): both editable.
$(STAMP): pyproject.toml sandbox/pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --python $(BIN)/python -q -e ".[test]" -e ./sandbox
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The inner loop: lint, types and the unit suite (no e2e, no heavy), on this .venv's Airflow.
check: lint typecheck redis-server
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) -m "$(UNIT_MARKS)"

# The floor's venv is built (network and disk bound, ~1 min) while lint, mypy and the main suite
# run; its suite runs after theirs, so the two never compete for the cores.
MATRIX_LOG := .cache/python-matrix-prepare.log
test: install redis-server azurite
	@mkdir -p .cache
	@$(MAKE) --no-print-directory MATRIX_PHASE=prepare test-pythons >$(MATRIX_LOG) 2>&1 & prepare=$$!; \
	status=0; { $(MAKE) --no-print-directory lint typecheck && $(BIN)/python -m pytest -q $(PYTEST_ARGS); } \
		|| status=$$?; \
	wait $$prepare || { echo "== building the Python matrix failed:" >&2; cat $(MATRIX_LOG) >&2; exit 1; }; \
	exit $$status
	$(MAKE) --no-print-directory MATRIX_PHASE=run test-pythons

# .venv-3.10: Airflow $(FLOOR_AIRFLOW), the provider from its built wheel; the unit suite, then
# $(FLOOR_E2E). MATRIX_PHASE=prepare|run: build the venv only, or run in the one built.
test-pythons: install
	MATRIX_PHASE="$(MATRIX_PHASE)" FLOOR_PINS="$(FLOOR_PINS)" FLOOR_E2E="$(FLOOR_E2E)" \
		bash .ci/python-matrix $(BIN)/uv "$(UNIT_MARKS)" $(LOWEST_PYTHON)=$(FLOOR_AIRFLOW)=wheel

# The sdist and wheel users would get from PyPI, checked as PyPI checks them (twine check).
dist: install
	rm -rf dist
	$(BIN)/uv build -q --out-dir dist .
	$(BIN)/twine check --strict dist/*

$(AZURITE):
	@command -v npm >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@$(AZURITE_VERSION)

azurite: $(AZURITE)

# The shared-limit tests start a real Redis (Debian's redis-server); CI runs as root on a clean machine.
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }

# The demo's own venv holds what a user installs (the provider, no test extras) plus the sandbox, so
# it shows what a user's install can do, not what the test extras add.
# The demo keeps the machine's default python3: what a user trying it most likely has.
DEMO_PYTHON ?= python3
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed-$(shell cat pyproject.toml sandbox/pyproject.toml | cksum | cut -d' ' -f1)

$(DEMO_STAMP): pyproject.toml sandbox/pyproject.toml | $(BIN)/python
	rm -rf $(DEMO_VENV)
	$(BIN)/uv venv -q --python $(DEMO_PYTHON) $(DEMO_VENV)
	$(BIN)/uv pip install --python $(DEMO_VENV)/bin/python -q -e . -e ./sandbox
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python -m analytics_export_sandbox.demo --dags-folder example_dags --output demo-output --airflow-home .demo-airflow

# dlt (the `bench` extra) runs beside our operators as a peer; it is never a runtime dependency.
# A part only: make bench BENCH_ARGS="--only limits,requests" (python -m benchmarks.run --help).
bench: install
	$(BIN)/uv pip install --python $(BIN)/python -q -e ".[test,bench]"
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Serves on sandbox/analytics_export_sandbox/__main__.py's DEFAULT_PORT (8765), not 8080: Airflow's api-server default.
sandbox: install
	$(BIN)/python -m analytics_export_sandbox

clean:
	rm -rf $(VENV) .venv-* .cache dist demo-output .demo-airflow .pytest_cache .ruff_cache .mypy_cache build *.egg-info sandbox/build sandbox/*.egg-info
