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
                 $(wildcard meltano/extract/tap-jsonl-dir/pyproject.toml meltano/extract/tap-jsonl-dir/tap_jsonl_dir/*.py)
DBT_FILES := $(shell find dbt_project -path dbt_project/target -prune -o -path dbt_project/logs -prune \
               -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print 2>/dev/null)

.PHONY: run test setup clean airflow-up up down status

run: setup
	$(BIN)/orchestrator run

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed meltano/.meltano/.installed dbt_project/target/manifest.json

# Python environment: uv (from PyPI) installs the pinned set in constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e '.[test,dev,mailsink]'
	touch $@

# Meltano plugins, each in its own virtualenv under meltano/.meltano/.
meltano/.meltano/.installed: $(VENV)/.installed $(MELTANO_FILES)
	cd meltano && ../$(BIN)/meltano install
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

# Regenerate the pinned dependency set after editing pyproject.toml.
constraints: $(VENV)/.installed
	$(BIN)/uv pip compile --python 3.11 pyproject.toml --extra test --extra dev --extra mailsink -o constraints.txt

clean:
	rm -rf var meltano/.meltano dbt_project/target dbt_project/logs
