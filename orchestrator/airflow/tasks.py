"""What the generated DAGs' tasks run, in the worker. No work here happens at DAG-parse time.

Each callable gets its arguments from the plan (op_kwargs) and the Airflow
context; it reports per-relation metadata on the Asset events it emits.

Every DAG parse imports this module (the DAGs name its callables), so what only a task run needs
(the Meltano runner, the translator, reconciliation: about 10 ms) is imported where it runs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from alerting.airflow import check_lateness, redeliver

from ..config import OrchestrationConfig, load_config
from ..plan.cycles import CYCLE_KEY, cycle_of
from .callbacks import airflow_alerts

if TYPE_CHECKING:
    from ..runners.reconcile import StreamCheck

log = logging.getLogger(__name__)


class TaskFailure(RuntimeError):
    """A task failed for a reason the message explains in full (no traceback needed).

    `alert_context` is what the alerting callbacks add to the alert (see alerting.airflow):
    a one-line error for the alert's signature, and the Meltano or dbt detail."""

    def __init__(self, message: str, alert_context: dict[str, Any] | None = None):
        super().__init__(message)
        self.alert_context = alert_context or {}


def set_extra(context: dict, name: str, uri: str, extra: dict[str, Any]) -> None:
    """The `extra` of the event Airflow emits for this outlet when the task succeeds."""
    context["outlet_events"][Asset(name=name, uri=uri)].extra = extra


def emit_tick(*, asset: str, config_path: str | None = None, profile: str | None = None, **context) -> str:
    """The tick's only job: succeed, so Airflow emits its Asset, named after the cycle it starts
    (its logical date; a manual run without one: when it was asked to run)."""
    dag_run = context.get("dag_run")
    when = context.get("logical_date") or getattr(dag_run, "run_after", None)
    stamp = when.isoformat() if isinstance(when, datetime) else str(when or context.get("run_id"))
    set_extra(context, asset, asset, {CYCLE_KEY: stamp})
    return stamp


def triggering_cycle(context: dict) -> str | None:
    """The cycle this run belongs to: the newest one named by the Asset events that started it
    (None: started by hand or by a cron of its own)."""
    events = context.get("triggering_asset_events") or {}
    return cycle_of(getattr(e, "extra", None) for evs in events.values() for e in evs)


def latest_cycle(context: dict, inputs: dict[str, str]) -> str | None:
    """The newest cycle named by the latest event of each of `inputs` (Asset name -> URI, which
    the task declares as inlets): the cycle a run started by hand catches up to."""
    extras = []
    for name, uri in inputs.items():
        events = context["inlet_events"][Asset(name=name, uri=uri)].ascending(False).limit(1)
        extras.append(events[0].extra if len(events) else None)
    return cycle_of(extras)


def meltano_run(
    *,
    argv: list[str],
    extractors: list[str],
    outlets: dict[str, str],
    tables: dict[str, str],
    state_ids: list[str] | None = None,
    reconcile: dict[str, list[str]] | None = None,
    cycle_from: dict[str, str] | None = None,
    config_path: str | None = None,
    profile: str | None = None,
    **context,
) -> dict[str, int]:
    """`meltano run ...` in the configured Meltano project, with the profile's environment; one Asset
    event per table, with its record count (`tables`: the plan's Asset -> the table it counts by),
    its reconciliation (`reconcile`: Asset -> [relation, table, extractor]; runners/reconcile.py)
    and the cycle it loads for: the tick's that started it; a run by hand catches up to the latest
    cycle of `cycle_from` (its schedule's Assets: the tick)."""
    from ..plan.translator import load_translator
    from ..runners.meltano import MeltanoError, record_counts, run_meltano
    from ..runners.reconcile import reconciliation
    from ..runners.warehouse_lock import warehouse_lock

    config = load_config(config_path, profile)
    env = config.profile.environment()
    streams = {a: (rel, table, ext) for a, (rel, table, ext) in (reconcile or {}).items()}
    check = reconciliation(config, env, {rel: (t, e) for rel, t, e in streams.values()}, log=log.info)
    try:  # the warehouse Meltano loads is the one dbt reads: one writer at a time if it is DuckDB
        with warehouse_lock(_duckdb_file(config, env), log.info):
            check.before()  # inside the lock: nothing else writes between the two looks
            result = run_meltano(
                argv,
                environment=config.profile.meltano_environment,
                env=env,
                project_root=config.meltano_project,
                executable=config.meltano.executable,
                log=log.info,
                # a retry may find the earlier try's Meltano job still marked running (its worker died)
                wait_for_dead_holder=int(getattr(context.get("ti"), "try_number", 1) or 1) > 1,
            )
            checks = {c.relation: c for c in check.after(result.metric_lines)}
    except MeltanoError as exc:
        # the message carries the log tail; the alert gets it apart, with the extractor and state ID
        # (and, from the callbacks' enrich hook, the blast radius: lineage_alert.enrich)
        meltano = {"extractor": ", ".join(extractors), "state_id": ", ".join(state_ids or []) or None}
        alert = {"error": exc.summary(), "meltano": {**meltano, "log_tail": exc.tail[-30:]}}
        raise TaskFailure(str(exc), alert) from None
    cycle = triggering_cycle(context) or (latest_cycle(context, cycle_from) if cycle_from else None)
    table_of = load_translator(config).stream_table
    records: dict[str, int] = {}
    for extractor in extractors:
        for table, n in record_counts(result.metric_lines, extractor, table_of).items():
            records[table] = records.get(table, 0) + n
    for asset, uri in outlets.items():
        extra = {
            "records_extracted": records.get(tables[asset], 0),
            "duration_s": round(result.duration_s, 3),
            "environment": config.profile.meltano_environment,
        }
        if asset in streams and streams[asset][0] in checks:
            extra.update(checks[streams[asset][0]].extra())
        if cycle is not None:
            extra[CYCLE_KEY] = cycle
        set_extra(context, asset, uri, extra)
    _report_mismatches(config, [c for c in checks.values() if c.status == "mismatch"], state_ids, context)
    return records


def _report_mismatches(
    config: OrchestrationConfig, mismatches: list[StreamCheck], state_ids: list[str] | None, context: dict
) -> None:
    """`meltano.reconcile` fail: the task fails (its failure alert says why); warn: a rows_mismatch alert."""
    if not mismatches:
        return
    error = "rows not loaded as extracted: " + "; ".join(c.message() for c in mismatches)
    extractors = ", ".join(sorted({c.extractor for c in mismatches}))
    meltano = {"extractor": extractors, "state_id": ", ".join(state_ids or []) or None}
    if any(config.meltano.reconcile_mode(c.extractor) == "fail" for c in mismatches):
        raise TaskFailure(error, {"error": error, "meltano": meltano})
    log.warning(error)
    try:
        from alerting.events import Alert

        ti = context.get("ti")
        alert = Alert(
            kind="rows_mismatch",
            dag_id=getattr(ti, "dag_id", None) or str(context.get("dag_id", "?")),
            task_id=getattr(ti, "task_id", None),
            run_id=getattr(ti, "run_id", None) or context.get("run_id"),
            dag_tags=sorted(getattr(context.get("dag"), "tags", None) or []),
            error=error,
            meltano=meltano,  # type: ignore[arg-type]  # Alert takes the dict shape too
            extra={"reconcile": [c.__dict__ for c in mismatches]},
        )
        result = airflow_alerts(config).notifier().notify(alert)
        log.info("alerting: rows_mismatch -> routes %s", result.routes)
    except Exception:  # noqa: BLE001 - the alert is a notice: never a reason to fail the load
        log.exception("alerting: the rows_mismatch alert could not be sent")


def _duckdb_file(config: OrchestrationConfig, env: dict[str, str]) -> Path | None:
    """The DuckDB file dbt's target writes (None: another warehouse, or no readable profile)."""
    from ..runners.dbt_profile import DbtProfileError, resolve_target

    try:
        return resolve_target(config, env).duckdb_path(config.dbt_project_dir)
    except DbtProfileError:
        return None


def alerts_redeliver(config_path: str | None = None, profile: str | None = None, **context) -> dict[str, int]:
    """The alerting DAG: send what the outbox still holds."""
    return redeliver(alerts=airflow_alerts(load_config(config_path, profile)), **context)


def alerts_lateness(
    *,
    expectations: list[dict],
    tick: dict[str, str],
    config_path: str | None = None,
    profile: str | None = None,
    **context,
) -> list[dict]:
    """The alerting DAG: `late` alerts for dbt DAGs not run in time (as of the `as_of` param, or now)."""
    as_of = (context.get("params") or {}).get("as_of")
    now = datetime.fromisoformat(as_of) if as_of else None
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return check_lateness(
        expectations=expectations,
        tick=tick,
        alerts=airflow_alerts(load_config(config_path, profile)),
        now=now,
        **context,
    )
