"""The embedded Airflow's SQL clock on SQLite (orchestrator/local/sqlite_clock.py): a queued run is
started as soon as its `run_after` has passed, not at the next whole second."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, func, insert, select

from orchestrator.local.airflow_env import airflow_env
from orchestrator.local.sqlite_clock import LOCAL_SETTINGS, install

SUB_SECOND = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


def test_sqlites_own_clock_has_whole_seconds_so_a_run_after_with_microseconds_is_not_yet_due():
    """The cause, in SQLite itself: CURRENT_TIMESTAMP has whole seconds, Airflow's run_after has
    microseconds, and text comparison puts '…:51.398266' after '…:51'."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT length(CURRENT_TIMESTAMP)").scalar() == 19
        assert conn.exec_driver_sql("SELECT '2026-12-07 15:35:51.398266' <= '2026-12-07 15:35:51'").scalar() == 0


def test_now_on_sqlite_has_sub_second_precision_and_a_past_run_after_is_due_at_once():
    install()
    engine = create_engine("sqlite://")
    runs = Table("dag_run", MetaData(), Column("id", Integer, primary_key=True), Column("run_after", DateTime))
    runs.metadata.create_all(engine)
    with engine.begin() as conn:
        now = conn.execute(select(func.now())).scalar()
        stored = conn.exec_driver_sql(str(select(func.now()).compile(engine))).scalar()  # as SQLite returns it
        assert SUB_SECOND.fullmatch(stored), stored
        assert abs(now.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=5)
        # a run due 5 ms ago (Airflow's naive UTC, microseconds) is found, whatever the fraction of the second
        due = datetime.now(UTC).replace(tzinfo=None) - timedelta(milliseconds=5)
        conn.execute(insert(runs).values(id=1, run_after=due))
        later = due + timedelta(seconds=2)
        conn.execute(insert(runs).values(id=2, run_after=later))
        assert conn.execute(select(runs.c.id).where(runs.c.run_after <= func.now())).scalars().all() == [1]


@pytest.mark.subprocess
def test_every_airflow_process_of_a_local_home_uses_the_sub_second_clock(tmp_path):
    """Airflow imports `<home>/config/airflow_local_settings.py` in every component: its engine's
    now() is the sub-second one."""
    env = airflow_env(tmp_path / "home", tmp_path / "dags", port=18081)
    assert (tmp_path / "home" / "config" / "airflow_local_settings.py").read_text() == LOCAL_SETTINGS
    code = (
        "from airflow import settings\n"
        "from sqlalchemy import func, select\n"
        "with settings.engine.connect() as conn:\n"
        "    print(conn.exec_driver_sql(str(select(func.now()).compile(settings.engine))).scalar())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert SUB_SECOND.fullmatch(done.stdout.strip().splitlines()[-1]), done.stdout
