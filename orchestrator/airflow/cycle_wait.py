"""A dbt DAG's first task: wait until its inputs belong to one cycle (the rule: plan/cycles.py).

A sensor (`dbt.cycle_wait.mode`, poke by default: config/schema.py says why), never in the
warehouse pool; each look is one small query per input through the Task SDK's `inlet_events`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset
from airflow.sdk.bases.sensor import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from ..plan.cycles import CYCLE_KEY, cycle_verdict
from .tasks import TaskFailure

log = logging.getLogger(__name__)


class CycleWaitExpired(TaskFailure, AirflowFailException):
    """The inputs did not come to agree on a cycle in time: a `late` alert, no retry, no build."""


def wait_for_cycle(*, inputs: dict[str, str], timeout_s: float, **context) -> PokeReturnValue:
    """A dbt DAG's first task (a sensor in reschedule mode): done when the latest event of every
    input (`inputs`: Asset name -> URI, the task's inlets) names the same cycle, which it passes
    on (XCom) for the build's Asset events. After `timeout_s` from the run's start it fails with
    a `late` alert naming the inputs still behind, so nothing builds on two cycles' data."""
    latest: dict[str, Any] = {}
    for name, uri in inputs.items():
        events = context["inlet_events"][Asset(name=name, uri=uri)].ascending(False).limit(1)
        latest[name] = (events[0].extra or {}).get(CYCLE_KEY) if len(events) else None
    verdict = cycle_verdict(latest)
    log.info("cycle check: %s", verdict.describe())
    if verdict.ready:
        return PokeReturnValue(is_done=True, xcom_value=verdict.cycle)
    dag_run = context.get("dag_run")
    started = getattr(dag_run, "start_date", None) or datetime.now(UTC)
    if datetime.now(UTC) - started >= timedelta(seconds=timeout_s):
        waited = round(timeout_s / 60)
        error = (
            f"inputs of two cycles after {waited} min: {verdict.describe()}; not built on mixed data "
            "(the next cycle builds once every input has landed)"
        )
        extra = {"missing_assets": list(verdict.stale), "cycle": verdict.cycle, "cycles": dict(verdict.cycles)}
        raise CycleWaitExpired(error, {"kind": "late", "error": error, "extra": extra})
    return PokeReturnValue(is_done=False)


class CycleSensor(BaseSensorOperator):
    """`wait_for_cycle` as a sensor: done when the inputs agree; it fails itself with the `late`
    alert at `timeout_s` from the run's start (the sensor's own `timeout`, set a little later by
    the renderer, is only a backstop)."""

    def __init__(self, *, inputs: dict[str, str], timeout_s: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.inputs = inputs
        self.timeout_s = timeout_s

    def poke(self, context: Any) -> PokeReturnValue:
        return wait_for_cycle(inputs=self.inputs, timeout_s=self.timeout_s, **context)
