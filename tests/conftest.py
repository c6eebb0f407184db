"""Shared fixtures. Services are real: the tests that need PostgreSQL or MariaDB
skip with the reason when one cannot be reached (.ci/run starts them first)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import settings

# The tiers (tests/tiers.py): markers, the `pure` marker on unmarked tests, and the guard that fails
# a pure test which starts a process or reaches a service. Imported hooks are conftest hooks.
from tiers import mark_tiers, pytest_runtest_call, pytest_runtest_makereport, pytest_runtest_setup, register  # noqa: F401

from orchestrator.config import REPO_ROOT, load_config

# Property tests assert on outcomes, never on time (speed lives in bench/): hypothesis's default
# 200 ms deadline per example fails them on a loaded 2-core machine, as it did under the full suite.
settings.register_profile("outcomes", deadline=None)
settings.load_profile("outcomes")

# Airflow reads its home at import: keep the tests' Airflow out of ~/airflow, one home per
# pytest-xdist worker (`make test` runs two) so that two in-process Airflows never share a file.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
os.environ.setdefault("AIRFLOW_HOME", str(REPO_ROOT / "var" / ("airflow-test" + (f"-{_WORKER}" if _WORKER else ""))))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

# The variables that choose which config and profile the product reads. Code that parses a DAG
# file init wrote sets ORCHESTRATION_CONFIG in its process (as Airflow's parser must): a test that
# does so in-process must not hand its temporary config to every test after it.
# Airflow's parsing context (which DAG a task process parses its file for) is two more: Airflow's own
# `_airflow_parsing_context_manager` leaves them set on exit when they were unset before, and every
# DagBag after it would then build that one DAG alone (33 failures on one xdist worker).
_SELECTING = (
    "ORCHESTRATION_CONFIG",
    "PIPELINE_PROFILE",
    "ORCHESTRATOR_CACHE_DIR",
    "_AIRFLOW_PARSING_CONTEXT_DAG_ID",
    "_AIRFLOW_PARSING_CONTEXT_TASK_ID",
)


@pytest.fixture(autouse=True)
def _config_selection_restored():
    before = {k: os.environ.get(k) for k in _SELECTING}
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def pytest_configure(config: pytest.Config) -> None:
    register(config)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tiers(items)


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require_services(*names: str) -> None:
    ports = {"postgres": 5432, "mariadb": 3306, "redis": 6379}
    down = [n for n in names if not _reachable(ports[n])]
    if down:
        pytest.skip(f"{', '.join(down)} not reachable on 127.0.0.1 (start with: scripts/services.sh start)")


def _require_setup(*paths: str) -> None:
    missing = [p for p in paths if not (REPO_ROOT / p).exists()]
    if missing:
        pytest.fail(f"not set up ({', '.join(missing)} missing): run `make test`, which sets up first")


@pytest.fixture(scope="session")
def meltano_installed() -> None:
    _require_setup("meltano/.meltano/.installed")


@pytest.fixture(scope="session")
def installed(meltano_installed) -> None:
    """The data-plane tests need `make setup`: Meltano plugins and the dbt manifest."""
    _require_setup("dbt_project/target/manifest.json")


def isolated_embedded(root: Path):
    """The embedded profile, isolated in `root`: its own source files, warehouse, Meltano state, dbt
    target directories and plan cache (nothing under the repository's var/, which test_byo_airflow,
    perhaps running beside it on another pytest-xdist worker, checks is left alone)."""
    profile = load_config(profile="embedded").profile
    env = profile.environment()
    env.update(
        DEMO_DATA_DIR=str(root / "demo_data"),
        WAREHOUSE_DUCKDB_PATH=str(root / "warehouse.duckdb"),
        MELTANO_DATABASE_URI=f"sqlite:///{root / 'meltano.db'}",
        DBT_RUNS_DIR=str(root / "dbt"),
        ORCHESTRATOR_CACHE_DIR=str(root / "cache"),
    )
    return profile, env


@pytest.fixture
def embedded(tmp_path: Path, meltano_installed):
    return isolated_embedded(tmp_path)


def pipeline_config(tmp: Path, manifest: Path | None = None, **defaults) -> Path:
    """The repo's orchestration.yml copied into `tmp` with absolute project paths (so the profile's
    relative var/ paths resolve under tmp), and `defaults` (retries...) overridden. `manifest`: one
    parsed for the test's own warehouse (`parsed_manifest`), else the repo's."""
    import yaml

    data = yaml.safe_load((REPO_ROOT / "orchestration.yml").read_text())
    data["dbt"]["project_dir"] = str(REPO_ROOT / "dbt_project")
    data["dbt"]["manifest"] = str(manifest or REPO_ROOT / "dbt_project" / "target" / "manifest.json")
    data["meltano"]["project_dir"] = str(REPO_ROOT / "meltano")
    data["alerting"]["config"] = str(REPO_ROOT / "alerting.yml")
    data["defaults"].update(defaults)
    path = tmp / "orchestration.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def parsed_manifest(tmp: Path, config, env: dict[str, str]) -> Path:
    """`dbt parse` of the configured project for a test's own warehouse (`env`: its
    WAREHOUSE_PG_DATABASE), with the product's dbt runner, into `tmp`. Relations are
    database.schema.table: the repo's manifest names the database `warehouse`, and a test that loads
    `warehouse_celery` with it would find no source loaded by Meltano (each dbt DAG scheduled on the
    tick alone, building on whatever is there)."""
    from orchestrator.runners.dbt import DbtProjectRef, run_dbt

    out = tmp / "dbt_target"
    run_dbt(["parse"], env=env, project=DbtProjectRef.of(config, env), target_path=out)
    return out / "manifest.json"


SLACK_TOKEN = "xoxb-test-alert-sinks"  # the bot token the local Slack fake accepts


@pytest.fixture(scope="module")
def alert_sinks():
    """A local Slack-compatible server and an SMTP server (tests/alerting_fakes.py) for a module's Airflow."""
    from alerting_fakes import FakeSlack, FakeSMTP

    with FakeSlack(tokens={SLACK_TOKEN}) as slack, FakeSMTP() as smtp:
        yield slack, smtp


def airflow_test_env(config, tmp: Path, slack=None, smtp=None, token: str | None = None) -> dict[str, str]:
    """The profile's environment for a test's own Airflow: its home, dbt target dirs, plan cache and
    state backups under `tmp`, and alerts to the local fakes (tests/alerting_fakes.py) when given."""
    env = config.profile.environment()
    env.update(
        ORCHESTRATOR_AIRFLOW_HOME=str(tmp / "airflow"),
        DBT_RUNS_DIR=str(tmp / "dbt"),
        ORCHESTRATOR_CACHE_DIR=str(tmp / "cache"),
        MELTANO_STATE_BACKUP_DIR=str(tmp / "backups"),
    )
    if slack is not None:
        env.update(SLACK_BOT_TOKEN=token or "", ALERTING_SLACK_BASE_URL=slack.api_url)
    if smtp is not None:
        env.update(ALERTING_SMTP_HOST="127.0.0.1", ALERTING_SMTP_PORT=str(smtp.port))
    return env


def run_kwargs(task) -> dict:
    """What a rendered task's callable runs with: its op_kwargs, and for a dbt task what it reads of
    the plan when it runs (dbt_task.task_arguments: the DAG file hands over no node lists)."""
    kwargs = dict(task.op_kwargs)
    if "plan_task" in kwargs:
        from orchestrator.airflow.dbt_entry import task_arguments

        kwargs |= task_arguments(*kwargs["plan_task"], kwargs.get("config_path"), kwargs.get("profile"))
    return kwargs


def dbt_task_starts(client, runs) -> dict[tuple[str, str], str]:
    """What each dbt task of these (dag_id, run_id) runs logged of how it started (dbt_task._warmth:
    `dbt: preloaded, project parsed at start` when its process inherited the preload)."""
    said = {}
    for dag_id, run_id in runs:
        for ti in client.task_instances(dag_id, run_id):
            for e in client.task_log(dag_id, run_id, ti["task_id"], ti["try_number"]):
                if str(e.get("event")).startswith("dbt: "):
                    said[dag_id, ti["task_id"]] = str(e.get("event"))
    return said


def drop_databases(postgres: list[str] = (), mariadb: list[str] = ()) -> None:
    """Drop the tests' own databases on the local PostgreSQL and MariaDB (if they exist)."""
    import sqlalchemy as sa

    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for db in postgres:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    engine.dispose()
    engine = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/mysql")
    with engine.begin() as conn:
        for db in mariadb:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{db}`"))
    engine.dispose()
