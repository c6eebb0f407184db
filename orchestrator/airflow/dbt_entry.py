"""The dbt task's callable as the dbt DAG file names it: dbt_task.dbt_build, imported where it runs.

The dbt DAG file names this callable at every parse, and dbt_task brings the dbt runner's
modules (~7 ms a parse, once per parse of the dbt file); a task process has them preloaded
(preload.py). Same name (Airflow serializes the callable's name) and arguments.
"""

from __future__ import annotations

from typing import Any


def dbt_build(**kwargs: Any) -> dict[str, Any]:
    """dbt_task.dbt_build(**kwargs): the task's arguments and Airflow's context."""
    from .dbt_task import dbt_build as run

    return run(**kwargs)
