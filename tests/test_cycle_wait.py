"""The cycle wait around the rule: which dbt DAGs get it (the plan), what one look does with the
inputs' latest events, how a build task that looks itself gives its slot back, and the `late`
alert the bounded wait ends in. Through a real Airflow: tests/test_mixed_cycles_airflow.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk.exceptions import AirflowRescheduleException
from conftest import pipeline_config

from alerting.airflow import alert_from_context
from orchestrator.airflow.cycle_wait import MIN_RESCHEDULE_S, CycleWaitExpired, hold_build, wait_for_cycle
from orchestrator.config import load_config
from orchestrator.plan import plan_from_config

T1, T2 = "2026-12-06T00:00:00+00:00", "2026-12-07T00:00:00+00:00"
INPUTS = {"raw_crm.accounts": "duckdb://w/raw_crm/accounts", "raw_shop.orders": "duckdb://w/raw_shop/orders"}


class _Latest:
    """The Task SDK's `inlet_events[asset]` for one Asset, newest first: what `wait_for_cycle` reads."""

    def __init__(self, extras: list[dict]):
        self.events = [SimpleNamespace(extra=e) for e in extras]

    def ascending(self, ascending: bool = True):
        return self

    def limit(self, n: int):
        return self.events[:n]


def _context(latest: dict[str, dict | None], started_ago: timedelta) -> dict:
    inlet_events = {a: _Latest([] if e is None else [e]) for a, e in latest.items()}
    return {
        "inlet_events": _ByName(inlet_events),
        "dag_run": SimpleNamespace(start_date=datetime.now(UTC) - started_ago),
    }


class _ByName(dict):
    def __getitem__(self, asset):
        return super().__getitem__(asset.name)


def test_one_cycle_builds_at_once_and_passes_the_cycle_on():
    ctx = _context({"raw_crm.accounts": {"cycle": T2}, "raw_shop.orders": {"cycle": T2}}, timedelta(0))
    done = wait_for_cycle(inputs=INPUTS, timeout_s=60, **ctx)
    assert done.is_done and done.xcom_value == T2


def test_an_input_with_no_event_or_no_cycle_does_not_hold_the_build():
    ctx = _context({"raw_crm.accounts": {"cycle": T2}, "raw_shop.orders": None}, timedelta(0))
    assert wait_for_cycle(inputs=INPUTS, timeout_s=60, **ctx).is_done


def test_two_cycles_wait_then_end_in_a_late_alert_naming_the_stale_input():
    mixed = {"raw_crm.accounts": {"cycle": T2}, "raw_shop.orders": {"cycle": T1, "records_extracted": 3}}
    assert not wait_for_cycle(inputs=INPUTS, timeout_s=600, **_context(mixed, timedelta(minutes=9))).is_done
    with pytest.raises(CycleWaitExpired) as raised:
        wait_for_cycle(inputs=INPUTS, timeout_s=600, **_context(mixed, timedelta(minutes=10)))
    message = str(raised.value)
    assert message == (
        f"inputs of two cycles after 10 min: waiting for cycle {T2} of raw_shop.orders (cycle {T1}); "
        "not built on mixed data (the next cycle builds once every input has landed)"
    )
    # the failure callback turns it into a `late` alert, with the stale inputs in its extra
    ti = SimpleNamespace(dag_id="dbt_core", task_id="wait_for_cycle", run_id="r", try_number=1, state="failed")
    alert = alert_from_context("task_failed", {"ti": ti, "exception": raised.value})
    assert alert.kind == "late" and alert.error == message
    assert alert.extra["missing_assets"] == ["raw_shop.orders"] and alert.extra["cycle"] == T2


def test_a_build_task_that_looks_itself_builds_the_agreed_cycle_or_gives_its_slot_back():
    agreed = _context({"raw_crm.accounts": {"cycle": T2}, "raw_shop.orders": {"cycle": T2}}, timedelta(0))
    assert hold_build(inputs=INPUTS, timeout_s=600, poke_seconds=60, **agreed) == T2
    mixed = {"raw_crm.accounts": {"cycle": T2}, "raw_shop.orders": {"cycle": T1}}
    for poke, after in ((60, 60), (2, MIN_RESCHEDULE_S)):  # never sooner than MIN_RESCHEDULE_S (airflow#71172)
        before = datetime.now(UTC)
        with pytest.raises(AirflowRescheduleException) as raised:  # up_for_reschedule: same try, no slot
            hold_build(inputs=INPUTS, timeout_s=600, poke_seconds=poke, **_context(mixed, timedelta(minutes=9)))
        wait = (raised.value.reschedule_date - before).total_seconds()
        assert after <= wait < after + 5
    with pytest.raises(CycleWaitExpired):  # the same bounded wait as the sensor's: a `late` alert
        hold_build(inputs=INPUTS, timeout_s=600, poke_seconds=60, **_context(mixed, timedelta(minutes=10)))


def test_the_plan_gives_the_wait_to_dbt_dags_of_two_inputs_or_more_unless_turned_off(tmp_path):
    plan = plan_from_config(load_config(pipeline_config(tmp_path), "embedded"), cache_dir=None)
    waits = {d.dag_id: d.wait_task for d in plan.of_kind("dbt")}
    # a DAG of one task: the build task looks itself (no task of its own on the critical path)
    assert waits["dbt_core"] == "dbt_build" and waits["dbt_finance"] == "dbt_build"
    assert waits["dbt_untagged"] is None  # on the tick alone: one input cannot disagree with itself
    path = pipeline_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["dbt"]["task_granularity"] = "model"  # several tasks: a sensor before their roots
    path.write_text(yaml.safe_dump(data))
    per_model = plan_from_config(load_config(path, "embedded"), cache_dir=None)
    waits = {d.dag_id: d.wait_task for d in per_model.of_kind("dbt")}
    assert waits["dbt_core"] == "wait_for_cycle" and waits["dbt_untagged"] is None
    path = pipeline_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["dbt"]["cycle_wait"] = {"enabled": False}
    path.write_text(yaml.safe_dump(data))
    off = plan_from_config(load_config(path, "embedded"), cache_dir=None)
    assert {d.wait_task for d in off.of_kind("dbt")} == {None}
