"""A dbt DAG waits until its inputs belong to one cycle (the rule: plan/cycles.py).

Each look is one small query per input through the Task SDK's `inlet_events`. Where it looks:

- a DAG of one task (`dbt.task_granularity: dag`, the default): the build task itself, before dbt
  starts (`hold_build`). Inputs that agree, as in every cycle that runs on time, cost no task of
  their own (a task process and a scheduler hand-off, 0.37-0.9 s per chained DAG on the demo's
  critical path); inputs that disagree give the warehouse slot back until the next look (the task
  is rescheduled, which keeps its try), so the late source's Meltano run can write.
- a DAG of several tasks (per-model): a `wait_for_cycle` sensor before the roots, so that they all
  build the one cycle it found (`CycleSensor`; `dbt.cycle_wait.mode`, poke by default:
  config/schema.py says why), never in the warehouse pool.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset
from airflow.sdk.bases.sensor import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from ..plan.cycles import CYCLE_KEY, cycle_verdict
from .tasks import TaskFailure

log = logging.getLogger(__name__)

# A build that waits looks again no sooner than this: a reschedule whose next look is queued before
# the scheduler has processed the previous look's exit can be failed by Airflow 3.2-3.3
# (apache/airflow#71172); seconds between looks make that race all but impossible.
MIN_RESCHEDULE_S = 10


class CycleWaitExpired(TaskFailure, AirflowFailException):
    """The inputs did not come to agree on a cycle in time: a `late` alert, no retry, no build."""


def wait_for_cycle(*, inputs: dict[str, str], timeout_s: float, **context) -> PokeReturnValue:
    """One look: done when the latest event of every input (`inputs`: Asset name -> URI, the task's
    inlets) names the same cycle, which it returns (the sensor's XCom) for the build's Asset
    events. After `timeout_s` from the run's start it fails with a `late` alert naming the inputs
    still behind, so nothing builds on two cycles' data."""
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


def hold_build(*, inputs: dict[str, str], timeout_s: float, poke_seconds: float, **context) -> str | None:
    """The build task's own look, before dbt starts: the cycle its inputs agree on (what the build
    writes into its events). When they disagree, the task is rescheduled (it keeps its try and
    gives its warehouse pool slot back) to look again after `poke_seconds`, at least
    MIN_RESCHEDULE_S; past `timeout_s` from the run's start, the `late` failure of
    `wait_for_cycle`."""
    looked = wait_for_cycle(inputs=inputs, timeout_s=timeout_s, **context)
    if looked.is_done:
        return looked.xcom_value
    again = datetime.now(UTC) + timedelta(seconds=max(poke_seconds, MIN_RESCHEDULE_S))
    log.info("not building on two cycles' data: looking again at %s (the warehouse slot is free meanwhile)", again)
    raise AirflowRescheduleException(reschedule_date=again)
