# The two commands a new user needs (see README):
#   make run    set everything up, then run one full pipeline cycle through Airflow (embedded profile)
#   make test   set everything up, then run the test suite
# Every set-up step is stamped against its inputs, so a second run skips it.

PYTHON  ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
UV_VERSION := 0.13.9
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false

MELTANO_FILES := $(wildcard meltano/meltano.yml meltano/extract/*.meltano.yml meltano/load/*.meltano.yml) \
                 $(wildcard meltano/extract/tap-jsonl-dir/pyproject.toml meltano/extract/tap-jsonl-dir/tap_jsonl_dir/*.py) \
                 $(wildcard meltano/load/target-duckdb-fixed/pyproject.toml meltano/load/target-duckdb-fixed/target_duckdb_fixed/*.py)
# The test fixture's own Meltano project (tests/fixtures/bikeshare; tests/fixture_project.py reads the same stamp).
FIXTURE_MELTANO := tests/fixtures/bikeshare/meltano
FIXTURE_MELTANO_FILES := $(wildcard $(FIXTURE_MELTANO)/meltano.yml $(FIXTURE_MELTANO)/extract/tap-bikeshare-csv/pyproject.toml) \
                 $(wildcard $(FIXTURE_MELTANO)/extract/tap-bikeshare-csv/tap_bikeshare_csv/*.py) \
                 $(wildcard meltano/load/target-duckdb-fixed/pyproject.toml meltano/load/target-duckdb-fixed/target_duckdb_fixed/*.py)
DBT_FILES := $(shell find dbt_project -path dbt_project/target -prune -o -path dbt_project/logs -prune \
               -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print 2>/dev/null)

.PHONY: run test test-fast lint setup clean airflow-up up down status screenshots

run: setup
	$(BIN)/orchestrator run

# Over TEST_WORKERS pytest-xdist processes (tests/lanes.py): the tests that reach the database servers
# run one at a time in one lane, the Airflow tests are dealt into that lane and two more (so at most
# three Airflows at once on 2 cores, mostly waiting), the lanes start first, and the rest of the suite
# fills each worker's end.
TEST_WORKERS ?= 3
test: setup
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

# The pure tier (tests/tiers.py): no process, no service, nothing of `make setup` but the virtualenv;
# spread over FAST_WORKERS processes (pytest-xdist), under a minute on 2 cores.
FAST_WORKERS ?= 2
test-fast: $(VENV)/.installed
	$(BIN)/pytest -m pure -n $(FAST_WORKERS) $(PYTEST_ARGS)

# What .ci/run checks before the tests (and .pre-commit-config.yaml before each commit).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The repository's own packages are compiled too, as the virtualenv is (see its rule): each DAG-file
# parse (one process per file, every 30 s) and each task imports them: compiling our ~80
# modules from source was 0.4 s of a 0.6 s DagBag of dags/ (compileall redoes only what changed).
setup: $(VENV)/.installed meltano/.meltano/.installed dbt_project/target/manifest.json $(FIXTURE_MELTANO)/.meltano/.installed
	$(BIN)/python -m compileall -q orchestrator alerting demo_data dags

# Python environment: uv (from PyPI) installs the pinned set in constraints.txt, compiled to bytecode:
# uv does not compile by default, and where PYTHONDONTWRITEBYTECODE is set nothing writes .pyc later,
# so every Airflow, dbt and CLI process (dozens per test run) would compile its imports again (an
# `import airflow` took 6 s of CPU instead of 2).
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[demo,test,dev]'
	touch $@

# Meltano plugins, each in its own virtualenv under meltano/.meltano/.
# Compiled to bytecode too (see the virtualenv's rule): every `meltano run` starts a tap and a target.
meltano/.meltano/.installed: $(VENV)/.installed $(MELTANO_FILES)
	cd meltano && ../$(BIN)/meltano install
	$(BIN)/python -m compileall -q meltano/.meltano
	touch $@

# The fixture's plugins, once per machine (its pip_urls are relative: run from its directory).
$(FIXTURE_MELTANO)/.meltano/.installed: $(VENV)/.installed $(FIXTURE_MELTANO_FILES)
	cd $(FIXTURE_MELTANO) && $(CURDIR)/$(BIN)/meltano install
	$(BIN)/python -m compileall -q $(FIXTURE_MELTANO)/.meltano
	touch $@

# dbt: packages (none today) and the manifest the orchestration plan reads.
dbt_project/target/manifest.json: $(VENV)/.installed $(DBT_FILES)
	cd dbt_project && ../$(BIN)/dbt deps --profiles-dir . && ../$(BIN)/dbt parse --profiles-dir .
	touch $@

# The profile's Airflow in the foreground until Ctrl-C: `orchestrator up` (UI and API at the printed
# URL; user admin, password in var/airflow/local_secrets.json).
airflow-up: setup
	$(BIN)/orchestrator up

# The profile's Airflow as a background service (PIPELINE_PROFILE=production: PostgreSQL metadata,
# CeleryExecutor with Redis and 2 workers; scripts/services.sh starts the databases and Redis).
up: setup
	@if [ "$$PIPELINE_PROFILE" = production ]; then bash scripts/services.sh start; fi
	$(BIN)/orchestrator up --detach
down:
	$(BIN)/orchestrator down
status:
	$(BIN)/orchestrator status

# The README's screenshots (docs/images/): a real local Airflow on the demo in var/screenshots/, one
# cycle, then headless Chromium (Debian's `chromium`: apt-get install chromium) driven by Playwright.
screenshots: setup $(VENV)/.screenshots
	$(BIN)/python scripts/screenshots.py $(SCREENSHOTS_ARGS)

$(VENV)/.screenshots: $(VENV)/.installed
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e '.[demo,test,dev,screenshots]'
	touch $@

# docker-compose.yml end to end on this machine (podman, stand-in base images where no registry is
# reachable): boot, one cycle on the CeleryExecutor, rows and an alert e-mail checked, then all
# removed. 8-13 min with the images built, so not part of `make test` (docs/docker-compose.md).
.PHONY: compose-smoke
compose-smoke:
	bash scripts/compose_smoke.sh

# Regenerate the pinned dependency set after editing pyproject.toml.
constraints: $(VENV)/.installed
	$(BIN)/uv pip compile --python 3.11 pyproject.toml --all-extras -o constraints.txt

clean:
	rm -rf var meltano/.meltano dbt_project/target dbt_project/logs $(FIXTURE_MELTANO)/.meltano
