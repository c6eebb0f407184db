"""Bring your own dbt and Meltano project, end to end through a real Airflow (issue 11): the
bike-share fixture copied into pytest's tmp dir, `orchestrator init`, `check` and `run` as a user
types them (the CLI as a subprocess), one full cycle on a local Airflow the CLI starts. Asserted
on what a user would see: every DAG of the plan succeeded, the exact rows of every loaded table
and dbt relation in the fixture's DuckDB file, and that nothing was written anywhere else (the
local MariaDB and PostgreSQL servers, the repository's var/).

The same cycle from the built wheel, installed into a fresh virtualenv, is tests/test_wheel_install.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pytest
from fixture_project import BIN, DBT_ROWS, DBT_TARGET, RAW_ROWS, FixtureCopy, copy_fixture

from orchestrator.config import REPO_ROOT

# `services`: it reads the servers' databases and users before and after (nothing may be written
# there), so it runs in the servers lane, never beside a test that creates its databases (tests/lanes.py).
pytestmark = [pytest.mark.airflow, pytest.mark.meltano, pytest.mark.services]

# The DAGs one cycle runs on the fixture with the tags init proposes (docs/your-project.md).
FIXTURE_CYCLE_DAGS = {
    "tick",
    "meltano_tap_docks",
    "meltano_tap_fleet",
    "dbt_untagged",
    "dbt_ingest_quality",
    "dbt_operations",
    "dbt_planning",
    "dbt_untagged_2",
    "dbt_tests_ingest_quality_and_operations",
}
INIT_ARGS = ("--dbt-project", "dbt", "--meltano-project", "meltano", "--dbt-profiles-dir", "dbt_profiles")


def user_env(fx: FixtureCopy, **extra: str) -> dict[str, str]:
    """A user's shell: the fixture's variables set (init leaves them CHANGE-ME in the config; the
    process environment wins), nothing of Airflow's, the orchestrator's or dbt's of the caller."""
    drop = ("AIRFLOW", "ORCHESTRATOR_", "ORCHESTRATION_", "ALERTING_", "PIPELINE_PROFILE", "DBT_PROFILES_DIR")
    env = {k: v for k, v in fx.env.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def cli(
    argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 900
) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command line; its result and wall time (printed for the docs' timing note)."""
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - started
    shown = " ".join([Path(argv[0]).name, *argv[1:]])
    print(f"\n$ {shown}  -> {proc.returncode} in {wall:.1f}s")
    print(proc.stdout[-6000:])
    print(proc.stderr[-4000:], file=sys.stderr)
    return proc, wall


def states(stdout: str) -> dict[str, str]:
    """DAG -> state, from the table `orchestrator run` prints."""
    return dict(re.findall(r"^(\w+)\s+(success|failed|blocked|running|queued)\s", stdout, re.M))


def cycle_dags(orchestrator: Path, config: Path, env: Mapping[str, str]) -> set[str]:
    """The tick, Meltano and dbt DAGs of the config's plan, from `orchestrator plan --json`."""
    proc = subprocess.run(
        [str(orchestrator), "--config", str(config), "plan", "--json"], env=dict(env), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return {d["dag_id"] for d in json.loads(proc.stdout)["dags"] if d["kind"] in ("tick", "meltano", "dbt")}


def warehouse_rows(db: Path) -> dict[str, int]:
    """Rows of every relation of day 1's contract (RAW_ROWS, DBT_ROWS), read from the DuckDB file."""
    expected = {**RAW_ROWS[1], **DBT_ROWS[1]}
    with duckdb.connect(str(db), read_only=True) as conn:
        return {r: conn.execute(f"SELECT count(*) FROM {r}").fetchone()[0] for r in expected}  # type: ignore[index]


def server_state() -> dict[str, list]:
    """The databases of the local PostgreSQL and MariaDB, and MariaDB's users: what a run on a DuckDB
    project must leave as it was."""
    import psycopg2
    import pymysql

    pg = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database ORDER BY 1")
            pg_dbs = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT rolname FROM pg_roles ORDER BY 1")
            pg_roles = [r[0] for r in cur.fetchall()]
    finally:
        pg.close()
    my = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        with my.cursor() as cur:
            cur.execute("SHOW DATABASES")
            my_dbs = sorted(r[0] for r in cur.fetchall())
            cur.execute("SELECT user, host FROM mysql.user ORDER BY 1, 2")
            my_users = [list(r) for r in cur.fetchall()]
    finally:
        my.close()
    return {
        "postgres databases": pg_dbs,
        "postgres roles": pg_roles,
        "mariadb databases": my_dbs,
        "mariadb users": my_users,
    }


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Every file under `root` (relative path -> mtime in ns), but those under a directory named in `skip`."""
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)
    }


@pytest.mark.timeout(1500)
def test_init_check_run_on_the_fixture_through_a_real_airflow(tmp_path):
    fx = copy_fixture(tmp_path)
    env = user_env(fx, ORCHESTRATOR_AIRFLOW_HOME=str(tmp_path / "airflow"))
    orchestrator = BIN / "orchestrator"
    servers, repo_var = server_state(), tree(REPO_ROOT / "var")

    # In the folder that holds both projects, as docs/your-project.md does; --parse: no manifest yet.
    init, t_init = cli([str(orchestrator), "init", *INIT_ARGS, "--target", DBT_TARGET, "--parse"], fx.root, env)
    assert init.returncode == 0, init.stderr
    assert "ran dbt parse" in init.stdout and "check: 11 DAGs (6 dbt), 1 warning(s), 0 error(s)" in init.stdout
    config = fx.root / "orchestration.yml"

    check, t_check = cli([str(orchestrator), "--config", "orchestration.yml", "check"], fx.root, env)
    assert check.returncode == 0, check.stderr
    assert "11 DAGs (6 dbt), 1 warning(s), 0 error(s)" in check.stdout

    run, t_run = cli([str(orchestrator), "--config", "orchestration.yml", "run"], fx.root, env, timeout=1200)
    print(f"\nwall times: init --parse {t_init:.1f}s, check {t_check:.1f}s, run {t_run:.1f}s")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Cycle through Airflow on profile 'staging'" in run.stdout
    assert cycle_dags(orchestrator, config, env) == FIXTURE_CYCLE_DAGS
    assert states(run.stdout) == dict.fromkeys(FIXTURE_CYCLE_DAGS, "success")

    assert warehouse_rows(fx.warehouse) == {**RAW_ROWS[1], **DBT_ROWS[1]}
    # What the run wrote stayed in the copy: the config's var/ beside it, the Airflow home in tmp.
    assert (fx.root / "var" / "dbt").is_dir() and (tmp_path / "airflow" / "airflow.db").is_file()
    assert server_state() == servers
    assert tree(REPO_ROOT / "var") == repo_var, "wrote under the repository's var/"
