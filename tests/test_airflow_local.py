"""orchestrator.local.launcher against a real Airflow 3.3: scheduler, dag-processor, api-server and
triggerer as processes, on small DAG files written here. One Airflow per database (module-scoped
on SQLite; one more on the local PostgreSQL), ~25 s to start each."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import pipeline_config, require_services
from sqlalchemy import create_engine, text

from orchestrator.local.airflow_env import (
    EXECUTION_API_RETRIES,
    EXECUTION_API_RETRY_WAIT_S,
    EXECUTION_API_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
)
from orchestrator.local.launcher import (
    WORKER_LOG_SERVER_PORT,
    AirflowLocalError,
    LocalAirflow,
    airflow_env,
    cycle_report,
    descendants,
    follow_cycle,
    format_report,
    utcnow,
)

pytestmark = pytest.mark.airflow

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/ll_airflow_local_test"

# Airflow 3.3: DAG authoring imports come from airflow.sdk only.
TEST_DAGS = {
    "t_tick.py": """
from airflow.sdk import DAG, Asset, task

with DAG("t_tick", schedule=None, catchup=False):
    @task(outlets=[Asset("tick")])
    def emit():
        pass
    emit()
""",
    "t_down.py": """
from airflow.sdk import DAG, Asset, task

with DAG("t_down", schedule=[Asset("tick")], catchup=False):
    @task(outlets=[Asset("raw.t1")])
    def load(*, outlet_events=None):
        outlet_events[Asset("raw.t1")].extra = {"rows": 3}
    load()
""",
    # A list of assets is an AND: a run only once both have a new event.
    "t_and.py": """
from airflow.sdk import DAG, Asset, task

with DAG("t_and", schedule=[Asset("raw.t1"), Asset("raw.t2")], catchup=False):
    @task
    def both():
        pass
    both()
""",
    # A long task whose shell runs in a session of its own: what stop() must not leave behind.
    "t_sleep.py": """
from airflow.sdk import DAG, task

with DAG("t_sleep", schedule=None, catchup=False):
    @task.bash
    def nap():
        return "sleep 600"
    nap()
""",
    # Fails its first try, passes its second: a retry the report must name, with why.
    "t_flaky.py": """
from datetime import timedelta
from airflow.sdk import DAG, get_current_context, task

with DAG("t_flaky", schedule=None, catchup=False):
    @task(retries=1, retry_delay=timedelta(seconds=1))
    def flaky():
        if get_current_context()["ti"].try_number == 1:
            raise ValueError("the source was busy")
    flaky()
""",
    # Mentions "airflow" and "DAG", so the dag-processor's safe-mode heuristic does parse it.
    "t_broken.py": """
from airflow.sdk import DAG

with DAG("t_broken" schedule=None):
    pass
""",
}
LOADABLE = ["t_tick", "t_down", "t_and", "t_sleep", "t_flaky"]


def family(af: LocalAirflow) -> set[int]:
    """Every process of a running LocalAirflow: its four components and all their descendants
    (executor workers, log servers, task processes), and anything else with its AIRFLOW_HOME."""
    roots = [p.pid for p in af.processes.values()]
    return {*roots, *descendants(roots), *processes_of(af.home)}


def processes_of(home: Path) -> set[int]:
    """Live processes started with AIRFLOW_HOME=home in their environment. (Not all: Airflow's
    setproctitle can overwrite the environment block of a renamed process.)"""
    needle = f"AIRFLOW_HOME={home.resolve()}".encode()
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def describe(pids: set[int]) -> list[str]:
    """pid, state, parent, group, session and command line of each: what a failed check shows."""
    out = []
    for pid in sorted(pids):
        try:
            st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120].decode()
            out.append(f"{pid} state={st[0]} ppid={st[1]} pgid={st[2]} sid={st[3]} {cmd}")
        except OSError:
            out.append(f"{pid} gone")
    return out


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie has ended: it only waits to be reaped)."""
    running = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                running.add(pid)
        except OSError:
            pass
    return running


@pytest.fixture(scope="module")
def dags_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dags")
    for name, source in TEST_DAGS.items():
        (folder / name).write_text(source.lstrip())
    return folder


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, dags_folder):
    """One real Airflow (SQLite, LocalExecutor) for the module, the test DAGs loaded and unpaused."""
    af = LocalAirflow(tmp_path_factory.mktemp("airflow_home"), dags_folder).start()
    try:
        af.client.wait_for_dags(LOADABLE, timeout=120)
        for dag_id in LOADABLE:
            af.client.unpause(dag_id)
        print(f"\nAirflow (SQLite) healthy after {af.startup_seconds:.1f}s: {af.timings}")
        yield af
    finally:
        processes = family(af)
        af.stop()
        print(f"\nstopped in {af.timings.get('stop', 0):.1f}s")
    assert alive(processes) == set(), f"stop() left Airflow processes behind: {describe(alive(processes))}"


# --------------------------------------------------------------------------- no processes


def test_env_uses_real_options_and_consistent_ports(tmp_path):
    env = airflow_env(tmp_path / "home", tmp_path / "dags", port=18080)
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{(tmp_path / 'home').resolve()}/airflow.db?timeout=30"
    )
    assert str(WORKER_LOG_SERVER_PORT) not in (
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
        env["AIRFLOW__API__PORT"],
    )
    # Every AIRFLOW__SECTION__KEY we set is an option Airflow 3.3 knows (its config.yml), or a [core]
    # option that Airflow also reads per component (utils/process_utils.py: [scheduler] first).
    spec = importlib.util.find_spec("airflow")
    known = yaml.safe_load(Path(spec.submodule_search_locations[0], "config_templates", "config.yml").read_text())
    per_component = {("scheduler", "mp_start_method"), ("scheduler", "mp_forkserver_preload")}
    for key in (k for k in env if k.startswith("AIRFLOW__")):
        section, option = key.removeprefix("AIRFLOW__").lower().split("__")
        if (section, option) in per_component:
            section = "core"
        assert option in known[section]["options"], f"{key} is not an Airflow 3.3 option"
    # Secrets are made once per home: every process and every restart agree.
    again = airflow_env(tmp_path / "home", tmp_path / "dags", port=18081)
    assert again["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]
    with pytest.raises(ValueError, match="8793"):
        airflow_env(tmp_path / "home", tmp_path / "dags", port=WORKER_LOG_SERVER_PORT)


def test_task_processes_execution_api_client_gets_timeouts_for_a_small_loaded_machine(tmp_path):
    """The Task SDK's Execution API client, in a process with our environment, reads our timeout and
    retries (not Airflow's 5 s): longer than SQLite's busy timeout, so a write that waits for the
    lock shows as a slow call, not a ReadTimeout that fails the task's try."""
    env = airflow_env(tmp_path / "home", tmp_path / "dags", port=18080)
    code = (
        "from airflow.sdk.api import client as c; "
        "print(c.API_TIMEOUT, c.API_RETRIES, c.API_RETRY_WAIT_MIN, c.API_RETRY_WAIT_MAX)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    timeout, retries, wait_min, wait_max = done.stdout.split()[-4:]
    assert float(timeout) == EXECUTION_API_TIMEOUT_S > SQLITE_BUSY_TIMEOUT_S
    assert (int(retries), float(wait_min), float(wait_max)) == (EXECUTION_API_RETRIES, *EXECUTION_API_RETRY_WAIT_S)


def test_the_schedulers_task_processes_fork_from_a_forkserver_that_preloaded_dbt(tmp_path):
    """Airflow's scheduler command applies our [scheduler] start method before its LocalExecutor
    starts workers: they fork from a forkserver that imported dbt and our task code once, so a task
    process (a fork of a worker) finds them imported, and dbt's serialisers compiled by one `dbt parse`
    of the configured project, written under its dbt runs directory, and the API client's SSL context
    built. The Celery profile sets none of it."""
    env = airflow_env(tmp_path / "home", tmp_path / "dags", port=18080)
    env.update(
        ORCHESTRATION_CONFIG=str(pipeline_config(tmp_path)),
        DBT_RUNS_DIR=str(tmp_path / "dbt"),
        WAREHOUSE_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"),
    )
    code = (
        "import json, multiprocessing as mp, sys\n"
        "from airflow.utils.process_utils import set_component_mp_start_method\n"
        "set_component_mp_start_method('scheduler')\n"
        "with mp.Pool(1) as pool:\n"  # its worker forks from the forkserver, as the LocalExecutor's do
        "    scheduler_has_dbt = 'dbt.cli.main' in sys.modules\n"
        "    from orchestrator.airflow import preload\n"
        "    ssl = pool.apply(eval, (SSL,))\n"
        "    print(json.dumps([mp.get_start_method(), scheduler_has_dbt, pool.apply(preload.inherited), ssl]))\n"
    )
    # the Task SDK client's SSL context, cached in the worker before any task asked for it
    ssl = "__import__('airflow.sdk.api.client', fromlist=['C']).Client._get_ssl_context_cached.cache_info().currsize"
    code = f"SSL = {ssl!r}\n" + code
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    method, scheduler_has_dbt, worker_inherited, ssl_contexts = json.loads(done.stdout.splitlines()[-1])
    assert method == "forkserver"
    assert not scheduler_has_dbt  # the scheduler itself does not carry dbt
    assert {"dbt.cli.main", "dbt.adapters.duckdb", "orchestrator.airflow.dag_files"} <= set(worker_inherited)
    assert "dbt parse" in worker_inherited
    assert "api client ssl context" in worker_inherited and ssl_contexts == 1
    assert (tmp_path / "dbt" / ".preload" / "manifest.json").exists()  # under the configured runs dir
    assert list((tmp_path / "dbt").glob("partial_parse.msgpack.default.*"))  # the state the runs start from
    assert not (tmp_path / "warehouse.duckdb").exists()  # a parse opens no warehouse
    pg = "postgresql+psycopg2://postgres@127.0.0.1:5432/x"
    celery = airflow_env(
        tmp_path / "home", tmp_path / "dags", port=18080, executor="CeleryExecutor", metadata_db_url=pg
    )
    assert "AIRFLOW__SCHEDULER__MP_START_METHOD" not in celery
    # its workers import the same preload through their Celery config, which the scheduler imports too:
    # naming it must not import dbt (tests/test_production_celery.py checks the workers' tasks)
    assert celery["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "orchestrator.airflow.celery_config.CELERY_CONFIG"
    probe = (
        "import sys; from orchestrator.airflow.celery_config import CELERY_CONFIG as c; "
        "print(c['imports'][-1], 'dbt.cli.main' in sys.modules, c['broker_url'] is not None)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=celery)
    last = done.stdout.splitlines()[-1].split()  # after Airflow's own log lines
    assert last == ["orchestrator.airflow.preload", "False", "True"], done.stderr[-2000:]


def test_db_migrate_is_skipped_only_while_this_airflow_already_migrated_this_database(tmp_path):
    """`airflow db migrate` runs unless a migrate of this Airflow version stamped the database's
    revision and the database is still at it: a new database, a database another version moved, a
    stamp of another version, or no stamp, each migrate again."""
    af = LocalAirflow(tmp_path / "home", tmp_path / "dags")
    assert not af.schema_current()  # no database
    db = af.home / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('abc123')")
    assert not af.schema_current()  # no stamp: never migrated by us
    af._stamp_schema()
    assert af.schema_current()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'def456'")
    assert not af.schema_current()  # the database moved
    af._stamp_schema()
    stamp = json.loads((af.home / "schema-migrated.json").read_text())
    (af.home / "schema-migrated.json").write_text(json.dumps({**stamp, "airflow": "3.0.0"}))
    assert not af.schema_current()  # another Airflow version migrated it
    af._stamp_schema()
    assert af.schema_current()
    af.env["AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE"] = "{{ ti.dag_id }}/{{ ti.try_number }}.log"
    assert not af.schema_current()  # `db migrate` records the log template: a new one migrates again


def test_inherited_airflow_settings_do_not_leak(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "True")
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "99")
    env = airflow_env(tmp_path, tmp_path, port=18080, extra={"AIRFLOW__CORE__PARALLELISM": 4})
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"


def test_stop_ends_a_process_whose_parent_ended_before_stop_looked(tmp_path):
    """A component's process whose parent has exited is nobody's descendant any more (its parent is
    now init), and one in a process group of its own is not in the component's group either: what
    stop() used to leave behind. It is still in the component's session; stop() returns once it is
    gone. (Stand-in components: a shell whose subshell started such a process and exited.)"""
    af = LocalAirflow(tmp_path / "home", tmp_path)
    orphan_code = "import os, time; os.setpgid(0, 0); open('orphan.pid', 'w').write(str(os.getpid())); time.sleep(600)"
    af.processes["scheduler"] = subprocess.Popen(
        ["sh", "-c", f'(python3 -c "{orphan_code}" &); exec sleep 600'], cwd=tmp_path, start_new_session=True
    )
    deadline = time.monotonic() + 120  # ends when the file appears; generous for a loaded machine
    while not (tmp_path / "orphan.pid").exists() or not (tmp_path / "orphan.pid").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    orphan = int((tmp_path / "orphan.pid").read_text())
    leader = af.processes["scheduler"].pid
    assert orphan not in descendants([leader]) and os.getpgid(orphan) == orphan and os.getsid(orphan) == leader
    af.stop(timeout=2)
    assert alive({orphan, leader}) == set()


# --------------------------------------------------------------------------- PostgreSQL
# `services`: it runs in the servers lane (tests/lanes.py), one at a time with the other tests that
# create databases on the local servers.


@pytest.mark.services
@pytest.mark.timeout(300)
def test_postgres_metadata_db(tmp_path, dags_folder):
    require_services("postgres")
    engine = create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # a clean database each run; LocalAirflow creates it again
        conn.execute(text("DROP DATABASE IF EXISTS ll_airflow_local_test WITH (FORCE)"))
    engine.dispose()

    with LocalAirflow(tmp_path / "home", dags_folder, metadata_db_url=PG_URL) as af:
        processes = family(af)
        print(f"\nAirflow (PostgreSQL) healthy after {af.startup_seconds:.1f}s: {af.timings}")
        client = af.client
        client.wait_for_dags(["t_tick", "t_down"], timeout=120)
        for dag_id in ("t_tick", "t_down"):
            client.unpause(dag_id)
        since = utcnow()
        client.trigger("t_tick")
        tick, down = cycle_report(client, since, ["t_tick", "t_down"], timeout=120)
        print(format_report([tick, down]))
        assert (tick.state, down.state) == ("success", "success")
        assert down.run_type == "asset_triggered"
        assert [e["extra"] for e in down.emitted] == [{"rows": 3}]
        processes |= family(af)
    assert alive(processes) == set(), f"stop() left Airflow processes behind: {describe(alive(processes))}"


# --------------------------------------------------------------------------- SQLite, one Airflow


def test_health_and_import_errors(airflow):
    health = airflow.client.get("/monitor/health")
    assert {health[c]["status"] for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {"healthy"}
    errors = airflow.client.import_errors()
    assert [e["filename"] for e in errors] == ["t_broken.py"]
    assert "SyntaxError" in errors[0]["stack_trace"]
    # ...while the other files of the folder load.
    assert set(airflow.client.wait_for_dags(LOADABLE, timeout=5)) == set(LOADABLE)
    with pytest.raises(AirflowLocalError, match="t_broken"):
        airflow.client.wait_for_dags(["t_broken"], timeout=2)


def test_asset_cycle_and_and_schedule(airflow):
    client = airflow.client
    # t_and waits for raw.t2 as well, which no DAG produces: not part of a t_tick cycle.
    assert client.downstream_dags("t_tick") == ["t_down"]
    since = utcnow()
    run_id = client.trigger("t_tick", conf={"why": "test"})
    tick, down = cycle_report(client, since, ["t_tick", "t_down"], timeout=120)
    print("\n" + format_report([tick, down]))

    assert tick.run_id == run_id and tick.run_type == "manual" and tick.state == "success"
    assert [e["name"] for e in tick.emitted] == ["tick"]
    # t_down ran because of t_tick's asset event...
    assert down.state == "success" and down.run_type == "asset_triggered"
    assert [(e["name"], e["source_dag_id"], e["source_run_id"]) for e in down.triggered_by] == [
        ("tick", "t_tick", run_id)
    ]
    assert [ti["state"] for ti in client.task_instances("t_down", down.run_id)] == ["success"]
    # ...and its event carries the metadata the task attached.
    assert [(e["name"], e["extra"]) for e in down.emitted] == [("raw.t1", {"rows": 3})]
    assert [e["name"] for e in client.asset_events(since)] == ["tick", "raw.t1"]

    # AND: raw.t1 alone queues an event for t_and but starts no run (several scheduler loops later).
    time.sleep(3)
    assert [q["asset_id"] for q in client.queued_asset_events("t_and")] == [client.asset_id("raw.t1")]
    assert client.dag_runs("t_and") == []
    # raw.t2 (posted to the API, as an outside loader would) completes the AND.
    client.emit_asset_event("raw.t2", extra={"rows": 1})
    (run,) = client.wait_for_runs("t_and", timeout=300)
    assert run["state"] == "success" and run["run_type"] == "asset_triggered"
    assert {e["name"] for e in client.triggering_asset_events("t_and", run["dag_run_id"])} == {"raw.t1", "raw.t2"}


def test_a_retried_try_is_reported_with_its_root_error_and_log(airflow):
    """A run that succeeded only on its second try: the console says which task, which try, why it
    failed (the root error line) and where its log is, while following and in the report."""
    client = airflow.client
    since, lines = utcnow(), []
    client.trigger("t_flaky")
    [run] = follow_cycle(client, since, ["t_flaky"], timeout=180, log=lines.append)
    assert run.state == "success"
    [retry] = run.retries
    assert (retry.task_id, retry.try_number, retry.error) == ("flaky", 1, "ValueError: the source was busy")
    assert retry.log and "attempt=1" in retry.log
    assert "    t_flaky: flaky try 1 failed, retried: ValueError: the source was busy" in lines
    report = format_report([run])
    print("\n" + report)
    assert "    ~ flaky try 1 failed, retried: ValueError: the source was busy" in report
    assert f"      log: {retry.log}" in report
    assert "1 task try(s) failed and were retried, in t_flaky" in report


def test_hop_latency(airflow):
    """Asset event timestamp -> downstream run start, over a few tick -> t_down hops."""
    lags = []
    for _ in range(3):
        since = utcnow()
        airflow.client.trigger("t_tick")
        _, down = cycle_report(airflow.client, since, ["t_tick", "t_down"], timeout=120)
        lags.append(down.lag)
    print(
        f"\nhop lag tick -> t_down: median {statistics.median(lags):.2f}s, "
        f"min {min(lags):.2f}s, max {max(lags):.2f}s ({', '.join(f'{x:.2f}' for x in lags)})"
    )
    assert all(0 <= lag < 15 for lag in lags)  # generous for a loaded CI box; ~0.5 s here


def test_pools(airflow):
    assert airflow.client.create_pool("meltano", 2, "one Meltano run per slot")["slots"] == 2
    assert airflow.client.create_pool("meltano", 3)["slots"] == 3  # idempotent: updates
    assert {p["name"]: p["slots"] for p in airflow.client.pools()}["meltano"] == 3


def test_a_writer_waits_for_the_sqlite_write_lock_instead_of_failing(airflow):
    """SQLite has one write lock; Python's default busy timeout of 5 s made the API answer `500
    Database error` to a write that waited longer (a second `orchestrator run` failed so, creating
    its pools while the scheduler's start-up writes held the lock). Now writers wait (30 s)."""
    assert airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("?timeout=30")
    holder = sqlite3.connect(airflow.home / "airflow.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held as a long writer would
    release = threading.Timer(8, holder.execute, ["COMMIT"])
    release.start()
    t0 = time.monotonic()
    try:
        pool = airflow.client.create_pool("ll_locked", 2, "created while the lock was held")
        waited = time.monotonic() - t0
    finally:
        release.join()
        holder.close()
    assert pool["slots"] == 2 and 7 < waited < 30, waited


def test_processes_and_logs(airflow):
    """Four components, each leading its own process group (what stop() signals); the fixture's
    teardown checks that none of their processes survives stop()."""
    assert set(airflow.processes) == {"scheduler", "dag-processor", "api-server", "triggerer"}
    assert all(os.getpgid(p.pid) == p.pid for p in airflow.processes.values())
    pids = {n: p.pid for n, p in airflow.processes.items()}
    assert airflow.start() is airflow and {n: p.pid for n, p in airflow.processes.items()} == pids  # once
    assert len(family(airflow)) > len(airflow.processes)  # executor workers, log servers, ...
    for name in airflow.processes:
        assert (airflow.log_dir / f"{name}.log").stat().st_size > 0


def test_the_execution_api_is_warmed_before_any_task_starts(airflow):
    """The Task Execution API builds its versioned routers on its first request, blocking the API
    server for seconds: start() makes that request, so it precedes every task's start call (this
    module's DAGs have run tasks by now) and none of them pays for it."""
    assert "execution api warm" in airflow.timings
    paths = re.findall(r"method=\w+ path=(/execution/\S+)", (airflow.log_dir / "api-server.log").read_text())
    runs = [i for i, path in enumerate(paths) if path.endswith("/run")]
    assert runs and paths.index("/execution/health") < runs[0], paths[:5]


def test_stop_with_a_task_running(airflow):
    """Last test of the module: leaves a task running (a `sleep` in a session of its own) for the
    fixture's teardown, which checks that stop() ends it with everything else."""
    run_id = airflow.client.trigger("t_sleep")
    airflow.client.wait_for_runs("t_sleep", lambda r: r["dag_run_id"] == run_id and r["state"] == "running")
    deadline = time.monotonic() + 300
    while [ti["state"] for ti in airflow.client.task_instances("t_sleep", run_id)] != ["running"]:
        assert time.monotonic() < deadline, "t_sleep's task did not start"
        time.sleep(0.5)
    # `running` is set when the task runner is forked, before it has parsed the DAG file and started
    # the operator: on a cold machine (no .pyc yet) the `sleep` comes seconds later.
    while not (sleeps := [pid for pid in family(airflow) if _cmdline(pid).startswith(b"sleep")]):
        assert time.monotonic() < deadline, "t_sleep's `sleep` process did not start"
        time.sleep(0.2)
    assert len(sleeps) == 1 and os.getsid(sleeps[0]) == sleeps[0]  # its own session
