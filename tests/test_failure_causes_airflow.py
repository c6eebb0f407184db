"""A failed run says why, through a real Airflow (issue 21, item 4): `orchestrator run` on a copy of
the bike-share fixture whose docks export folder is missing and one of whose dbt models does not
compile. The console prints, under each failed DAG, the failed task's try, its root error line
and its log file (from Airflow's REST API), and the Slack alert of each failure carries the same
line at the end of its headline (a local Slack-compatible server).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import yaml
from conftest import SLACK_TOKEN
from fixture_project import BIN, DBT_TARGET, copy_fixture
from test_byo_airflow import INIT_ARGS, cli, states, user_env

pytestmark = [pytest.mark.airflow, pytest.mark.meltano]
MODEL = "models/marts/quality/dq_bike_inspections.sql"
DBT_ROOT = f"Compilation Error in model dq_bike_inspections ({MODEL}): inspections need a bike_code"


def _failure_block(stdout: str, dag_id: str) -> list[str]:
    """The lines the report prints under a DAG's row, up to the next DAG's row."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == [dag_id, "failed"])
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line)
    return block


@pytest.mark.timeout(1800)
def test_orchestrator_run_prints_each_failures_root_line_and_log_and_the_alerts_carry_it(tmp_path, alert_sinks):
    from alerting.rendering.slack_message import escape_mrkdwn

    slack, smtp = alert_sinks
    fx = copy_fixture(tmp_path)
    shutil.rmtree(fx.data_dir / "docks")  # the dock system's export folder is gone
    model = fx.dbt_dir / MODEL
    raise_it = "{% if execute %}{{ exceptions.raise_compiler_error('inspections need a bike_code') }}{% endif %}"
    model.write_text(raise_it + "\n" + model.read_text())

    home = tmp_path / "airflow"
    env = user_env(
        fx,
        ORCHESTRATOR_AIRFLOW_HOME=str(home),
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        ALERTING_SLACK_BASE_URL=slack.api_url,
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=str(smtp.port),
    )
    init, _ = cli([str(BIN / "orchestrator"), "init", *INIT_ARGS, "--target", DBT_TARGET, "--parse"], fx.root, env)
    assert init.returncode == 0, init.stderr
    config = fx.root / "orchestration.yml"
    data = yaml.safe_load(config.read_text())
    data["defaults"] = {"retries": 0}  # one try: the cycle ends at the first failure
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    (fx.root / "alerting.yml").write_text(yaml.safe_dump({"quiet": False, "default": {"slack_channel": "#data"}}))

    run, wall = cli([str(BIN / "orchestrator"), "--config", "orchestration.yml", "run"], fx.root, env, timeout=1500)
    print(f"orchestrator run with two failures: {wall:.0f} s")
    assert run.returncode == 1, run.stderr[-3000:]
    got = states(run.stdout)
    assert got["meltano_tap_docks"] == "failed" and got["dbt_ingest_quality"] == "failed", got

    docks = fx.meltano_dir / "data" / "docks"
    meltano_summary = (
        "meltano --environment staging run tap-docks target-lakehouse exited with 1: "
        f"FileNotFoundError: data_dir {docks} is not a directory (base_dir + data_dir)"
    )
    block = _failure_block(run.stdout, "meltano_tap_docks")
    assert block[:1] == [f"    ! meltano_run failed (try 1): {meltano_summary}"], block
    dbt_block = _failure_block(run.stdout, "dbt_ingest_quality")
    [dbt_line] = [line for line in dbt_block if line.startswith("    ! dbt_build failed (try 1): ")]
    assert dbt_line.startswith("    ! dbt_build failed (try 1): dbt build: 1 failed (model dq_bike_inspections)")
    assert dbt_line.endswith(f": {DBT_ROOT}"), dbt_line
    dbt_summary = dbt_line.split(": ", 1)[1]

    # The log lines name the task try's log file in the Airflow home, and it holds the failure.
    for dag_id, lines in (("meltano_tap_docks", block), ("dbt_ingest_quality", dbt_block)):
        [log] = [Path(line.split("log: ", 1)[1]) for line in lines if line.startswith("      log: ")]
        assert log.is_file() and log.is_relative_to(home / "logs") and f"dag_id={dag_id}" in str(log), log
        assert log.name == "attempt=1.log" and "Task failed with exception" in log.read_text()

    # The alerts: each headline ends with the same root line.
    def headlines() -> list[str]:
        return [m["text"] for m in slack.posted() if m.get("channel") == "#data" and "thread_ts" not in m]

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(headlines()) < 2:
        time.sleep(1)
    texts = headlines()
    assert any(t.startswith("🔴 Task failed: meltano_tap_docks.meltano_run") for t in texts), texts
    assert [t for t in texts if "meltano_tap_docks" in t][0].endswith(f": {escape_mrkdwn(meltano_summary)}")
    assert [t for t in texts if "dbt_ingest_quality" in t][0].endswith(f": {escape_mrkdwn(dbt_summary)}")
