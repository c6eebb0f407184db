"""SQL `now()` with sub-second precision on SQLite, for the embedded Airflow's scheduler.

The scheduler starts a queued DAG run only once `run_after <= now()` (airflow/models/dagrun.py,
`get_queued_dag_runs_to_set_running`). SQLAlchemy renders `now()` on SQLite as CURRENT_TIMESTAMP,
which has whole seconds ('2026-12-07 15:35:51'), while Airflow stores `run_after` with microseconds
('2026-12-07 15:35:51.398266'): compared as text, the run's time stays "later than now" until the
clock reaches the next whole second. So every Asset-triggered run of the embedded profile waited
0-1 s (0.5 s on average) after it was created: in a cycle on a quiet machine, the tick's fan-out to
four DAGs was started 0.65 s after the runs were created, in the first scheduler loop after the
second turned (bench/cycle_ratio.py). PostgreSQL's now() has microseconds: no such wait.

`install()` renders `now()` on SQLite as the current time with milliseconds, in the format Airflow
stores ('YYYY-MM-DD HH:MM:SS.ffffff', the last three digits zero). Airflow uses `now()` only in such
comparisons (run_after and next_dagrun_create_after against the clock, and two API filters), never
to store a value. It is installed through Airflow's own hook, an `airflow_local_settings` module
in `<AIRFLOW_HOME>/config` (which Airflow puts on sys.path and imports in every component): the
local instance's home gets one (`write_local_settings`).
"""

from __future__ import annotations

from pathlib import Path

LOCAL_SETTINGS = """\
# Written by the orchestrator for its local Airflow (orchestrator/local/sqlite_clock.py says why).
from orchestrator.local.sqlite_clock import install

__all__: list[str] = []  # nothing for Airflow to copy into airflow.settings
install()
"""
# SQLite's %f is "SS.SSS"; the three zeros make Airflow's six-digit microseconds
NOW_SQL = "(STRFTIME('%Y-%m-%d %H:%M:%f000', 'now'))"  # parenthesised: valid in a DEFAULT too

_installed = False


def install() -> None:
    """Render `now()` on SQLite with sub-second precision, from now on, in this process."""
    global _installed
    if _installed:
        return
    from sqlalchemy.ext.compiler import compiles
    from sqlalchemy.sql.functions import now

    @compiles(now, "sqlite")
    def _now_on_sqlite(element, compiler, **kw) -> str:  # noqa: ARG001 - the compiler's signature
        return NOW_SQL

    _installed = True


def write_local_settings(home: Path) -> Path:
    """`<home>/config/airflow_local_settings.py`, which installs it in every Airflow process of
    this home (rewritten when it differs, so an upgrade of the orchestrator updates it)."""
    path = Path(home) / "config" / "airflow_local_settings.py"
    if not path.exists() or path.read_text() != LOCAL_SETTINGS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LOCAL_SETTINGS)
    return path
