"""What the generated DAGs' tasks run, in the worker. No work here happens at DAG-parse time.

Each callable gets its arguments from the plan (op_kwargs) and the Airflow
context; it reports per-relation metadata on the Asset events it emits.
"""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path
from typing import Any

from ..profiles import load_profile

log = logging.getLogger(__name__)


class TaskFailure(RuntimeError):
    """A task failed for a reason the message explains in full (no traceback needed).

    `alert_context` is what the alerting callbacks add to the alert (see alerting.airflow):
    a one-line error for the alert's signature, and the Meltano or dbt detail."""

    def __init__(self, message: str, alert_context: dict[str, Any] | None = None):
        super().__init__(message)
        self.alert_context = alert_context or {}


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


def meltano_run(
    *, argv: list[str], extractors: list[str], outlets: dict[str, str], state_ids: list[str] | None = None, **context
) -> dict[str, int]:
    """`meltano run ...` with the profile's environment; one Asset event per table, with its record count."""
    from ..runners.meltano import MeltanoError, record_counts, run_meltano

    profile = load_profile()
    try:
        result = run_meltano(argv, environment=profile.meltano_environment, env=profile.environment(), log=log.info)
    except MeltanoError as exc:
        # the message carries the log tail; the alert gets it apart, with the extractor and state ID
        raise TaskFailure(
            str(exc),
            {
                "error": exc.summary(),
                "meltano": {
                    "extractor": ", ".join(extractors),
                    "state_id": ", ".join(state_ids or []) or None,
                    "log_tail": exc.tail[-30:],
                },
            },
        ) from None
    records: dict[str, int] = {}
    for extractor in extractors:
        for table, n in record_counts(result.metric_lines, extractor).items():
            records[table] = records.get(table, 0) + n
    for relation, uri in outlets.items():
        table = relation.split(".", 1)[1]
        _set_extra(
            context,
            relation,
            uri,
            {
                "records_extracted": records.get(table, 0),
                "duration_s": round(result.duration_s, 3),
                "environment": profile.meltano_environment,
            },
        )
    return records


def dbt_build(
    *,
    args: list[str],
    relations: dict[str, str],
    outlets: dict[str, str],
    owners: dict[str, str] | None = None,
    tag: str | None = None,
    **context,
) -> dict[str, Any]:
    """Run dbt for this task's nodes; an Asset event per relation built, with rows, duration and status.

    `relations` maps a node's unique_id to the relation it builds. Artifacts go to a
    target directory of this DAG's own (max_active_runs=1 makes it exclusive).
    """
    from ..runners.dbt import DbtError, run_dbt, runs_dir

    profile = load_profile()
    env = profile.environment()
    dag_id = context["dag"].dag_id if context.get("dag") else "adhoc"
    task_id = context["task"].task_id if context.get("task") else "dbt"
    target_path = runs_dir(env) / dag_id / task_id
    # No --target: profiles.yml picks it from DBT_TARGET, and an explicit one would not match the
    # published partial-parse state (made without it), costing a full re-parse per target directory.
    result = run_dbt(list(args), env=env, target_path=target_path, raise_on_failure=False)
    for node in result.nodes:
        relation = relations.get(node.unique_id)
        if relation and relation in outlets:
            _set_extra(
                context,
                relation,
                outlets[relation],
                {
                    "unique_id": node.unique_id,
                    "status": node.status,
                    "rows_affected": node.rows_affected,
                    "duration_s": round(node.duration_s, 3),
                },
            )
    summary = {
        "success": result.success,
        "duration_s": round(result.duration_s, 3),
        "models": {n.unique_id: n.status for n in result.of_type("model")},
        "tests": {n.unique_id: n.status for n in result.of_type("test")},
        "failed": [n.unique_id for n in result.failed],
    }
    if not result.success:  # the message lists the failed models and tests; the alert gets them with owners
        raise TaskFailure(
            str(DbtError(result)), dbt_alert_context(target_path / "run_results.json", result, owners or {}, tag)
        )
    return summary


def dbt_alert_context(run_results: Path, result, owners: dict[str, str], tag: str | None) -> dict[str, Any]:
    """The failed models and tests from dbt's run_results.json (the runner's own records if it
    was not written), each with its owners (meta.owner; a test's are its models')."""
    import json

    try:
        rows = [
            (r["unique_id"], r["status"], r.get("message") or "")
            for r in json.loads(run_results.read_text())["results"]
        ]
    except (OSError, ValueError, KeyError):
        rows = [(n.unique_id, n.status, n.message or "") for n in result.nodes]
    failed = [(u, st, msg) for u, st, msg in rows if st in ("error", "fail", "runtime error")]
    failures = [
        {
            "name": u.split(".")[2] if u.count(".") >= 2 else u,
            "resource_type": u.split(".", 1)[0],
            "owners": [o.strip() for o in owners.get(u, "").split(",") if o.strip()],
            "message": msg,
        }
        for u, st, msg in failed
    ]
    skipped = sum(1 for _, st, _ in rows if st == "skipped")
    what = ", ".join(f"{f['resource_type']} {f['name']}" for f in failures[:3]) + (" …" if len(failures) > 3 else "")
    error = f"dbt {' '.join(result.args[:1])}: {len(failures)} failed ({what})"
    if result.exception:
        error = f"dbt {' '.join(result.args[:1])} could not run: {result.exception}"
    if skipped:
        error += f"; {skipped} skipped"
    return {"error": error, "dbt": {"tag": tag, "failures": failures}}


def alerts_redeliver(**context) -> dict[str, int]:
    """The alerting DAG: send what the outbox still holds."""
    from alerting.airflow import redeliver

    from ..plan import load_config
    from .callbacks import airflow_alerts

    return redeliver(alerts=airflow_alerts(load_config()), **context)


def alerts_lateness(*, expectations: list[dict], tick: dict[str, str], **context) -> list[dict]:
    """The alerting DAG: `late` alerts for dbt DAGs not run in time (as of the `as_of` param, or now)."""
    from datetime import datetime

    from alerting.airflow import check_lateness

    from ..plan import load_config
    from .callbacks import airflow_alerts

    as_of = (context.get("params") or {}).get("as_of")
    now = datetime.fromisoformat(as_of) if as_of else None
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return check_lateness(
        expectations=expectations, tick=tick, alerts=airflow_alerts(load_config()), now=now, **context
    )
