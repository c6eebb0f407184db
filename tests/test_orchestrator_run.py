"""`orchestrator run`: which DAGs a failure blocks (pure), and the command itself through a real
Airflow: repeated on one Airflow home with an overdue housekeeping run and a changed config, and
ending as soon as a failed extractor has decided the cycle."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import pipeline_config

from orchestrator.config import REPO_ROOT
from orchestrator.local.report import RunReport, blocked_dags, format_report

# The demo plan's graph: dag_id -> (schedule: all of these Assets, outlets).
GRAPH = {
    "tick": ((), ("tick",)),
    "meltano_tap_shop": (("tick",), ("raw_shop.customers", "raw_shop.orders", "raw_shop.payments")),
    "meltano_tap_crm": (("tick",), ("raw_crm.accounts",)),
    "meltano_tap_marketing": (("tick",), ("raw_marketing.campaigns", "raw_marketing.ad_spend")),
    "dbt_core": (
        ("raw_crm.accounts", "raw_shop.customers", "raw_shop.orders", "raw_shop.payments"),
        ("analytics.fct_orders", "staging.stg_orders"),
    ),
    "dbt_finance": (("analytics.fct_orders", "raw_shop.payments"), ("analytics.fct_payments",)),
    "dbt_marketing": (
        ("analytics.fct_orders", "raw_marketing.ad_spend", "raw_marketing.campaigns"),
        ("analytics.marketing_campaign_performance",),
    ),
}
SHOP = {"raw_shop.customers", "raw_shop.orders", "raw_shop.payments"}


# --------------------------------------------------------------------------- blocked, pure


def test_a_failed_extractor_blocks_what_needs_its_assets_even_next_to_assets_that_came():
    finished = {"tick": "success", "meltano_tap_shop": "success", "meltano_tap_crm": "success"}
    finished |= {"meltano_tap_marketing": "failed", "dbt_core": "success"}
    arrived = {"tick", *SHOP, "raw_crm.accounts", "analytics.fct_orders", "staging.stg_orders"}
    blocked = blocked_dags(GRAPH, finished, active={"dbt_finance"}, arrived=arrived)
    assert list(blocked) == ["dbt_marketing"]
    # fct_orders came (dbt_core succeeded): only the marketing tables are missing
    assert blocked["dbt_marketing"].upstream == ("meltano_tap_marketing",)
    assert blocked["dbt_marketing"].missing == ("raw_marketing.ad_spend", "raw_marketing.campaigns")


def test_blocked_as_soon_as_the_failure_is_known_and_through_blocked_dags():
    # marketing failed while dbt_core still runs: dbt_marketing cannot start whatever dbt_core does
    graph = {**GRAPH, "dbt_growth": (("analytics.marketing_campaign_performance",), ("analytics.growth",))}
    finished = {"tick": "success", "meltano_tap_marketing": "failed", "meltano_tap_shop": "success"}
    blocked = blocked_dags(graph, finished, active={"meltano_tap_crm"}, arrived={"tick", *SHOP})
    assert set(blocked) == {"dbt_marketing", "dbt_growth"}
    assert blocked["dbt_marketing"].missing == (
        "analytics.fct_orders",
        "raw_marketing.ad_spend",
        "raw_marketing.campaigns",
    )
    assert blocked["dbt_growth"].upstream == ("meltano_tap_marketing",)  # the root, through dbt_marketing
    assert blocked["dbt_growth"].missing == ("analytics.marketing_campaign_performance",)


def test_nothing_is_blocked_while_a_producer_can_still_emit():
    finished = {"tick": "success", "meltano_tap_shop": "failed"}
    # dbt_core waits for shop (failed) and crm (still running): blocked, shop can no longer come
    blocked = blocked_dags(GRAPH, finished, active={"meltano_tap_crm", "meltano_tap_marketing"}, arrived={"tick"})
    assert set(blocked) == {"dbt_core", "dbt_finance", "dbt_marketing"}
    # all running: nothing is decided
    running = {"meltano_tap_shop", "meltano_tap_crm", "meltano_tap_marketing"}
    assert blocked_dags(GRAPH, {"tick": "success"}, active=running, arrived={"tick"}) == {}
    # an Asset no DAG of the graph emits may still come from outside: it blocks nothing
    graph = {"a": ((), ("x",)), "b": (("x", "outside"), ())}
    assert blocked_dags(graph, {"a": "success"}, active=(), arrived={"x"}) == {}
    # an event queued for the DAG before this cycle counts too: Airflow starts it once the rest comes
    finished = {"tick": "success", "meltano_tap_shop": "success", "meltano_tap_crm": "success"}
    finished |= {"dbt_core": "failed", "meltano_tap_marketing": "success"}
    arrived = {"tick", *SHOP, "raw_crm.accounts", "raw_marketing.ad_spend", "raw_marketing.campaigns"}
    queued = {"dbt_marketing": {"analytics.fct_orders"}}
    assert set(blocked_dags(GRAPH, finished, (), arrived)) == {"dbt_finance", "dbt_marketing"}
    assert set(blocked_dags(GRAPH, finished, (), arrived, queued)) == {"dbt_finance"}
    # ...but a producer that finished without emitting it does
    assert blocked_dags(graph | {"b": (("y",), ())}, {"a": "success"}, (), {"x"}) == {}
    assert blocked_dags({"a": ((), ("y",)), "b": (("y",), ())}, {"a": "success"}, (), set())["b"].upstream == ("a",)


def test_the_report_names_the_failed_upstream_and_the_missing_assets():
    reports = [
        RunReport("meltano_tap_marketing", "r1", "failed", "asset_triggered", None, None),
        RunReport(
            "dbt_marketing",
            None,
            "blocked",
            None,
            None,
            None,
            blocked_by=("meltano_tap_marketing",),
            missing=("raw_marketing.ad_spend", "raw_marketing.campaigns"),
        ),
    ]
    text = format_report(reports)
    assert re.search(r"^dbt_marketing\s+blocked\s+-\s+-\s+-$", text, re.M), text
    assert (
        "    blocked by meltano_tap_marketing; did not arrive: raw_marketing.ad_spend, raw_marketing.campaigns"
    ) in text
    assert text.endswith("1 DAG(s) blocked this cycle by meltano_tap_marketing")


class _Events:
    """The two REST calls `cycles_seen` makes, answered from a list of Asset events as the API gives them."""

    def __init__(self, events: list[dict]):
        self.events = events

    def asset_events(self, since=None, source_dag_id=None):
        return [e for e in self.events if source_dag_id in (None, e["source_dag_id"])]


def test_the_report_names_every_cycle_that_ran_a_cron_tick_beside_the_manual_one():
    from orchestrator.local.report import cycles_seen

    manual, cron = "2026-12-06T23:59:37+00:00", "2026-12-07T00:00:00+00:00"
    client = _Events(
        [
            {"name": "tick", "source_dag_id": "tick", "source_run_id": f"manual__{manual}", "extra": {"cycle": manual}},
            {"name": "tick", "source_dag_id": "tick", "source_run_id": f"scheduled__{cron}", "extra": {"cycle": cron}},
            {"name": "raw_crm.accounts", "source_dag_id": "meltano_tap_crm", "extra": {"cycle": cron}},
            {"name": "raw_shop.orders", "source_dag_id": "meltano_tap_shop", "extra": {"cycle": manual}},
        ]
    )
    cycles = cycles_seen(client, "tick", datetime(2026, 12, 6, 23, 59, tzinfo=UTC))  # type: ignore[arg-type]
    assert [(c.cycle, c.run_type) for c in cycles] == [(manual, "manual"), (cron, "scheduled")]
    reports = [
        RunReport("meltano_tap_crm", "r1", "success", "asset_triggered", None, None, emitted=[client.events[2]]),
        RunReport("meltano_tap_shop", "r2", "success", "asset_triggered", None, None, emitted=[client.events[3]]),
    ]
    text = format_report(reports, cycles=cycles)
    assert re.search(rf"^meltano_tap_crm .*\[cycle {re.escape(cron)}\]$", text, re.M), text
    assert f"Cycles that ran: 2: {manual} (by hand or orchestrator run); {cron} (the cron)" in text
    one = format_report(reports[:1], cycles=cycles[1:])
    assert "[cycle" not in one and f"Cycles that ran: 1: {cron} (the cron)" in one


# --------------------------------------------------------------------------- through a real Airflow


def _config(tmp: Path, tags: list[str] | None = None, **defaults) -> Path:
    """The repo's config isolated in `tmp` (see conftest.pipeline_config), with other dbt tags."""
    path = pipeline_config(tmp, **defaults)
    if tags is not None:
        data = yaml.safe_load(path.read_text())
        data["dbt"]["tags"] = tags
        path.write_text(yaml.safe_dump(data))
    return path


def _pipeline_dags(tmp: Path) -> set[str]:
    """The DAGs a cycle runs on the config in `tmp`: the tick, the Meltano and the dbt DAGs of its plan."""
    from orchestrator.config import load_config
    from orchestrator.plan import plan_from_config

    plan = plan_from_config(load_config(tmp / "orchestration.yml", "embedded"), cache_dir=None)
    return {d.dag_id for d in plan.dags if d.kind in ("tick", "meltano", "dbt")}


def _cli(tmp: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`orchestrator ARGS` on the config in `tmp`, writing only under `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ALERTING_SMTP", "ORCHESTRATOR_"))}
    env.update(
        ORCHESTRATOR_AIRFLOW_HOME=str(tmp / "airflow"),
        DBT_RUNS_DIR=str(tmp / "dbt"),
        ORCHESTRATOR_CACHE_DIR=str(tmp / "cache"),
        MELTANO_STATE_BACKUP_DIR=str(tmp / "backups"),
        PIPELINE_PROFILE="embedded",
    )
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--config", str(tmp / "orchestration.yml"), *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _run(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """`orchestrator run ARGS`: its result, wall time and the moment it returned (epoch)."""
    t0 = time.monotonic()
    done = _cli(tmp, "run", *args)
    print(f"\n$ orchestrator run {' '.join(args)} -> {done.returncode} in {time.monotonic() - t0:.1f}s\n{done.stdout}")
    print(done.stderr[-3000:], file=sys.stderr)
    return done, time.monotonic() - t0, time.time()


def _states(stdout: str) -> dict[str, str]:
    """DAG -> state, from the report's table."""
    return dict(re.findall(r"^(\w+)\s+(success|failed|blocked|running|queued)\s", stdout, re.M))


def _make_overdue(db: Path, dag_id: str = "alerting") -> str:
    """What a stop past a 5-minute boundary leaves: the cron DAG, unpaused, with its next run in the
    past (the last boundary but one). Returns that logical date as stored."""
    now = datetime.now(UTC).replace(tzinfo=None)
    due = now - timedelta(minutes=5 + now.minute % 5, seconds=now.second, microseconds=now.microsecond)
    stamp = due.strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(db) as conn:
        # A run the stop interrupted would hold the DAG's only active run (max_active_runs=1) and so
        # keep the overdue one from being created at all: fail it, as Airflow eventually would.
        conn.execute(
            "UPDATE dag_run SET state = 'failed' WHERE dag_id = ? AND state IN ('queued', 'running')", (dag_id,)
        )
        (paused,) = conn.execute("SELECT is_paused FROM dag WHERE dag_id = ?", (dag_id,)).fetchone()
        assert not paused, f"{dag_id} was left paused"
        conn.execute(
            "UPDATE dag SET next_dagrun = ?, next_dagrun_data_interval_start = ?, next_dagrun_data_interval_end = ?,"
            " next_dagrun_create_after = ? WHERE dag_id = ?",
            (stamp, stamp, stamp, stamp, dag_id),
        )
    return stamp


def _runs_of(db: Path, dag_id: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM dag_run WHERE dag_id = ? ORDER BY id", (dag_id,))]


def _stamp(t: datetime) -> str:
    """A UTC time as Airflow stores it in SQLite (comparable as text)."""
    return t.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.mark.airflow
@pytest.mark.meltano
@pytest.mark.timeout(1800)
def test_orchestrator_run_again_and_again_on_one_airflow_home(tmp_path, installed):
    """Three `orchestrator run`s on one Airflow home, each started with the alerting housekeeping
    run overdue (as after a stop past a 5-minute boundary), the config changed in between (retries;
    the marketing tag dropped, so dbt_marketing goes and dbt_untagged comes, then back)."""
    db = tmp_path / "airflow" / "airflow.db"
    configs = [{"retries": 0}, {"retries": 1, "tags": ["core", "finance"]}, {"retries": 2}]
    walls = []
    for i, change in enumerate(configs, 1):
        _config(tmp_path, **change)
        overdue = _make_overdue(db) if i > 1 else None
        started = _stamp(datetime.now(UTC))
        done, wall, _ = _run(tmp_path)
        walls.append(wall)
        assert done.returncode == 0, f"run {i}: {done.stderr[-3000:]}"
        states = _states(done.stdout)
        assert states == dict.fromkeys(_pipeline_dags(tmp_path), "success")
        if "tags" in change:  # marketing's models joined the catch-all stages
            assert "dbt_marketing" not in states and "dbt_untagged" in states
        assert "database is locked" not in done.stdout + done.stderr
        if overdue:
            # The scheduler started only after this start's dag-processor had parsed the alerting DAG
            # again, which replaced the stale next run stored before the stop (`overdue`) by what
            # Airflow's catchup=False allows: the next cron point after the latest run, or the latest
            # past one if the DAG missed it (it runs once, like any missed point). So the stale point
            # is never created, nor a second past one. A point that falls during this run under load
            # is an ordinary scheduled run (run_after >= started), not one of these.
            past = [r for r in _runs_of(db, "alerting") if r["run_after"] < started <= (r["queued_at"] or "")]
            stale = [r for r in past if r["run_after"] <= overdue]
            assert stale == [], f"run {i}: the stale run (due {overdue}) was created at start-up: {stale}"
            assert len(past) <= 1, f"run {i}: more than the latest missed point ran at start-up: {past}"
    print(f"\nwall times of the runs: {', '.join(f'{w:.1f}s' for w in walls)}")
    logs = (tmp_path / "airflow" / "logs" / "api-server.log").read_text(errors="replace")
    assert "database is locked" not in logs
    assert not list((REPO_ROOT / "var").glob(f"**/{tmp_path.name}*")), "wrote under the repo's var/"


@pytest.mark.airflow
@pytest.mark.meltano
@pytest.mark.timeout(900)
def test_a_failed_extractor_ends_the_run_at_once_naming_what_it_blocked(tmp_path, installed):
    """The shop export is corrupt: meltano_tap_shop fails (no retries) and every dbt DAG needs one of
    its tables, directly or through dbt_core. `orchestrator run` returns once crm and marketing have
    finished, exit 1, each dbt DAG reported `blocked` with the Assets that did not come."""
    from demo_data.writers import FileDestination, advance
    from orchestrator.config import load_config

    _config(tmp_path, retries=0)
    env = load_config(tmp_path / "orchestration.yml", "embedded").profile.environment()
    advance(FileDestination(env["DEMO_DATA_DIR"]))  # day 1 ...
    with open(Path(env["DEMO_DATA_DIR"]) / "shop" / "orders.jsonl", "a") as fh:
        fh.write('{"id": 99999, "broken json\n')  # ... and the shop's export is corrupt
    done, wall, returned = _run(tmp_path, "--no-new-day")
    assert done.returncode == 1, done.stderr[-3000:]
    states = _states(done.stdout)
    assert states == {
        "tick": "success",
        "meltano_tap_shop": "failed",
        "meltano_tap_crm": "success",
        "meltano_tap_marketing": "success",
        "dbt_untagged": "success",  # the payment_methods seed needs only the tick
        "dbt_core": "blocked",
        "dbt_finance": "blocked",
        "dbt_marketing": "blocked",
        "dbt_untagged_2": "blocked",
    }
    shop = "raw_shop.customers, raw_shop.orders, raw_shop.payments"
    for dag_id, missing in (
        ("dbt_core", shop),  # raw_crm.accounts came
        ("dbt_finance", "analytics.fct_orders, raw_shop.payments"),  # through dbt_core; the seed came
        ("dbt_marketing", "analytics.fct_orders"),  # the marketing tables came
        ("dbt_untagged_2", "analytics.finance_daily_revenue, staging.stg_ad_spend"),  # through finance, marketing
    ):
        assert f"{dag_id}: blocked by meltano_tap_shop; missing {missing}" in done.stdout
        assert re.search(
            rf"^{dag_id}\s+blocked\s.*\n    blocked by meltano_tap_shop; did not arrive: {missing}$", done.stdout, re.M
        )
    assert "4 DAG(s) blocked this cycle by meltano_tap_shop" in done.stdout
    # no blocked dbt DAG ran, and none was left queued or running
    db = tmp_path / "airflow" / "airflow.db"
    assert all(_runs_of(db, d) == [] for d in ("dbt_core", "dbt_finance", "dbt_marketing", "dbt_untagged_2"))
    [shop] = _runs_of(db, "meltano_tap_shop")
    state = shop["state"]
    latency = returned - datetime.fromisoformat(shop["end_date"]).replace(tzinfo=UTC).timestamp()
    print(f"\nmeltano_tap_shop failed -> `orchestrator run` returned: {latency:.1f}s (run {wall:.1f}s)")
    assert state == "failed" and latency < 60


@pytest.mark.airflow
@pytest.mark.meltano
@pytest.mark.timeout(900)
def test_up_status_run_down_on_one_service(tmp_path, installed):
    """`orchestrator up --detach` is the one way to keep a local Airflow (`make airflow-up` is `up` in
    the foreground): one state file; `status` reads it; `run` uses that Airflow instead of starting a
    second one on the same metadata database; `down` stops every process of it."""
    _config(tmp_path, retries=0)
    home = tmp_path / "airflow"
    # --no-print-directory: under a parent make (CI's `make test`) -n would also print "Entering directory"
    make = subprocess.run(
        ["make", "-n", "--no-print-directory", "airflow-up"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert make.stdout.strip().splitlines()[-1].endswith("/orchestrator up"), make.stdout
    try:
        up = _cli(tmp_path, "up", "--detach", timeout=400)
        assert up.returncode == 0 and up.stdout.startswith("up: http://127.0.0.1:"), up.stdout + up.stderr
        state = json.loads((home / "orchestrator-up.json").read_text())
        assert sorted(p.name for p in home.glob("*.json")) == [
            "local_secrets.json",
            "orchestrator-up.json",
            "schema-migrated.json",  # the stamp that skips a no-op `airflow db migrate` next time
            "simple_auth_manager_passwords.json",
        ]
        status = _cli(tmp_path, "status", timeout=180)
        assert status.returncode == 0 and f"up at {state['url']}" in status.stdout, status.stdout
        done, _, _ = _run(tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"==> using the Airflow of `orchestrator up` at {state['url']}" in done.stdout
        assert "starting Airflow" not in done.stdout
        assert set(_states(done.stdout).values()) == {"success"}
    finally:
        down = _cli(tmp_path, "down", timeout=300)
    assert down.returncode == 0 and down.stdout.startswith("stopped"), down.stdout + down.stderr
    assert _cli(tmp_path, "status", timeout=180).returncode == 3
    assert not (home / "orchestrator-up.json").exists()
    left = [pid for pid in (state["pid"], *state["components"].values()) if Path(f"/proc/{pid}").exists()]
    assert left == [], left
