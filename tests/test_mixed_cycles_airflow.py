"""Through a real Airflow: a dbt DAG never builds on two cycles' data (issue 17, item 6).

The incident: the shop source loaded a second time in cycle 1, after `dbt_core` had run (so its
events waited in dbt_core's queue); in cycle 2 the shop was slow and the CRM fast, so Airflow's
Asset condition ("each input updated since my last run") started `dbt_core` on the new CRM load
beside cycle 1's shop load, and a relationships test failed on rows whose customers had not
landed. Here every run is a real DAG run: the cycle wait (orchestrator/airflow/cycle_wait.py) holds
dbt_core's build task, rescheduled with its warehouse slot free, until the shop catches up; then it
builds once, on cycle 2 only, on its first try.
"""

from __future__ import annotations

import time

import pytest
import yaml
from conftest import SLACK_TOKEN, airflow_test_env, pipeline_config

pytestmark = [pytest.mark.airflow, pytest.mark.meltano, pytest.mark.timeout(1800)]
SHOP, CORE, FINANCE = "meltano_tap_shop", "dbt_core", "dbt_finance"


def _config(tmp):
    path = pipeline_config(tmp, retries=1, retry_delay_seconds=1, max_retry_delay_seconds=2)
    data = yaml.safe_load(path.read_text())
    data["dbt"]["cycle_wait"] = {"enabled": True, "timeout_minutes": 20, "poke_seconds": 2}
    path.write_text(yaml.safe_dump(data))
    return path


def _until(what: str, check, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(1)
    return found


def _cycles(events) -> set:
    return {(e.get("extra") or {}).get("cycle") for e in events}


def test_a_slow_source_across_two_cycles_gives_no_build_on_mixed_data(tmp_path, installed, alert_sinks):
    from orchestrator.config import load_config
    from orchestrator.local.airflow_cycle import prepare, run_cycle_in, start_airflow
    from orchestrator.local.client import parse_ts, utcnow
    from orchestrator.local.direct import advance_sources, prepare_warehouse
    from orchestrator.local.report import failed_tasks
    from orchestrator.plan import plan_from_config

    slack, smtp = alert_sinks
    config = load_config(_config(tmp_path), "embedded")
    env = airflow_test_env(config, tmp_path, slack, smtp, SLACK_TOKEN)
    prepare_warehouse(config, env)
    plan = plan_from_config(config, cache_dir=None)
    af = start_airflow(config, env, startup_timeout=480)  # a shared 2-core machine starts slowly
    try:
        prepare(af, plan)
        client = af.client
        first = run_cycle_in(af, config, env, plan)
        assert first.ok, first.summary()
        [t1] = _cycles(next(r for r in first.reports if r.dag_id == "tick").emitted)
        assert _cycles(next(r for r in first.reports if r.dag_id == CORE).emitted) == {t1}

        # Cycle 1, later: the shop loads again (by hand: it catches up to the latest cycle, 1).
        since = utcnow()
        client.trigger(SHOP)
        [again] = client.wait_for_runs(SHOP, since=since, timeout=300)
        assert again["state"] == "success"
        assert _cycles(client.asset_events(source_dag_id=SHOP, source_run_id=again["dag_run_id"])) == {t1}

        # Cycle 2: the shop is slow (paused), the CRM lands; dbt_core starts on a mix and waits.
        client.unpause(SHOP, paused=True)
        advance_sources(config.profile, env)
        since2 = utcnow()
        client.trigger("tick")
        [core] = client.wait_for_runs(CORE, lambda r: True, since=since2, timeout=600)
        [t2] = _cycles(client.asset_events(since2, source_dag_id="tick"))
        assert t2 != t1

        def waiting():  # the build task looked, found two cycles and gave its slot back
            tis = {ti["task_id"]: ti for ti in client.task_instances(CORE, core["dag_run_id"])}
            if tis["dbt_build"]["state"] != "up_for_reschedule":
                return None
            log = " ".join(str(e.get("event")) for e in client.task_log(CORE, core["dag_run_id"], "dbt_build", 1))
            return (tis, log) if "waiting for cycle" in log else None

        tis, log = _until("dbt_core's build looked, found two cycles and waits", waiting)
        assert list(tis) == ["dbt_build"]  # no sensor task: the build looks before dbt starts
        assert f"waiting for cycle {t2} of raw_shop.customers (cycle {t1})" in log, log[-2000:]
        assert "Running with dbt" not in log  # not built on the mix
        time.sleep(6)  # still waiting (its next look is MIN_RESCHEDULE_S after the last)
        assert client.dag_runs(CORE, since2)[0]["state"] == "running"
        assert not client.asset_events(since2, source_dag_id=CORE)

        # The shop catches up (by hand: cycle 2, the latest tick's); dbt_core builds cycle 2, once.
        client.unpause(SHOP)
        since3 = utcnow()
        client.trigger(SHOP)
        [done] = client.wait_for_runs(CORE, since=since2, timeout=600)
        assert done["state"] == "success", failed_tasks(client, CORE, done["dag_run_id"])  # why, with the log
        shop_events = client.asset_events(since3, source_dag_id=SHOP)
        assert shop_events and _cycles(shop_events) == {t2}
        tis = {ti["task_id"]: ti for ti in client.task_instances(CORE, done["dag_run_id"])}
        build = tis["dbt_build"]
        # rescheduled, not retried: the same try built, after the shop's cycle-2 load (no false test failure)
        assert build["state"] == "success" and build["try_number"] == 1
        emitted = client.asset_events(source_dag_id=CORE, source_run_id=done["dag_run_id"])
        assert emitted and _cycles(emitted) == {t2}
        landed = max(parse_ts(e["timestamp"]) for e in shop_events)
        assert min(parse_ts(e["timestamp"]) for e in emitted) > landed
        assert len(client.dag_runs(CORE, since2)) == 1  # one build for cycle 2 so far

        # Downstream, dbt_finance had cycle 1's shop payments queued too: it builds cycle 2 only.
        [fin] = client.wait_for_runs(FINANCE, since=since2, timeout=600)
        assert fin["state"] == "success", failed_tasks(client, FINANCE, fin["dag_run_id"])
        assert _cycles(client.asset_events(source_dag_id=FINANCE, source_run_id=fin["dag_run_id"])) == {t2}
    finally:
        af.stop()
