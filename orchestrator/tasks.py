"""What the generated DAGs' tasks run, in the worker. No work here happens at DAG-parse time.

Each callable gets its arguments from the plan (op_kwargs) and the Airflow
context; it reports per-relation metadata on the Asset events it emits.
"""

from __future__ import annotations

import logging
from typing import Any

from .profiles import load_profile

log = logging.getLogger(__name__)


class TaskFailure(RuntimeError):
    """A task failed for a reason the message explains in full (no traceback needed)."""


def _asset(name: str, uri: str):
    from airflow.sdk import Asset

    return Asset(name=name, uri=uri)


def _set_extra(context: dict, name: str, uri: str, extra: dict[str, Any]) -> None:
    context["outlet_events"][_asset(name, uri)].extra = extra


def emit_tick(*, asset: str, **context) -> str:
    """The tick's only job: succeed, so Airflow emits its Asset."""
    stamp = str(context.get("logical_date") or context.get("run_id"))
    _set_extra(context, asset, asset, {"cycle": stamp})
    return stamp


def meltano_run(*, argv: list[str], extractors: list[str], outlets: dict[str, str], **context) -> dict[str, int]:
    """`meltano run ...` with the profile's environment; one Asset event per table, with its record count."""
    from .runners.meltano import MeltanoError, record_counts, run_meltano

    profile = load_profile()
    try:
        result = run_meltano(argv, environment=profile.meltano_environment, env=profile.environment(),
                             log=log.info)
    except MeltanoError as exc:
        raise TaskFailure(str(exc)) from None  # the message carries the log tail
    records: dict[str, int] = {}
    for extractor in extractors:
        for table, n in record_counts(result.metric_lines, extractor).items():
            records[table] = records.get(table, 0) + n
    for relation, uri in outlets.items():
        table = relation.split(".", 1)[1]
        _set_extra(context, relation, uri, {"records_extracted": records.get(table, 0),
                                            "duration_s": round(result.duration_s, 3),
                                            "environment": profile.meltano_environment})
    return records


def dbt_build(*, args: list[str], relations: dict[str, str], outlets: dict[str, str], **context) -> dict[str, Any]:
    """Run dbt for this task's nodes; an Asset event per relation built, with rows, duration and status.

    `relations` maps a node's unique_id to the relation it builds. Artifacts go to a
    target directory of this DAG's own (max_active_runs=1 makes it exclusive).
    """
    from .runners.dbt import DbtError, run_dbt, runs_dir

    profile = load_profile()
    env = profile.environment()
    dag_id = context["dag"].dag_id if context.get("dag") else "adhoc"
    task_id = context["task"].task_id if context.get("task") else "dbt"
    result = run_dbt([*args, "--target", env["DBT_TARGET"]], env=env,
                     target_path=runs_dir(env) / dag_id / task_id, raise_on_failure=False)
    for node in result.nodes:
        relation = relations.get(node.unique_id)
        if relation and relation in outlets:
            _set_extra(context, relation, outlets[relation], {
                "unique_id": node.unique_id, "status": node.status, "rows_affected": node.rows_affected,
                "duration_s": round(node.duration_s, 3)})
    summary = {
        "success": result.success, "duration_s": round(result.duration_s, 3),
        "models": {n.unique_id: n.status for n in result.of_type("model")},
        "tests": {n.unique_id: n.status for n in result.of_type("test")},
        "failed": [n.unique_id for n in result.failed],
    }
    if not result.success:
        raise TaskFailure(str(DbtError(result)))  # lists the failed models and tests
    return summary
