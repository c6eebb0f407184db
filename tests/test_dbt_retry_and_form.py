"""A dbt task's retry from the point of failure, and the dbt DAGs' run form, through a real Airflow
(scheduler, dag-processor, api-server, triggerer as processes) on a small dbt project of its own.

The project (written into tmp): DAG `dbt_up` builds base_a, base_b, flaky -> after_flaky, greeting
(reads the var `greeting`) and appended (incremental: one row per build); DAG `dbt_down` builds
down_report from base_a AND after_flaky. `flaky` reads `<flags>/ok.csv`: without the file it fails.
The project's on-run-end hook writes the file unless the var `heal` is false, so a first try fails
and its retry succeeds, with no timing in between: deterministic.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from conftest import SLACK_TOKEN, airflow_test_env, pipeline_config

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(1200)]

UP, DOWN = "dbt_up", "dbt_down"
MODELS = ("base_a", "base_b", "flaky", "after_flaky", "greeting", "appended")
RELATIONS = {f"analytics.{m}" for m in MODELS}
FAILED_AND_SKIPPED = {"model.retry_demo.flaky", "model.retry_demo.after_flaky", "test.retry_demo.not_null_flaky_id"}

FILES = {
    "dbt_project.yml": """
name: retry_demo
version: "1.0"
config-version: 2
profile: retry_demo
model-paths: [models]
macro-paths: [macros]
on-run-end:
  - "{{ heal() }}"
models:
  retry_demo:
    +materialized: table
    up: {+tags: [up]}
    down: {+tags: [down]}
""",
    "profiles/profiles.yml": """
retry_demo:
  target: duckdb
  outputs:
    duckdb: {type: duckdb, path: "{{ env_var('WAREHOUSE_DUCKDB_PATH') }}", schema: analytics, threads: 2}
""",
    "models/up/ids.sql": "{{ config(materialized='ephemeral') }}\nselect 1 as id union all select 2 as id",
    "models/up/base_a.sql": "select id from {{ ref('ids') }}",
    "models/up/base_b.sql": "select 10 as id",
    # fails while <flags>/ok.csv does not exist (DuckDB: "No files found that match the pattern")
    "models/up/flaky.sql": "select a.id from {{ ref('base_a') }} a, read_csv('{{ env_var('RETRY_FLAG_DIR') }}/ok.csv')",
    "macros/heal.sql": """
{% macro heal() %}
{% if var('heal', true) %}copy (select 1 as ok) to '{{ env_var('RETRY_FLAG_DIR') }}/ok.csv' (header)
{% else %}select 1{% endif %}
{% endmacro %}
""",
    "models/up/after_flaky.sql": "select id from {{ ref('flaky') }}",
    "models/up/greeting.sql": "select '{{ var('greeting', 'hello') }}' as greeting",
    "models/up/appended.sql": "{{ config(materialized='incremental') }}\nselect '{{ invocation_id }}' as invocation_id",
    "models/up/schema.yml": """
version: 2
models:
  - name: base_a
    columns: [{name: id, data_tests: [not_null]}]
  - name: flaky
    columns: [{name: id, data_tests: [not_null]}]
""",
    "models/down/down_report.sql": "select a.id from {{ ref('base_a') }} a join {{ ref('after_flaky') }} f using (id)",
    # a test of dbt_down that also reads dbt_up's base_a: selecting base_a in dbt_up must not reach it
    "models/down/schema.yml": """
version: 2
models:
  - name: down_report
    columns: [{name: id, data_tests: [{relationships: {to: ref('base_a'), field: id}}]}]
""",
}


def _write_project(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    return root


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, installed, alert_sinks):
    import yaml

    from orchestrator.config import load_config
    from orchestrator.local.airflow_cycle import prepare, start_airflow
    from orchestrator.plan import plan_from_config
    from orchestrator.runners.dbt import DbtProjectRef, run_dbt

    slack, smtp = alert_sinks
    tmp = tmp_path_factory.mktemp("retry_form")
    project = _write_project(tmp / "retry_demo")
    path = pipeline_config(tmp, retries=1, retry_delay_seconds=1, max_retry_delay_seconds=2)
    data = yaml.safe_load(path.read_text())
    data["dbt"].update(
        project_dir=str(project),
        manifest=str(project / "target" / "manifest.json"),
        profiles_dir=str(project / "profiles"),
        tags=["up", "down"],
        catch_all={"enabled": False},
    )
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, "embedded")
    env = airflow_test_env(config, tmp, slack, smtp, SLACK_TOKEN)
    flags = tmp / "flags"
    flags.mkdir()
    env["RETRY_FLAG_DIR"] = str(flags)
    Path(env["WAREHOUSE_DUCKDB_PATH"]).parent.mkdir(parents=True, exist_ok=True)
    run_dbt(["parse"], env=env, project=DbtProjectRef.of(config, env))  # the manifest the DAGs render from
    plan = plan_from_config(config, cache_dir=None)
    assert not plan.errors, plan.errors
    dbt_dags = {d.dag_id: d for d in plan.of_kind("dbt")}
    assert set(dbt_dags) == {UP, DOWN}
    assert set(dbt_dags[DOWN].schedule.assets) == {"analytics.base_a", "analytics.after_flaky"}
    af = start_airflow(config, env, plan)
    try:
        prepare(af, plan)
        yield af, env, flags
    finally:
        af.stop()


# ------------------------------------------------------------------ helpers


def _run(af, dag_id: str, conf: dict | None = None, timeout: float = 240) -> dict:
    """Trigger a run and wait until it has finished; the run."""
    run_id = af.client.trigger(dag_id, conf)
    [run] = af.client.wait_for_runs(
        dag_id, lambda r: r["dag_run_id"] == run_id and r["state"] in ("success", "failed"), timeout=timeout
    )
    return run


def _ti(af, dag_id: str, run_id: str) -> dict:
    [ti] = af.client.task_instances(dag_id, run_id)
    return ti


def _events(af, run_id: str) -> dict[str, list[dict]]:
    """This run's Asset events by Asset name."""
    out: dict[str, list[dict]] = {}
    for e in af.client.asset_events(source_dag_id=UP, source_run_id=run_id):
        out.setdefault(e["name"], []).append(e)
    return out


def _built_in_try(events: dict[str, list[dict]]) -> dict[str, int]:
    assert all(len(v) == 1 for v in events.values()), {k: len(v) for k, v in events.items()}
    return {name: v[0]["extra"]["built_in_try"] for name, v in events.items()}


def _run_results(env, ti: dict) -> dict[str, str]:
    """The last try's dbt results in the DAG's private target dir: unique_id -> status (hooks left out)."""
    path = Path(env["DBT_RUNS_DIR"]) / UP / ti["task_id"] / "run_results.json"
    results = json.loads(path.read_text())["results"]
    # a test's unique_id ends in a hash (test.retry_demo.not_null_flaky_id.eb8a0a51fa): without it
    return {
        ".".join(r["unique_id"].split(".")[:3]): r["status"]
        for r in results
        if not r["unique_id"].startswith("operation.")
    }


def _log(af, dag_id: str, ti: dict) -> str:
    path = f"/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
    return af.client.request("GET", path).text


def _query(env, sql: str) -> list[tuple]:
    with duckdb.connect(env["WAREHOUSE_DUCKDB_PATH"], read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _all_uids() -> set[str]:
    tests = {"test.retry_demo.not_null_base_a_id", "test.retry_demo.not_null_flaky_id"}
    return {f"model.retry_demo.{m}" for m in MODELS} | tests


# ------------------------------------------------------------------ retry from the point of failure


def test_a_retry_builds_only_what_failed_and_emits_one_event_per_relation(airflow):
    af, env, flags = airflow
    (flags / "ok.csv").unlink(missing_ok=True)
    run = _run(af, UP)
    ti = _ti(af, UP, run["dag_run_id"])
    assert (run["state"], ti["try_number"]) == ("success", 2)
    # The retry ran `dbt retry`: the failed model, what its failure skipped, nothing else.
    assert _run_results(env, ti) == {u: ("pass" if u.startswith("test.") else "success") for u in FAILED_AND_SKIPPED}
    assert "retry from the point of failure: `dbt retry` on try 1's results (1 failed)" in _log(af, UP, ti)
    # One event per relation in this DAG run, try 1's builds counted, each with the try that built it.
    built = _built_in_try(_events(af, run["dag_run_id"]))
    assert built == {r: 2 if r in ("analytics.flaky", "analytics.after_flaky") else 1 for r in RELATIONS}
    # Every Asset dbt_down reads was updated: it starts, and builds from the retried model.
    [down] = af.client.wait_for_runs(DOWN, since=_since(run), timeout=300)
    assert down["state"] == "success" and down["run_type"] == "asset_triggered"
    assert _query(env, "select count(*) from analytics.down_report") == [(2,)]


def _since(run: dict):
    from orchestrator.local.client import parse_ts

    return parse_ts(run["run_after"])


_state: dict[str, dict] = {}


def test_a_retry_that_fails_again_retries_only_the_failures(airflow):
    af, env, flags = airflow
    (flags / "ok.csv").unlink(missing_ok=True)
    run = _run(af, UP, {"vars": {"heal": False}})  # the hook does not write the file: both tries fail
    ti = _ti(af, UP, run["dag_run_id"])
    assert (run["state"], ti["state"], ti["try_number"]) == ("failed", "failed", 2)
    results = _run_results(env, ti)
    assert set(results) == FAILED_AND_SKIPPED, results
    assert results["model.retry_demo.flaky"] == "error"
    assert _events(af, run["dag_run_id"]) == {}  # a failed task emits nothing
    _state["failed"] = run


def test_clearing_the_failed_task_by_hand_retries_from_the_failure(airflow):
    af, env, flags = airflow
    run = _state["failed"]
    (flags / "ok.csv").write_text("ok\n1\n")  # what was broken is fixed
    resp = af.client.request(
        "POST",
        f"/dags/{UP}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run["dag_run_id"], "only_failed": True, "reset_dag_runs": True},
    )
    assert resp.status_code == 200, resp.text
    af.client.wait_for_runs(UP, lambda r: r["dag_run_id"] == run["dag_run_id"] and r["state"] == "success", timeout=480)
    ti = _ti(af, UP, run["dag_run_id"])
    assert ti["try_number"] == 3
    assert set(_run_results(env, ti)) == FAILED_AND_SKIPPED
    built = _built_in_try(_events(af, run["dag_run_id"]))
    assert built == {r: 3 if r in ("analytics.flaky", "analytics.after_flaky") else 1 for r in RELATIONS}


def test_retry_from_failure_off_rebuilds_the_whole_selection(airflow):
    af, env, flags = airflow
    # The run above set off dbt_down (its second run): its dbt build runs the project's on-run-end
    # hook too, which writes the file. Let it finish before removing the file.
    af.client.wait_for_runs(DOWN, count=2, timeout=300)
    (flags / "ok.csv").unlink(missing_ok=True)
    run = _run(af, UP, {"vars": {"heal": False}, "retry_from_failure": False})
    ti = _ti(af, UP, run["dag_run_id"])
    assert (run["state"], ti["try_number"]) == ("failed", 2)
    results = _run_results(env, ti)  # try 2: `dbt build` of everything again, not `dbt retry`
    assert set(results) == _all_uids(), results
    assert results["model.retry_demo.base_a"] == "success" and results["model.retry_demo.flaky"] == "error"


def test_a_new_dag_run_after_a_failed_one_builds_the_whole_selection(airflow):
    af, env, flags = airflow
    (flags / "ok.csv").write_text("ok\n1\n")
    run = _run(af, UP)  # the task's last try (the run before) failed: this run must not `dbt retry` it
    ti = _ti(af, UP, run["dag_run_id"])
    assert (run["state"], ti["try_number"]) == ("success", 1)
    assert set(_run_results(env, ti)) == _all_uids()
    assert _built_in_try(_events(af, run["dag_run_id"])) == dict.fromkeys(RELATIONS, 1)


# ------------------------------------------------------------------ the run form


def test_a_select_inside_the_dag_builds_and_emits_only_that(airflow):
    af, env, _ = airflow
    # dbt_down ran after each dbt_up run that updated both its Assets (the three above): let them finish
    before = len(af.client.wait_for_runs(DOWN, count=3, timeout=300))
    run = _run(af, UP, {"select": "+base_a"})  # with the ephemeral model it reads: no DAG's node, fine
    ti = _ti(af, UP, run["dag_run_id"])
    assert run["state"] == "success"
    assert _run_results(env, ti) == {"model.retry_demo.base_a": "success", "test.retry_demo.not_null_base_a_id": "pass"}
    assert set(_events(af, run["dag_run_id"])) == {"analytics.base_a"}
    # dbt_down reads base_a AND after_flaky: with only base_a updated it must not start.
    time.sleep(8)  # several scheduler loops
    assert len(af.client.dag_runs(DOWN)) == before
    queued = {e["asset_id"] for e in af.client.queued_asset_events(DOWN)}
    assert queued == {af.client.asset_id("analytics.base_a")}


def test_an_exclude_alone_narrows_the_dags_own_selection(airflow):
    af, env, _ = airflow
    run = _run(af, UP, {"exclude": "flaky+ greeting appended"})
    ti = _ti(af, UP, run["dag_run_id"])
    assert run["state"] == "success"
    assert _run_results(env, ti) == {
        "model.retry_demo.base_a": "success",
        "model.retry_demo.base_b": "success",
        "test.retry_demo.not_null_base_a_id": "pass",
    }
    assert set(_events(af, run["dag_run_id"])) == {"analytics.base_a", "analytics.base_b"}


def test_options_in_the_selection_are_refused(airflow):
    af, _, _ = airflow
    run = _run(af, UP, {"select": "base_a --target-path /tmp/elsewhere"})
    ti = _ti(af, UP, run["dag_run_id"])
    assert (run["state"], ti["try_number"]) == ("failed", 1)
    assert "select: dbt selection syntax only, not options (--target-path)" in _log(af, UP, ti)


def test_a_select_outside_the_dag_is_refused_without_retries(airflow, alert_sinks):
    af, env, _ = airflow
    slack, _ = alert_sinks
    run = _run(af, UP, {"select": "down_report"})
    ti = _ti(af, UP, run["dag_run_id"])
    assert (run["state"], ti["state"], ti["try_number"]) == ("failed", "failed", 1)  # refused at once
    message = "the run form's selection reaches outside this DAG: model.retry_demo.down_report."
    assert message in _log(af, UP, ti)
    assert _events(af, run["dag_run_id"]) == {}
    deadline = time.monotonic() + 300
    while not any(message in json.dumps(m) for m in slack.posted()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert any(message in json.dumps(m) for m in slack.posted()), [m.get("text") for m in slack.posted()]


def test_full_refresh_and_vars_reach_dbt(airflow):
    af, env, _ = airflow
    assert _query(env, "select count(*) from analytics.appended")[0][0] >= 2  # one row per incremental build
    conf = {"select": "appended greeting", "full_refresh": True, "vars": {"greeting": "bonjour"}}
    run = _run(af, UP, conf)
    assert run["state"] == "success"
    assert set(_events(af, run["dag_run_id"])) == {"analytics.appended", "analytics.greeting"}
    assert _query(env, "select greeting from analytics.greeting") == [("bonjour",)]
    assert _query(env, "select count(*) from analytics.appended") == [(1,)]  # rebuilt from scratch


def test_the_retry_of_a_full_refresh_partial_run_keeps_its_form(airflow):
    af, env, flags = airflow
    (flags / "ok.csv").unlink(missing_ok=True)  # no dbt_down run is under way: its Assets were not both updated
    run = _run(af, UP, {"select": "flaky after_flaky", "full_refresh": True})  # not flaky+: down_report
    ti = _ti(af, UP, run["dag_run_id"])
    # `dbt retry` takes --full-refresh and --select from try 1's run_results.json
    assert (run["state"], ti["try_number"]) == ("success", 2)
    assert set(_run_results(env, ti)) == FAILED_AND_SKIPPED
    assert _built_in_try(_events(af, run["dag_run_id"])) == {"analytics.flaky": 2, "analytics.after_flaky": 2}
