"""End to end through a real Airflow (scheduler, dag-processor, api-server, triggerer as processes),
on the embedded default: tick -> Meltano DAGs -> dbt DAGs, wired only by Asset events."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from orchestrator.profiles import REPO_ROOT
from pipeline_expectations import CAMPAIGN_SQL, DAILY_SQL, assert_marts_match, expected_extracted, expected_row_counts

pytestmark = [pytest.mark.airflow, pytest.mark.meltano, pytest.mark.timeout(1500)]
SOURCE_OF = {"meltano_tap_shop": "shop", "meltano_tap_crm": "crm", "meltano_tap_marketing": "marketing"}


def _test_config(tmp: Path) -> Path:
    """The repo's config, with absolute project paths and no retries (failures must show at once)."""
    data = yaml.safe_load((REPO_ROOT / "orchestration.yml").read_text())
    data["dbt"]["project_dir"] = str(REPO_ROOT / "dbt_project")
    data["dbt"]["manifest"] = str(REPO_ROOT / "dbt_project" / "target" / "manifest.json")
    data["meltano"]["project_dir"] = str(REPO_ROOT / "meltano")
    data["defaults"].update(retries=0, retry_delay_seconds=1)
    path = tmp / "orchestration.yml"  # the profile's relative paths (var/...) now resolve under tmp
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, installed):
    from orchestrator.airflow_cycle import prepare, start_airflow
    from orchestrator.cycle import prepare_warehouse
    from orchestrator.plan import load_config, plan_from_config

    tmp = tmp_path_factory.mktemp("e2e")
    config = load_config(_test_config(tmp), "embedded")
    env = config.profile.environment()
    env.update(ORCHESTRATOR_AIRFLOW_HOME=str(tmp / "airflow"), DBT_RUNS_DIR=str(tmp / "dbt"),
               ORCHESTRATOR_CACHE_DIR=str(tmp / "cache"), MELTANO_STATE_BACKUP_DIR=str(tmp / "backups"))
    prepare_warehouse(config.profile, env)
    plan = plan_from_config(config, cache_dir=None)
    af = start_airflow(config, env)
    try:
        prepare(af, plan)
        yield af, config, env, plan, {}
    finally:
        af.stop()


def _cycle(pipeline, key: str, **kwargs):
    from orchestrator.airflow_cycle import run_cycle_in

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
    # dbt_finance ran only after dbt_core produced fct_orders: its trigger came from dbt_core's run.
    fct = next(e for e in runs["dbt_finance"].triggered_by if e["name"] == "analytics.fct_orders")
    assert fct["source_dag_id"] == "dbt_core" and fct["source_run_id"] == runs["dbt_core"].run_id
    assert runs["dbt_finance"].start >= runs["dbt_core"].end
    assert cycle.raw_rows == expected_row_counts(1)
    for dag_id, source in SOURCE_OF.items():
        extracted = {e["name"].split(".")[1]: e["extra"]["records_extracted"] for e in runs[dag_id].emitted}
        assert extracted == expected_extracted(1, source), dag_id


def test_second_cycle_is_incremental_and_the_marts_are_right(pipeline):
    _cycle(pipeline, "first")
    cycle = _cycle(pipeline, "second")
    _, _, env, _, _ = pipeline
    runs = _by_dag(cycle)
    assert cycle.ok and cycle.source_days == [2]
    for dag_id, source in SOURCE_OF.items():
        extracted = {e["name"].split(".")[1]: e["extra"]["records_extracted"] for e in runs[dag_id].emitted}
        assert extracted == expected_extracted(2, source), dag_id
    assert cycle.raw_rows == expected_row_counts(2)
    statuses = {e["extra"]["status"] for d in ("dbt_core", "dbt_finance", "dbt_marketing") for e in runs[d].emitted}
    assert statuses == {"success"}
    with duckdb.connect(env["WAREHOUSE_DUCKDB_PATH"], read_only=True) as conn:
        assert_marts_match(conn.execute(DAILY_SQL).fetchall(), conn.execute(CAMPAIGN_SQL).fetchall(), last_day=2)


def test_a_dbt_dag_whose_source_failed_does_not_run(pipeline):
    from demo_data.writers import FileDestination, advance
    from orchestrator.airflow_cycle import run_cycle_in

    _cycle(pipeline, "second")
    af, config, env, plan, _ = pipeline
    advance(FileDestination(env["DEMO_DATA_DIR"]))  # day 3 ...
    with open(Path(env["DEMO_DATA_DIR"]) / "marketing" / "ad_spend.jsonl", "a") as fh:
        fh.write('{"id": 99999, "broken json\n')  # ... and marketing's export is corrupt
    since = time.time()
    cycle = run_cycle_in(af, config, env, plan, new_day=False,
                         wait_for=["tick", "meltano_tap_shop", "meltano_tap_crm", "meltano_tap_marketing",
                                   "dbt_core", "dbt_finance"])
    runs = _by_dag(cycle)
    assert runs["meltano_tap_marketing"].state == "failed"
    assert runs["meltano_tap_marketing"].emitted == []
    assert all(runs[d].state == "success" for d in ("meltano_tap_shop", "meltano_tap_crm", "dbt_core", "dbt_finance"))
    # The failure says why: the tap's error, with the file and line, is in the task's log tail.
    ti = af.client.task_instances("meltano_tap_marketing", runs["meltano_tap_marketing"].run_id)[0]
    assert ti["state"] == "failed"
    time.sleep(10)  # well past a scheduler hop: dbt_marketing would have started by now
    newer = [r for r in af.client.dag_runs("dbt_marketing") if r["start_date"] and
             r["start_date"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since))]
    assert newer == [], "dbt_marketing must wait for the marketing tables"
    waiting = {e["asset_id"] for e in af.client.queued_asset_events("dbt_marketing")}
    assert waiting == {af.client.asset_id("analytics.fct_orders")}, \
        "only core's new model is queued; marketing's tables never came"


def test_meltano_state_dag_reads_and_writes_state_with_a_backup(pipeline):
    _cycle(pipeline, "second")
    af, config, env, plan, _ = pipeline
    state_id = "dev:tap-crm-to-target-duckdb"

    def trigger(conf: dict) -> dict:
        run_id = af.client.trigger("meltano_state", conf)
        [run] = af.client.wait_for_runs("meltano_state", lambda r: r["dag_run_id"] == run_id
                                        and r["state"] in ("success", "failed"), timeout=180)
        entry = af.client.get(f"/dags/meltano_state/dagRuns/{run_id}/taskInstances/meltano_state/"
                              f"xcomEntries/return_value") if run["state"] == "success" else {}
        value = entry.get("value") if entry else None
        return {"state": run["state"], "value": json.loads(value) if isinstance(value, str) else value,
                "run_id": run_id}

    got = trigger({"action": "get", "state_id": state_id})
    assert got["state"] == "success"
    bookmark = got["value"]["before"]["singer_state"]["bookmarks"]["accounts"]["replication_key_value"]
    assert bookmark.startswith("2024-01-0")
    new = {"singer_state": {"bookmarks": {"accounts": {"replication_key": "updated_at",
                                                       "replication_key_value": "2024-01-01T00:00:00"}}}}
    dry = trigger({"action": "set", "state_id": state_id, "state_json": json.dumps(new)})
    assert dry["state"] == "success" and dry["value"]["dry_run"] is True and "2024-01-01T00:00:00" in dry["value"]["diff"]
    assert trigger({"action": "get", "state_id": state_id})["value"]["before"] == got["value"]["before"]
    real = trigger({"action": "set", "state_id": state_id, "state_json": json.dumps(new), "dry_run": False})
    assert real["state"] == "success" and real["value"]["after"] == new
    assert real["value"]["backup_path"].startswith(env["MELTANO_STATE_BACKUP_DIR"])
    backup = json.loads(Path(real["value"]["backup_path"]).read_text())
    assert backup["state"] == got["value"]["before"]
    refused = trigger({"action": "set", "state_id": state_id, "state_json": '{"no_singer_state": {}}',
                       "dry_run": False})
    assert refused["state"] == "failed"
    # While the source's DAG has a run queued (paused here, so it stays queued), writes are refused.
    af.client.unpause("meltano_tap_crm", paused=True)
    queued = af.client.trigger("meltano_tap_crm")
    busy = trigger({"action": "set", "state_id": state_id, "state_json": json.dumps(got["value"]["before"]),
                    "dry_run": False})
    assert busy["state"] == "failed"
    assert trigger({"action": "get", "state_id": state_id})["value"]["before"] == new, "nothing was written"
    log = af.client.request("GET", f"/dags/meltano_state/dagRuns/{busy['run_id']}/taskInstances/meltano_state/"
                                   f"logs/1").text
    assert "meltano_tap_crm has 1 run(s) running or queued" in log
    assert [r["state"] for r in af.client.dag_runs("meltano_tap_crm") if r["dag_run_id"] == queued] == ["queued"]
