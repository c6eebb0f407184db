"""Airflow callbacks for any DAG: failures, retries, recoveries, DAG-run failures.

    from alerting.airflow import AirflowAlerts
    alerts = AirflowAlerts("alerting.yml", outbox_url="postgresql+psycopg://.../alerting")
    with DAG(..., default_args={**alerts.task_callbacks()}, **alerts.dag_callbacks()):

Plain functions, not `BaseNotifier`s: a DAG-level BaseNotifier crashes under `dag.test()`
(Airflow issue 64649), and every callback must swallow its own errors anyway. Task
callbacks run in the task's process right after it reports its state; DAG callbacks and
the callbacks of tasks that died without reporting run in the DAG processor. Nothing is
read at DAG parse time: the config and the outbox are opened at the first callback.

A task may attach detail to the exception it raises: `exc.alert_context = {"dbt": {...},
"meltano": {...}, "extra": {...}}` (the shapes of `DbtContext`/`MeltanoContext`; `"kind": "late"` makes it a
lateness alert: a wait that ran out of time). `enrich(alert)`, if given, adds
what only the caller knows (the orchestrator: the blast radius from its plan's lineage) to every
alert before it is sent; if it raises, the alert goes out without it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # every DAG parse makes an AirflowAlerts: only a callback that fires needs these
    from ..delivery import Notifier
    from ..events import Alert
    from ..outbox import Outbox

log = logging.getLogger("alerting.airflow")


class AirflowAlerts:
    def __init__(
        self,
        config: str | Path | None = None,
        *,
        outbox_url: str | None = None,
        notifier_factory: Callable[[], Any] | None = None,
        enrich: Callable[[Alert], None] | None = None,
    ):
        self.config = config
        self.outbox_url = outbox_url
        self.enrich = enrich
        self._factory = notifier_factory
        self._notifier: Notifier | None = None
        self._outbox: Outbox | None = None

    # ------------------------------------------------------------ what DAGs attach

    def task_callbacks(self) -> dict[str, Callable]:
        return {
            "on_failure_callback": self.on_task_failure,
            "on_retry_callback": self.on_task_retry,
            "on_success_callback": self.on_task_success,
        }

    def dag_callbacks(self) -> dict[str, Callable]:
        return {"on_failure_callback": self.on_dag_failure, "on_success_callback": self.on_dag_success}

    # ------------------------------------------------------------ callbacks (never raise)

    def on_task_failure(self, context: dict) -> None:
        self._safely("task_failed", context)

    def on_task_retry(self, context: dict) -> None:
        self._safely("retry", context)

    def on_task_success(self, context: dict) -> None:
        self._safely("recovered", context)

    def on_dag_failure(self, context: dict) -> None:
        # A run that failed because a task failed is already announced, task by task (Airflow
        # runs the task's failure callback even when the task was killed). Only other reasons
        # (dagrun_timeout, deadlock) are news.
        if context.get("reason") == "task_failure":
            return
        self._safely("dag_failed", context)

    def on_dag_success(self, context: dict) -> None:
        self._safely("dag_recovered", context)

    # ------------------------------------------------------------ internals

    def outbox(self) -> Outbox:
        """The outbox alone: what a success callback needs to know whether anything failed
        (no routing file, no Slack client)."""
        if self._notifier is not None or self._factory is not None:
            return self.notifier().outbox
        if self._outbox is None:
            from ..outbox import Outbox

            self._outbox = Outbox(self.outbox_url)
        return self._outbox

    def notifier(self) -> Notifier:
        if self._notifier is None:
            if self._factory is not None:
                self._notifier = self._factory()
            else:
                from ..delivery import Notifier
                from ..routing.config import RoutingConfig

                path = self.config or os.environ.get("ALERTING_CONFIG") or "alerting.yml"
                self._notifier = Notifier(RoutingConfig.load(Path(path)), self.outbox())
        return self._notifier

    def _safely(self, kind: str, context: dict) -> None:
        t0 = time.monotonic()
        try:
            if kind in ("recovered", "dag_recovered"):
                dag_id, task_id = _ids(context, task_level=kind == "recovered")
                if not self.outbox().open_incident_routes(dag_id, task_id):
                    return  # the common case: one indexed query, nothing sent
            notifier = self.notifier()
            alert = alert_from_context(
                "recovered" if kind == "dag_recovered" else kind,
                context,
                task_level=kind != "dag_recovered" and kind != "dag_failed",
            )
            if self.enrich is not None:
                try:
                    self.enrich(alert)
                except Exception:  # noqa: BLE001 - detail for the alert, never a reason to lose it
                    log.warning("alerting: enriching %s %s failed; sent without it", kind, alert.dag_id, exc_info=True)
            result = notifier.notify(alert)
            log.info(
                "alerting: %s %s.%s -> routes %s, %s in %.2fs",
                alert.kind,
                alert.dag_id,
                alert.task_id,
                result.routes,
                [(d.route, d.kind, d.status) for d in result.deliveries],
                time.monotonic() - t0,
            )
        except Exception:  # noqa: BLE001 - a callback must never fail the task or the DAG processor
            log.exception("alerting: %s callback failed", kind)


def _ids(context: dict, task_level: bool) -> tuple[str, str | None]:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = str(getattr(ti, "dag_id", None) or getattr(dag, "dag_id", "?"))
    task_id = getattr(ti, "task_id", None) if task_level else None
    return dag_id, (str(task_id) if task_id is not None else None)


def now_utc() -> datetime:
    return datetime.now(UTC)


def alert_from_context(kind: str, context: dict, *, task_level: bool = True) -> Alert:
    """An Alert from an Airflow callback context (Task SDK or DAG-processor flavour)."""
    from ..events import Alert

    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    task = context.get("task")
    dag_id, task_id = _ids(context, task_level)
    run_id = getattr(ti, "run_id", None) or context.get("run_id")
    try_number = getattr(ti, "try_number", None) if task_level else None
    retries = getattr(task, "retries", None)
    max_tries = (retries + 1) if isinstance(retries, int) and task_level else None
    start = getattr(ti, "start_date", None)
    duration = None
    if task_level and isinstance(start, datetime):
        end = getattr(ti, "end_date", None) or now_utc()
        duration = max(0.0, (end - start).total_seconds())
    exc = context.get("exception")
    if kind == "dag_failed":
        error = f"DAG run failed: {context.get('reason') or 'unknown reason'}"
    elif exc is not None:
        error = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
    elif kind in ("task_failed", "retry"):
        state = getattr(ti, "state", None)
        error = (
            f"The task ended without reporting an error (state {state}): killed, out of memory, "
            f"or its heartbeat timed out. See the log."
        )
    else:
        error = ""
    log_url = None
    if task_level:
        try:
            log_url = ti.log_url if ti is not None else None
        except Exception:  # noqa: BLE001 - a link is nice to have
            log_url = None
    detail = getattr(exc, "alert_context", None) or {}
    if kind == "task_failed" and detail.get("kind") == "late":
        kind = "late"  # the task failed because something it waits for did not come in time
    if detail.get("error") and kind in ("task_failed", "retry", "late"):
        error = detail["error"]  # the task's own one-line summary (its detail is in dbt/meltano)
    return Alert(
        kind=kind,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        try_number=try_number,
        max_tries=max_tries,
        duration_s=duration,
        log_url=log_url,
        error=error,
        dag_tags=list(getattr(dag, "tags", None) or []),
        dbt=detail.get("dbt"),
        meltano=detail.get("meltano"),
        extra={**(detail.get("extra") or {}), **({"reason": context.get("reason")} if kind == "dag_failed" else {})},
    )
