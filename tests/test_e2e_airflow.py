"""End to end through a real Airflow (scheduler, dag-processor, api-server, triggerer as processes),
on the embedded default: tick -> Meltano DAGs -> dbt DAGs, wired only by Asset events; alerts go
to a local Slack-compatible server and a real SMTP server (aiosmtpd) in this process."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import SLACK_TOKEN, airflow_test_env, dbt_task_starts, pipeline_config
from pipeline_expectations import (
    CAMPAIGN_SQL,
    DAILY_SQL,
    assert_marts_match,
    expected_extracted,
    expected_row_counts,
)

from orchestrator.config import REPO_ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.meltano, pytest.mark.timeout(1500)]
SOURCE_OF = {"meltano_tap_shop": "shop", "meltano_tap_crm": "crm", "meltano_tap_marketing": "marketing"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, installed, alert_sinks):
    from orchestrator.config import load_config
    from orchestrator.local.airflow_cycle import prepare, start_airflow
    from orchestrator.local.direct import prepare_warehouse
    from orchestrator.plan import plan_from_config

    slack, smtp = alert_sinks
    tmp = tmp_path_factory.mktemp("e2e")
    # one quick retry: failures show in seconds
    config = load_config(pipeline_config(tmp, retries=1, retry_delay_seconds=1, max_retry_delay_seconds=2), "embedded")
    env = airflow_test_env(config, tmp, slack, smtp, SLACK_TOKEN)
    prepare_warehouse(config, env)
    plan = plan_from_config(config, cache_dir=None)
    af = start_airflow(config, env)
    try:
        prepare(af, plan)
        yield af, config, env, plan, {}
    finally:
        af.stop()


def _cycle(pipeline, key: str, **kwargs):
    from orchestrator.local.airflow_cycle import run_cycle_in

    af, config, env, plan, done = pipeline
    if key not in done:
        done[key] = run_cycle_in(af, config, env, plan, **kwargs)
    return done[key]


def _by_dag(cycle):
    return {r.dag_id: r for r in cycle.reports}


def test_first_cycle_runs_every_dag_from_the_asset_events(pipeline):
    cycle = _cycle(pipeline, "first")
    _, _, env, plan, _ = pipeline
    runs = _by_dag(cycle)
    assert {d: r.state for d, r in runs.items()} == {d: "success" for d in runs}
    assert runs["tick"].run_type == "manual"
    for spec in plan.of_kind("meltano") + plan.of_kind("dbt"):
        run = runs[spec.dag_id]
        assert run.run_type == "asset_triggered", spec.dag_id
        # Started by exactly the Assets its schedule names, each event before the run began.
        assert {e["name"] for e in run.triggered_by} == set(spec.schedule.assets), spec.dag_id
        assert run.lag is not None and run.lag >= 0  # the run started after its last triggering event
        # And it emitted one event per outlet.
        assert sorted(e["name"] for e in run.emitted) == sorted(spec.outlets), spec.dag_id
    # Every built node of the manifest (catch-all stages included) was built exactly once, by one DAG.
    from orchestrator.plan.manifest import load_manifest

    manifest = load_manifest(REPO_ROOT / "dbt_project" / "target" / "manifest.json")
    expected = sorted(n.unique_id for n in manifest.buildable if n.materialized != "ephemeral")
    built = sorted(e["extra"]["unique_id"] for spec in plan.of_kind("dbt") for e in runs[spec.dag_id].emitted)
    assert built == expected
    assert {"dbt_untagged", "dbt_untagged_2"} <= set(runs)  # the seed's stage before finance, the summary's after
    # the summary's stage starts after finance built what it reads (its events; the scheduler may mark
    # dbt_finance's run done a moment after the downstream run started)
    finance_built = max(datetime.fromisoformat(e["timestamp"]) for e in runs["dbt_finance"].emitted)
    assert runs["dbt_untagged_2"].start >= finance_built
    # dbt_finance ran only after dbt_core produced fct_orders: its trigger came from dbt_core's run.
    fct = next(e for e in runs["dbt_finance"].triggered_by if e["name"] == "analytics.fct_orders")
    assert fct["source_dag_id"] == "dbt_core" and fct["source_run_id"] == runs["dbt_core"].run_id
    # ...and started after that event (the scheduler may mark dbt_core's run done a moment later)
    assert runs["dbt_finance"].start >= datetime.fromisoformat(fct["timestamp"])
    assert cycle.raw_rows == expected_row_counts(1)
    for dag_id, source in SOURCE_OF.items():
        extracted = {e["name"].split(".")[1]: e["extra"]["records_extracted"] for e in runs[dag_id].emitted}
        assert extracted == expected_extracted(1, source), dag_id
        # every table reconciled in the Asset event: the rows written are the records emitted
        for e in runs[dag_id].emitted:
            assert e["extra"]["reconcile"] == "ok", e
            assert e["extra"]["rows_written"] == e["extra"]["records_extracted"], e


def test_dbt_tasks_start_with_dbt_already_imported(pipeline):
    """The LocalExecutor's workers fork from a forkserver that preloaded dbt (local/airflow_env.py:
    warm_task_start) and parsed the project once (preload._warm_dbt), so no dbt task process imports
    dbt or compiles its serialisers itself: each says so in its log."""
    cycle = _cycle(pipeline, "first")
    af, _, _, plan, _ = pipeline
    runs = _by_dag(cycle)
    said = dbt_task_starts(af.client, [(spec.dag_id, runs[spec.dag_id].run_id) for spec in plan.of_kind("dbt")])
    assert said and set(said.values()) == {"dbt: preloaded, project parsed at start"}, said


def test_second_cycle_is_incremental_and_the_marts_are_right(pipeline):
    _cycle(pipeline, "first")
    cycle = _cycle(pipeline, "second")
    _, _, env, _, _ = pipeline
    runs = _by_dag(cycle)
    assert cycle.ok and cycle.source_days == [2], [(r.dag_id, r.state, r.run_type) for r in cycle.reports]
    for dag_id, source in SOURCE_OF.items():
        extracted = {e["name"].split(".")[1]: e["extra"]["records_extracted"] for e in runs[dag_id].emitted}
        assert extracted == expected_extracted(2, source), dag_id
        # upserts reconciled too: ok (orders: the bookmark row's key comes again, the loader's count says so)
        assert {e["extra"]["reconcile"] for e in runs[dag_id].emitted} == {"ok"}, runs[dag_id].emitted
    assert cycle.raw_rows == expected_row_counts(2)
    extras = {e["name"]: e["extra"] for d in ("dbt_core", "dbt_finance", "dbt_marketing") for e in runs[d].emitted}
    assert {x.get("status") for x in extras.values()} == {"success"}, extras
    with duckdb.connect(env["WAREHOUSE_DUCKDB_PATH"], read_only=True) as conn:
        assert_marts_match(conn.execute(DAILY_SQL).fetchall(), conn.execute(CAMPAIGN_SQL).fetchall(), last_day=2)


def _payment_change(env, method: str | None, updated_at: str) -> None:
    """A new version of the first payment with another method (its amount unchanged, so only the
    accepted-values tests see it). Later than every day-3 row: the tap requires sorted input."""
    path = Path(env["DEMO_DATA_DIR"]) / "shop" / "payments.jsonl"
    first = json.loads(path.read_text().splitlines()[0])
    with open(path, "a") as fh:
        fh.write(json.dumps({**first, "method": method or first["method"], "updated_at": updated_at}) + "\n")


def _wait(what, timeout: float = 600):
    """Poll until `what()` is truthy (alerts arrive from task and DAG-processor callbacks). The ceiling
    is generous on purpose: the wait ends at the event, and a loaded 2-core machine took over 90 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what.__doc__ or what}")


def _top(slack, channel: str) -> list[dict]:
    return [m for m in slack.posted() if m["channel"] == channel and "thread_ts" not in m]


def _failure_cycle(pipeline):
    """Day 3 with a corrupt marketing export and a payment method the finance tests reject."""
    from demo_data.writers import FileDestination, advance
    from orchestrator.local.airflow_cycle import run_cycle_in

    af, config, env, plan, done = pipeline
    if "failure" not in done:
        _cycle(pipeline, "second")
        advance(FileDestination(env["DEMO_DATA_DIR"]))  # day 3 ...
        with open(Path(env["DEMO_DATA_DIR"]) / "marketing" / "ad_spend.jsonl", "a") as fh:
            fh.write('{"id": 99999, "broken json\n')  # ... marketing's export is corrupt
        _payment_change(env, "bitcoin", "2024-01-04T00:00:00")  # ... and a payment fails a finance test
        since = time.time()
        cycle = run_cycle_in(
            af,
            config,
            env,
            plan,
            new_day=False,
            wait_for=[
                "tick",
                "meltano_tap_shop",
                "meltano_tap_crm",
                "meltano_tap_marketing",
                "dbt_core",
                "dbt_finance",
            ],
        )
        done["failure"] = (cycle, since)
    return done["failure"]


def test_a_dbt_dag_whose_source_failed_does_not_run(pipeline):
    cycle, since = _failure_cycle(pipeline)
    af = pipeline[0]
    runs = _by_dag(cycle)
    assert runs["meltano_tap_marketing"].state == "failed"
    assert runs["meltano_tap_marketing"].emitted == []
    assert all(runs[d].state == "success" for d in ("meltano_tap_shop", "meltano_tap_crm", "dbt_core"))
    assert runs["dbt_finance"].state == "failed"  # the rejected payment method
    ti = af.client.task_instances("meltano_tap_marketing", runs["meltano_tap_marketing"].run_id)[0]
    assert ti["state"] == "failed" and ti["try_number"] == 2
    time.sleep(10)  # well past a scheduler hop: dbt_marketing would have started by now
    newer = [
        r
        for r in af.client.dag_runs("dbt_marketing")
        if r["start_date"] and r["start_date"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since))
    ]
    assert newer == [], "dbt_marketing must wait for the marketing tables"
    waiting = {e["asset_id"] for e in af.client.queued_asset_events("dbt_marketing")}
    assert waiting == {af.client.asset_id("analytics.fct_orders")}, (
        "only core's new model is queued; marketing's tables never came"
    )


def _failed_at(af, dag_id: str, run_id: str) -> float:
    """When the task's last try raised: the "Task failed with exception" line of its log (the
    TI's end_date comes later: the supervisor reports it after the callbacks ran)."""
    from datetime import datetime

    tis = af.client.task_instances(dag_id, run_id)
    ti = next((t for t in tis if t["state"] == "failed"), tis[0])  # not the cycle wait before it
    text = af.client.request(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
    ).text
    at = text.find("Task failed with exception")
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)", text[: max(at, 0)])
    assert at >= 0 and stamps, f"no failure in the log of {dag_id} {run_id}: {text[-500:]}"
    return datetime.fromisoformat(stamps[-1].replace("Z", "+00:00")).timestamp()  # that line's own time


def test_failures_alert_the_right_channel_once_with_what_to_act_on(pipeline, alert_sinks):
    cycle, _ = _failure_cycle(pipeline)
    af = pipeline[0]
    slack, smtp = alert_sinks
    runs = _by_dag(cycle)
    m_run, f_run = runs["meltano_tap_marketing"].run_id, runs["dbt_finance"].run_id
    [ingest] = _wait(lambda: _top(slack, "#data-ingestion"))
    [finance] = _wait(lambda: _top(slack, "#finance-data"))

    # Meltano: the extractor, its state ID, the tap's own error and the log tail; after the last try only
    assert ingest["text"].startswith(
        f"🔴 Task failed: meltano_tap_marketing.meltano_run (run {m_run}, try 2/2): "
        f"meltano --environment dev run tap-marketing target-duckdb exited with 1: "
        f"ValueError: "
    )
    assert "marketing/ad_spend.jsonl:" in ingest["text"] and "not valid JSON" in ingest["text"]
    fields = [f["text"] for b in ingest["blocks"] if b["type"] == "section" for f in b.get("fields", [])]
    assert "*Extractor*\ntap-marketing" in fields
    assert "*State ID*\ndev:tap-marketing-to-target-duckdb" in fields
    texts = "\n".join(b["text"]["text"] for b in ingest["blocks"] if b["type"] == "section" and "text" in b)
    assert "*Meltano log (last" in texts and "ad_spend" in texts
    assert "*Earlier tries*\n• try 1 at " in texts  # the first try was recorded, not posted
    button = next(b for b in ingest["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"].startswith(af.url) and "meltano_tap_marketing" in button["url"]

    # dbt: the failed test with its owner mentioned, the tag, the models skipped after it
    # (the bad method fails the staging test; what reads stg_payments is skipped)
    m = re.fullmatch(
        rf"🔴 Task failed: dbt_finance\.dbt_build \(run {re.escape(f_run)}, try 2/2\): "
        rf"dbt retry: (\d+) failed \((.*?)\), (\d+) skipped: (.*)",  # try 2 re-ran only what failed or was skipped
        finance["text"],
    )
    assert m and "test accepted_values_stg_payments_method" in m[2] and int(m[3]) > 0, finance["text"]
    # the root cause ends the headline: the first failure's own error (issue 21, item 4)
    assert re.match(r"test accepted_values_stg_payments_method\S*: Got 1 result", m[4]), finance["text"]
    texts = [b["text"]["text"] for b in finance["blocks"] if b["type"] == "section" and "text" in b]
    assert f"*Failed dbt models/tests: {m[1]}* (tag `finance`)" in texts
    [line] = [t for t in texts if t.startswith("• test `accepted_values_stg_payments_method")]
    assert "— owners: <@U00FINANCE>" in line and "Got 1 result" in line, line

    # No retry noise at the top level, nothing on channels no route names, no DAG-level duplicate
    assert not [m for m in slack.posted() if m["text"].startswith("🟠")]
    assert {m["channel"] for m in slack.posted()} == {"#data-ingestion", "#finance-data"}
    # E-mail: the ingestion route mails always; finance only when Slack fails (it did not)
    mails = [r.message() for r in smtp.received]
    assert [(m["To"], m["Subject"]) for m in mails] == [
        ("data-platform@example.com", "[Airflow] 🔴 Task failed: meltano_tap_marketing.meltano_run (try 2/2)")
    ]
    body = mails[0].get_body(("plain",)).get_content()
    assert "Meltano extractor: tap-marketing" in body and "State ID: dev:tap-marketing-to-target-duckdb" in body
    # final failure -> message received, recorded for the closing note / BENCHMARKS.md
    first_post = {
        m.body["channel"]: m
        for m in reversed(slack.messages)
        if isinstance(m.body, dict) and m.path.endswith("chat.postMessage") and "thread_ts" not in m.body
    }
    latency = {
        "meltano_tap_marketing": first_post["#data-ingestion"].received_at
        - _failed_at(af, "meltano_tap_marketing", m_run),
        "dbt_finance": first_post["#finance-data"].received_at - _failed_at(af, "dbt_finance", f_run),
    }
    _record("failure_to_slack_s", latency)
    assert all(0 <= v < 30 for v in latency.values()), latency


def _lateness(pipeline, alert_sinks):
    """Trigger the alerting DAG as of 5 h after now: what is late after the failure cycle."""
    from datetime import datetime, timedelta

    _failure_cycle(pipeline)
    af, done = pipeline[0], pipeline[4]
    if "late" in done:
        return done["late"]
    as_of = (datetime.now(UTC) + timedelta(hours=5)).isoformat()

    def check() -> list:
        run_id = af.client.trigger("alerting", {"as_of": as_of})
        [run] = af.client.wait_for_runs(
            "alerting", lambda r: r["dag_run_id"] == run_id and r["state"] in ("success", "failed"), timeout=600
        )
        assert run["state"] == "success"
        entry = af.client.get(f"/dags/alerting/dagRuns/{run_id}/taskInstances/check_lateness/xcomEntries/return_value")
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    first = check()
    [late] = _wait(lambda: _top(alert_sinks[0], "#growth-data"))
    again = check()  # checking again: the same lateness, not a new message
    done["late"] = (first, late, again)
    return done["late"]


def test_a_dbt_dag_that_did_not_run_in_time_is_late_naming_the_missing_assets(pipeline, alert_sinks):
    first, late, again = _lateness(pipeline, alert_sinks)
    # dbt_core ran; dbt_finance failed (announced already): dbt_marketing is late, and so is the
    # catch-all stage after finance and marketing (on the default route)
    assert [(x["dag_id"], x["missing_assets"], x["routes"]) for x in first] == [
        ("dbt_marketing", ["raw_marketing.ad_spend", "raw_marketing.campaigns"], ["marketing"]),
        ("dbt_untagged_2", ["analytics.finance_daily_revenue", "staging.stg_ad_spend"], ["default"]),
    ]
    assert re.fullmatch(
        r"⏰ Late: dbt_marketing \(run cycle \S+\): dbt_marketing has not run 4h 0m after the cycle "
        r"began; waiting for: raw_marketing\.ad_spend, raw_marketing\.campaigns",
        late["text"],
    ), late["text"]
    texts = [b["text"]["text"] for b in late["blocks"] if b["type"] == "section" and "text" in b]
    assert any(t.startswith("*Expected by* ") and "• `raw_marketing.ad_spend`" in t for t in texts)
    time.sleep(2)
    assert len(_top(alert_sinks[0], "#growth-data")) == 1 and again[0]["dag_id"] == "dbt_marketing"


def test_the_next_successful_run_posts_the_recovery_in_the_failure_thread(pipeline, alert_sinks):
    from orchestrator.local.airflow_cycle import run_cycle_in

    _lateness(pipeline, alert_sinks)
    af, config, env, plan, done = pipeline
    slack, smtp = alert_sinks
    channels = ("#data-ingestion", "#finance-data", "#growth-data", "#data-alerts")
    [ingest], [finance], [late], [late_stage] = (_top(slack, c) for c in channels)
    # fix the sources: drop the corrupt line, supersede the bad payment
    path = Path(env["DEMO_DATA_DIR"]) / "marketing" / "ad_spend.jsonl"
    path.write_text("".join(line for line in path.read_text().splitlines(True) if "broken json" not in line))
    _payment_change(env, None, "2024-01-04T00:00:01")  # its original method again
    cycle = run_cycle_in(af, config, env, plan, new_day=False)
    assert cycle.ok, [(r.dag_id, r.state) for r in cycle.reports]
    runs = _by_dag(cycle)
    ts = {
        c: slack.ts_of(slack.posted().index(m))
        for c, m in zip(channels, (ingest, finance, late, late_stage), strict=True)
    }

    def replies(channel):
        return [m for m in slack.posted() if m.get("thread_ts") == ts[channel]]

    [r1] = _wait(lambda: replies("#data-ingestion"))
    [r2] = _wait(lambda: replies("#finance-data"))
    [r3] = _wait(lambda: replies("#growth-data"))  # from the DAG processor: DAG-level success
    [r4] = _wait(lambda: replies("#data-alerts"))  # the catch-all stage after finance and marketing
    assert r1["text"].startswith(
        f"✅ Recovered: meltano_tap_marketing.meltano_run succeeded in run "
        f"{runs['meltano_tap_marketing'].run_id} (try 1); failing since "
    )
    assert r2["text"].startswith(f"✅ Recovered: dbt_finance.dbt_build succeeded in run {runs['dbt_finance'].run_id}")
    assert r3["text"].startswith(f"✅ Recovered: dbt_marketing succeeded in run {runs['dbt_marketing'].run_id}")
    assert r4["text"].startswith(f"✅ Recovered: dbt_untagged_2 succeeded in run {runs['dbt_untagged_2'].run_id}")
    # ...and the failure messages now read resolved
    updated = _wait(lambda: len(slack.updated()) >= 4 and slack.updated())
    assert {u["ts"]: u["text"].split(":")[0] for u in updated} == {t: "✅ Resolved" for t in ts.values()}
    # the ingestion route's e-mail gets its answer, in the same e-mail thread
    mails = _wait(lambda: len(smtp.received) >= 2 and [r.message() for r in smtp.received])
    recovery = next(m for m in mails if "Recovered" in m["Subject"])
    assert recovery["In-Reply-To"] == mails[0]["Message-ID"]
    # no more top-level messages than the four incidents
    assert len([m for m in slack.posted() if "thread_ts" not in m]) == 4


def _record(key: str, values: dict) -> None:
    """For bench/alert_latency.py, when asked (ALERT_LATENCY_E2E_JSON names the file): a test writes
    nothing under the repository's var/ by itself (test_byo_airflow checks it, perhaps meanwhile)."""
    if not (target := os.environ.get("ALERT_LATENCY_E2E_JSON")):
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(key, []).extend(values.values())
    path.write_text(json.dumps(data, indent=1))


def test_meltano_state_dag_reads_and_writes_state_with_a_backup(pipeline):
    _cycle(pipeline, "second")
    af, config, env, plan, _ = pipeline
    state_id = "dev:tap-crm-to-target-duckdb"

    def trigger(conf: dict) -> dict:
        run_id = af.client.trigger("meltano_state", conf)
        [run] = af.client.wait_for_runs(
            "meltano_state", lambda r: r["dag_run_id"] == run_id and r["state"] in ("success", "failed"), timeout=600
        )
        entry = (
            af.client.get(f"/dags/meltano_state/dagRuns/{run_id}/taskInstances/meltano_state/xcomEntries/return_value")
            if run["state"] == "success"
            else {}
        )
        value = entry.get("value") if entry else None
        return {
            "state": run["state"],
            "value": json.loads(value) if isinstance(value, str) else value,
            "run_id": run_id,
        }

    got = trigger({"action": "get", "state_id": state_id})
    assert got["state"] == "success"
    bookmark = got["value"]["before"]["singer_state"]["bookmarks"]["accounts"]["replication_key_value"]
    assert bookmark.startswith("2024-01-0")
    new = {
        "singer_state": {
            "bookmarks": {"accounts": {"replication_key": "updated_at", "replication_key_value": "2024-01-01T00:00:00"}}
        }
    }
    dry = trigger({"action": "set", "state_id": state_id, "state_json": json.dumps(new)})
    assert (
        dry["state"] == "success" and dry["value"]["dry_run"] is True and "2024-01-01T00:00:00" in dry["value"]["diff"]
    )
    assert trigger({"action": "get", "state_id": state_id})["value"]["before"] == got["value"]["before"]
    real = trigger({"action": "set", "state_id": state_id, "state_json": json.dumps(new), "dry_run": False})
    assert real["state"] == "success" and real["value"]["after"] == new
    assert real["value"]["backup_path"].startswith(env["MELTANO_STATE_BACKUP_DIR"])
    backup = json.loads(Path(real["value"]["backup_path"]).read_text())
    assert backup["state"] == got["value"]["before"]
    refused = trigger(
        {"action": "set", "state_id": state_id, "state_json": '{"no_singer_state": {}}', "dry_run": False}
    )
    assert refused["state"] == "failed"
    # While the source's DAG has a run queued (paused here, so it stays queued), writes are refused.
    af.client.unpause("meltano_tap_crm", paused=True)
    queued = af.client.trigger("meltano_tap_crm")
    busy = trigger(
        {"action": "set", "state_id": state_id, "state_json": json.dumps(got["value"]["before"]), "dry_run": False}
    )
    assert busy["state"] == "failed"
    assert trigger({"action": "get", "state_id": state_id})["value"]["before"] == new, "nothing was written"
    log = af.client.request(
        "GET", f"/dags/meltano_state/dagRuns/{busy['run_id']}/taskInstances/meltano_state/logs/1"
    ).text
    assert "meltano_tap_crm has 1 run(s) running or queued" in log
    assert [r["state"] for r in af.client.dag_runs("meltano_tap_crm") if r["dag_run_id"] == queued] == ["queued"]
