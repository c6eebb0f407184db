"""A real Airflow 3.3, run locally as plain processes, and a small REST client to drive it.

`LocalAirflow` runs `airflow db migrate`, then `scheduler`, `dag-processor`, `api-server` and
`triggerer` as separate subprocesses (each in its own process group, log in `<home>/logs/<name>.log`)
and stops them all again. `AirflowClient` talks to Airflow's public REST API v2 (JWT from the simple
auth manager): wait for DAGs, unpause, trigger, follow runs, read asset events. `cycle_report`
follows one event-driven cycle and `format_report` prints it.

    python -m orchestrator.local.launcher up      --home var/airflow --dags dags
    python -m orchestrator.local.launcher cycle   --home var/airflow --dags dags --trigger tick

Nothing here is a mock: it is the same scheduler, executor and API a deployment runs, on SQLite
(default, a file in the home) or PostgreSQL (`--db-url postgresql+psycopg2://...`).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from .warehouse import ensure_postgres_database

WORKER_LOG_SERVER_PORT = 8793  # Airflow's default worker log server port: never our API port
ADMIN_USER = "admin"
TERMINAL_STATES = ("success", "failed")
PROCESSES = ("scheduler", "dag-processor", "api-server", "triggerer")


class AirflowLocalError(RuntimeError):
    """Airflow did not start, or did not do what we waited for in time."""


# --------------------------------------------------------------------------- environment


def free_port(avoid: Iterable[int] = ()) -> int:
    """A free TCP port on 127.0.0.1 (never 8793, the worker log server's default)."""
    avoid = {WORKER_LOG_SERVER_PORT, *avoid}
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def local_secrets(home: Path) -> dict[str, str]:
    """Secrets every process of this home must share, created once and kept in `<home>/local_secrets.json`
    (mode 600) so that a restart keeps sessions, task tokens and encrypted connections valid."""
    path = Path(home) / "local_secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "admin_password": secrets.token_urlsafe(16),
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),  # what Fernet.generate_key() does
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values, indent=1))
    return values


def airflow_env(
    home: Path,
    dags_folder: Path,
    *,
    port: int,
    metadata_db_url: str | None = None,
    executor: str = "LocalExecutor",
    extra: dict | None = None,
) -> dict[str, str]:
    """The full process environment for every Airflow process of one local instance.

    Starts from this process's environment without any inherited `AIRFLOW_HOME`/`AIRFLOW_CONFIG`/
    `AIRFLOW__*` (a developer's shell must not silently reconfigure the instance); `extra` wins last.
    Writes `<home>/local_secrets.json` and the simple auth manager's password file on first use.
    """
    if port == WORKER_LOG_SERVER_PORT:
        raise ValueError(f"port {port} is Airflow's worker log server port; pick another for the API server")
    home, dags_folder = Path(home).resolve(), Path(dags_folder).resolve()
    sec = local_secrets(home)
    passwords_file = home / "simple_auth_manager_passwords.json"
    passwords_file.touch(mode=0o600)
    passwords_file.write_text(json.dumps({ADMIN_USER: sec["admin_password"]}))

    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("AIRFLOW__") or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db_url or f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": executor,
            # No example DAGs: they would be parsed, listed and (unpaused) scheduled next to ours.
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # New DAGs stay paused until we unpause them: a cron DAG unpaused at creation would start a
            # run for its latest interval at once.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # 2 cores: at most 8 tasks at once (default 32); pools narrow it further per resource. The
            # LocalExecutor forks this many worker processes at the first task (~135 MB RSS each).
            "AIRFLOW__CORE__PARALLELISM": "8",
            # Connections/variables stored in the metadata DB are encrypted with a key kept in the home.
            "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
            # The API server: local only, on the port we chose. Task processes reach the Execution API
            # on the same server, so this URL must carry the same port (8793 is the log server, not it).
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",  # links in logs and notifications
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # One worker is plenty for one user and our client, and leaves the 2 cores to the tasks.
            "AIRFLOW__API__WORKERS": "1",
            # Same signing secrets in every process: the scheduler signs task tokens that the API server
            # checks (JWT), and API sessions survive a restart (secret key).
            "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
            # Auth: Airflow 3's simple auth manager with one admin whose password we write ourselves
            # (Airflow would otherwise generate one and only print it). Our client POSTs it to
            # /auth/token for a JWT. (`SIMPLE_AUTH_MANAGER_ALL_ADMINS=True` would also work, but makes
            # every request admin without any credentials.)
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            # Low latency of asset-triggered runs. The scheduler creates (and starts) the run of an
            # asset-scheduled DAG in its first loop after the event; it sleeps only after a loop that
            # found nothing to do, for this long (default 1 s). Measured on 2 cores, SQLite, event ->
            # downstream run start, median: 1 s -> 1.2 s; 0.25 s -> 0.8 s (PostgreSQL 0.15 s) for ~5 %
            # of a core while idle; 0.1 s -> 0.76 s for ~12 %.
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
            # (`[scheduler] scheduler_heartbeat_sec` is only the liveness heartbeat in 3.3, not the loop
            # pace: the default 5 s is kept.)
            # DAG files: look for new files every 10 s (default 300 s). Changed files are re-parsed at
            # once anyway (file_parsing_sort_mode=modified_time); unchanged ones every 30 s (dbt/Meltano
            # DAGs read their project files at parse time, so they need a periodic re-parse).
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",  # one per core
            # Log servers on free ports (not the fixed 8793/8794), so two local instances never clash.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(avoid={port})),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port(avoid={port})),
            # Process logs go to files: no ANSI colour codes in them.
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        }
    )
    if executor == "CeleryExecutor":
        env.update(celery_env(metadata_db_url))
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def celery_env(metadata_db_url: str | None, broker_url: str | None = None) -> dict[str, str]:
    """CeleryExecutor settings: Redis broker, results in the metadata PostgreSQL database.

    A worker that dies (SIGKILL, a lost machine) leaves its task instances `running`; the
    scheduler fails them once their heartbeat is older than the timeout, and retries run on
    the workers left. The default timeout is 300 s; 60 s finds a dead worker sooner while a
    slow but live task (it heartbeats every few seconds) is never hit."""
    if not metadata_db_url or not metadata_db_url.startswith("postgresql"):
        raise ValueError("the CeleryExecutor needs the metadata database on PostgreSQL (--db-url)")
    backend = "db+" + metadata_db_url.replace("+psycopg2", "").replace("+psycopg", "")
    return {
        "AIRFLOW__CELERY__BROKER_URL": broker_url
        or os.environ.get("AIRFLOW_CELERY_BROKER_URL")
        or "redis://127.0.0.1:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",  # per worker: 2 cores here
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }


# --------------------------------------------------------------------------- processes


def descendants(pids: Iterable[int]) -> set[int]:
    """All descendants of `pids` (from /proc): task processes move to process groups of their own,
    so killing our groups alone could leave them behind."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _started(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), None once it is gone: with its pid, an identity."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _signal(pids: Iterable[int], sig: int, groups: bool) -> None:
    for pid in pids:
        try:
            os.killpg(pid, sig) if groups else os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class LocalAirflow:
    """A local Airflow: `with LocalAirflow(home, dags) as af: af.client.trigger("tick")`."""

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        port: int | None = None,
        metadata_db_url: str | None = None,
        executor: str = "LocalExecutor",
        extra: dict | None = None,
        startup_timeout: float = 180,
        workers: int = 2,
    ):
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.port = port or free_port()
        self.metadata_db_url = metadata_db_url
        self.env = airflow_env(
            self.home, self.dags_folder, port=self.port, metadata_db_url=metadata_db_url, executor=executor, extra=extra
        )
        self.startup_timeout = startup_timeout
        self.executor = executor
        self.workers = workers if executor == "CeleryExecutor" else 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}  # seconds: "db migrate" and "healthy" from start(), "stop"
        self._client: AirflowClient | None = None

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def client(self) -> AirflowClient:
        if self._client is None:
            self._client = AirflowClient(self.url, ADMIN_USER, local_secrets(self.home)["admin_password"])
        return self._client

    def airflow(self, *args: str, timeout: float = 600) -> str:
        """Run one `airflow ...` CLI command against this instance; its output, or AirflowLocalError."""
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise AirflowLocalError(
                f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return done.stdout

    def start(self) -> LocalAirflow:
        """Migrate the metadata DB, start the four components, wait until healthy. Once: a started
        instance returns itself (so `with LocalAirflow(...).start() as af:` starts it only once)."""
        if self.processes:
            return self
        t0 = time.monotonic()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.metadata_db_url and self.metadata_db_url.startswith("postgresql"):
            ensure_postgres_database(self.metadata_db_url)
        # Idempotent: creates the schema on a new database, upgrades an old one, else a no-op.
        (self.log_dir / "db-migrate.log").write_text(self.airflow("db", "migrate"))
        self.timings["db migrate"] = time.monotonic() - t0
        atexit.register(self.stop)
        try:
            for name in PROCESSES:
                args = [name, "--port", str(self.port)] if name == "api-server" else [name]
                self._spawn(name, args)
            for i in range(1, self.workers + 1):
                self.start_worker(f"worker-{i}")
            self.wait_healthy(self.startup_timeout - (time.monotonic() - t0))
            for i in range(1, self.workers + 1):
                self.wait_worker_ready(f"worker-{i}", self.startup_timeout - (time.monotonic() - t0))
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = self.timings["healthy"] = time.monotonic() - t0
        return self

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            # start_new_session: each component leads its own process group, which stop()
            # signals as a whole (LocalExecutor workers, Celery pool, log server, parsing processes).
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=env or self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.processes[name]

    def start_worker(self, name: str) -> subprocess.Popen:
        """A Celery worker (its own log server port: several run on one host)."""
        env = {**self.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(avoid={self.port}))}
        return self._spawn(
            name,
            [
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                self.env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "2"),
            ],
            env,
        )

    def wait_worker_ready(self, name: str, timeout: float) -> None:
        """Until the worker's log says it is connected and ready (Celery prints `ready.`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if " ready." in (self.log_dir / f"{name}.log").read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise AirflowLocalError(f"Celery {name} not ready after {timeout:.0f}s (log: {self.log_dir / name}.log)")

    def kill(self, name: str) -> None:
        """SIGKILL one component and everything it started, as a lost machine would: no clean-up."""
        proc = self.processes.pop(name)
        family = descendants([proc.pid])
        _signal([proc.pid], signal.SIGKILL, groups=True)
        _signal(family, signal.SIGKILL, groups=False)
        proc.wait()

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-4000:]
                raise AirflowLocalError(f"airflow {name} exited with {proc.returncode}; end of its log:\n{tail}")

    def wait_healthy(self, timeout: float) -> dict:
        """Until /api/v2/monitor/health says the metadata DB, scheduler, triggerer and dag-processor are
        healthy (each component heartbeats into the metadata DB; the API server reads them)."""
        deadline, health = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if all(
                    (health.get(c) or {}).get("status") == "healthy"
                    for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ):
                    return health
            except (httpx.HTTPError, ValueError):
                pass  # API server not listening yet
            time.sleep(0.5)
        raise AirflowLocalError(f"Airflow not healthy after {timeout:.0f}s: {health} (logs in {self.log_dir})")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM every component's process group; after `timeout` s, SIGKILL the groups and every
        process that descended from them (task processes run in groups of their own)."""
        atexit.unregister(self.stop)
        t0 = time.monotonic()
        if self._client:
            self._client.close()
            self._client = None
        procs = [p for p in self.processes.values() if p.poll() is None]
        pids = [p.pid for p in procs]
        family = {pid: _started(pid) for pid in descendants(pids)}
        _signal(pids, signal.SIGTERM, groups=True)
        for proc in procs:
            try:
                proc.wait(max(0.1, t0 + timeout - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        family.update({pid: _started(pid) for pid in descendants(pids)})
        _signal(pids, signal.SIGKILL, groups=True)  # a group outlives its leader while members remain
        # Only the very processes seen above (same start time), never a new one that reused a pid.
        _signal(
            [pid for pid, started in family.items() if started and _started(pid) == started],
            signal.SIGKILL,
            groups=False,
        )
        for proc in procs:
            proc.wait()
        self.processes.clear()
        if procs:
            self.timings["stop"] = time.monotonic() - t0

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- REST client


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ok(resp: httpx.Response) -> httpx.Response:
    """The response if 2xx, else AirflowLocalError with Airflow's explanation (its JSON `detail`)."""
    if resp.is_success:
        return resp
    raise AirflowLocalError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:2000]}")


class AirflowClient:
    """Airflow's public REST API v2, authenticated with a JWT from the simple auth manager."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30):
        self.base_url, self._credentials = base_url.rstrip("/"), {"username": username, "password": password}
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _login(self) -> None:
        resp = _ok(self.http.post("/auth/token", json=self._credentials))
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One API call (path under /api/v2); logs in first, and again once if the token expired."""
        if "Authorization" not in self.http.headers:
            self._login()
        resp = self.http.request(method, f"/api/v2{path}", **kwargs)
        if resp.status_code == 401:
            self._login()
            resp = self.http.request(method, f"/api/v2{path}", **kwargs)
        return resp

    def get(self, path: str, **params) -> Any:
        """GET, retried for up to 20 s on a 5xx. Airflow 3.3.2's asset-event endpoints answer 500 while
        an event's created run is still queued (start_date NULL: apache/airflow#71360, fixed after
        3.3.2), which lasts one scheduler loop for a healthy run."""
        deadline = time.monotonic() + 20
        while True:
            resp = self.request("GET", path, params={k: v for k, v in params.items() if v is not None})
            if resp.status_code < 500 or time.monotonic() > deadline:
                return _ok(resp).json()
            time.sleep(0.5)

    def _all(self, path: str, key: str, **params) -> list[dict]:
        """Every item of a paginated collection (the API caps a page at 100)."""
        items: list[dict] = []
        while True:
            page = self.get(path, limit=100, offset=len(items), **params)
            items += page[key]
            if len(page[key]) < 100 or len(items) >= (page.get("total_entries") or len(items) + 1):
                return items

    # ---- DAGs

    def import_errors(self) -> list[dict]:
        """DAG files the dag-processor could not load: filename (relative to the bundle), stack_trace, ..."""
        return self._all("/importErrors", "import_errors")

    def dag(self, dag_id: str) -> dict | None:
        resp = self.request("GET", f"/dags/{dag_id}")
        if resp.status_code == 404:
            return None
        return _ok(resp).json()

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> dict[str, dict]:
        """Until the dag-processor has parsed and stored every DAG and none of their files is an import
        error now (a DAG parsed once stays listed after its file breaks); returns the DAGs by id."""
        wanted, deadline = list(dag_ids), time.monotonic() + timeout
        while True:
            broken = {e["filename"] for e in self.import_errors()}
            dags = {d: self.dag(d) for d in wanted}
            ready = {
                d: dag
                for d, dag in dags.items()
                if dag and not dag["is_stale"] and dag["relative_fileloc"] not in broken
            }
            if len(ready) == len(wanted):
                return ready
            if time.monotonic() > deadline:
                raise AirflowLocalError(
                    f"DAGs not loaded after {timeout:.0f}s: {sorted(set(wanted) - set(ready))}; "
                    f"import errors: {self.import_errors()}"
                )
            time.sleep(1)

    def unpause(self, dag_id: str, paused: bool = False) -> None:
        _ok(self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused}))

    def downstream_dags(self, dag_id: str) -> list[str]:
        """The DAGs a run of `dag_id` sets off through assets, in the order they can run: a DAG joins
        once its asset schedule (AND/OR, as the API gives it) is met by what `dag_id` and the DAGs
        before it produce. A DAG that also waits on an asset nothing in the chain produces is left out."""
        produces: dict[str, set[str]] = {}  # dag_id -> names of the assets its tasks produce
        scheduled: set[str] = set()  # DAGs scheduled on some asset
        for asset in self._all("/assets", "assets"):
            for task in asset["producing_tasks"]:
                produces.setdefault(task["dag_id"], set()).add(asset["name"])
            scheduled.update(d["dag_id"] for d in asset["scheduled_dags"])
        expressions = {d: self.get(f"/dags/{d}/details")["asset_expression"] for d in scheduled - {dag_id}}
        produced, order = set(produces.get(dag_id, ())), []
        while nxt := [d for d in sorted(expressions) if d not in order and _met(expressions[d], produced)]:
            order += nxt
            for d in nxt:
                produced |= produces.get(d, set())
        return order

    # ---- runs

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """A manual run now; its run_id. (logical_date must be sent, null for "no logical date".)"""
        resp = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return _ok(resp).json()["dag_run_id"]

    def dag_runs(self, dag_id: str, since: datetime | None = None) -> list[dict]:
        """Runs of a DAG, oldest first; with `since`, only those created (run_after) from then on."""
        return self._all(
            f"/dags/{dag_id}/dagRuns", "dag_runs", order_by="id", run_after_gte=since.isoformat() if since else None
        )

    def wait_for_runs(
        self,
        dag_id: str,
        predicate: Callable[[dict], bool] = lambda r: r["state"] in TERMINAL_STATES,
        *,
        count: int = 1,
        since: datetime | None = None,
        timeout: float = 120,
    ) -> list[dict]:
        """Until at least `count` runs of `dag_id` (since `since`) satisfy `predicate` (default:
        finished); returns those runs."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.dag_runs(dag_id, since) if predicate(r)]
            if len(runs) >= count:
                return runs
            if time.monotonic() > deadline:
                raise AirflowLocalError(
                    f"{dag_id}: {len(runs)}/{count} matching runs after {timeout:.0f}s; "
                    f"runs: {[(r['dag_run_id'], r['state']) for r in self.dag_runs(dag_id, since)]}"
                )
            time.sleep(0.5)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._all(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def triggering_asset_events(self, dag_id: str, run_id: str) -> list[dict]:
        """The asset events that created an asset-triggered run (empty for other runs)."""
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]

    def queued_asset_events(self, dag_id: str) -> list[dict]:
        """Asset events a DAG has received but not yet run on (e.g. one half of an AND)."""
        resp = self.request("GET", f"/dags/{dag_id}/assets/queuedEvents")
        if resp.status_code == 404:  # none queued
            return []
        return _ok(resp).json()["queued_events"]

    # ---- assets and pools

    def asset_events(self, since: datetime | None = None, **filters) -> list[dict]:
        """Asset events, oldest first: name, uri, extra, source_dag_id/run_id/task_id, timestamp,
        created_dagruns. `filters`: any of the API's (source_dag_id=..., source_run_id=...)."""
        return self._all(
            "/assets/events",
            "asset_events",
            order_by="timestamp",
            timestamp_gte=since.isoformat() if since else None,
            **filters,
        )

    def asset_id(self, name: str) -> int:
        for asset in self._all("/assets", "assets", name_pattern=name):
            if asset["name"] == name:
                return asset["id"]
        raise AirflowLocalError(f"no asset named {name!r}")

    def emit_asset_event(self, name: str, extra: dict | None = None) -> dict:
        """An asset event from outside (as an external loader would post it); the API adds
        extra.from_rest_api = true."""
        resp = self.request("POST", "/assets/events", json={"asset_id": self.asset_id(name), "extra": extra or {}})
        return _ok(resp).json()

    def create_pool(self, name: str, slots: int, description: str = "") -> dict:
        """Create the pool, or set its slots if it exists."""
        body = {"name": name, "slots": slots, "description": description, "include_deferred": False}
        resp = self.request("POST", "/pools", json=body)
        if resp.status_code == 409:
            # 3.3.2 validates a pool PATCH body as a whole pool, so send every field (no update_mask).
            resp = self.request("PATCH", f"/pools/{name}", json=body)
        return _ok(resp).json()

    def pools(self) -> list[dict]:
        return self._all("/pools", "pools")


def _met(expression: dict | None, assets: set[str]) -> bool:
    """Whether events for `assets` (names) satisfy a DAG's asset_expression ({"all": [...]},
    {"any": [...]}, {"asset": {...}}); aliases and anything else count as unmet."""
    if not expression:
        return False
    if "all" in expression:
        return all(_met(e, assets) for e in expression["all"])
    if "any" in expression:
        return any(_met(e, assets) for e in expression["any"])
    return expression.get("asset", {}).get("name") in assets


# --------------------------------------------------------------------------- cycle report


@dataclass
class RunReport:
    dag_id: str
    run_id: str
    state: str
    run_type: str
    start: datetime | None
    end: datetime | None
    triggered_by: list[dict] = field(default_factory=list)  # asset events that created the run
    emitted: list[dict] = field(default_factory=list)  # asset events its tasks emitted

    @property
    def duration(self) -> float | None:
        return (self.end - self.start).total_seconds() if self.start and self.end else None

    @property
    def lag(self) -> float | None:
        """Seconds from the (last) triggering asset event to this run's start: one hop's latency."""
        if not (self.triggered_by and self.start):
            return None
        return (self.start - max(parse_ts(e["timestamp"]) for e in self.triggered_by)).total_seconds()


def cycle_report(
    client: AirflowClient, since: datetime, dag_ids: Iterable[str], timeout: float = 600
) -> list[RunReport]:
    """For each DAG, its first run started at/after `since`, once finished, with the asset events
    that triggered it and those it emitted. Waits (up to `timeout` s overall) for all of them."""
    deadline, reports = time.monotonic() + timeout, []
    for dag_id in dag_ids:

        def started(run: dict) -> bool:
            return bool(run["start_date"]) and parse_ts(run["start_date"]) >= since

        first = client.wait_for_runs(dag_id, started, timeout=max(1.0, deadline - time.monotonic()))[0]
        run = client.wait_for_runs(
            dag_id,
            lambda r: r["dag_run_id"] == first["dag_run_id"] and r["state"] in TERMINAL_STATES,
            timeout=max(1.0, deadline - time.monotonic()),
        )[0]
        reports.append(
            RunReport(
                dag_id=dag_id,
                run_id=run["dag_run_id"],
                state=run["state"],
                run_type=run["run_type"],
                start=parse_ts(run["start_date"]),
                end=parse_ts(run["end_date"]),
                triggered_by=client.triggering_asset_events(dag_id, run["dag_run_id"]),
                emitted=client.asset_events(source_dag_id=dag_id, source_run_id=run["dag_run_id"]),
            )
        )
    return reports


def _event_label(event: dict) -> str:
    extra = {k: v for k, v in (event.get("extra") or {}).items() if k != "from_rest_api"}
    return event["name"] + (f" {json.dumps(extra, sort_keys=True)}" if extra else "")


def format_report(reports: list[RunReport]) -> str:
    """A table: DAG, state, how it was started, duration, hop lag, assets emitted."""

    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}s"

    rows = [("DAG", "state", "started by", "duration", "lag", "assets emitted")]
    for r in reports:
        started_by = ", ".join(sorted({e["name"] for e in r.triggered_by})) if r.triggered_by else r.run_type
        rows.append(
            (
                r.dag_id,
                r.state,
                started_by,
                secs(r.duration),
                secs(r.lag),
                ", ".join(_event_label(e) for e in r.emitted) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lags = [r.lag for r in reports if r.lag is not None]
    if lags:
        lines.append(
            f"asset hop lag: median {statistics.median(lags):.2f}s, "
            f"min {min(lags):.2f}s, max {max(lags):.2f}s over {len(lags)} hop(s)"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _state_file(home: Path) -> Path:
    return Path(home) / "local_airflow.json"


def _running_url(home: Path) -> str | None:
    """The URL of the `up` instance on this home, if one answers (its state file may be stale)."""
    try:
        url = json.loads(_state_file(home).read_text())["url"]
        httpx.get(f"{url}/api/v2/monitor/health", timeout=3).raise_for_status()
        return url
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None


def _up(args: argparse.Namespace) -> int:
    if url := _running_url(args.home):
        raise AirflowLocalError(f"an Airflow already runs on {args.home} at {url}")
    extra, sink = {}, None
    if not os.environ.get("ALERTING_SMTP_HOST"):  # alert e-mails land in a mail sink beside the home
        from alerting.mailsink import MailSink

        sink = MailSink(Path(args.home).resolve().parent / "mail").start()
        extra = {"ALERTING_SMTP_HOST": sink.host, "ALERTING_SMTP_PORT": str(sink.port)}
        print(f"alert e-mails: mail sink on port {sink.port}, writing to {sink.directory}/", flush=True)
    af = LocalAirflow(args.home, args.dags, port=args.port, metadata_db_url=args.db_url, extra=extra)
    # Stop cleanly on Ctrl-C and on SIGTERM (also when started in the background, where a shell
    # leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with af:
        _state_file(af.home).write_text(
            json.dumps({"url": af.url, "pids": {n: p.pid for n, p in af.processes.items()}})
        )
        print(
            f"Airflow up in {af.startup_seconds:.1f}s at {af.url}  (user {ADMIN_USER}, password in "
            f"{af.home / 'local_secrets.json'}; logs in {af.log_dir}). Ctrl-C stops it.",
            flush=True,
        )
        try:
            while True:
                af._check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            pass
        finally:
            _state_file(af.home).unlink(missing_ok=True)
            if sink is not None:
                sink.stop()
    return 0


def _run_cycle(client: AirflowClient, args: argparse.Namespace) -> int:
    client.wait_for_dags([args.trigger], timeout=args.timeout)
    expect = args.expect.split(",") if args.expect else client.downstream_dags(args.trigger)
    client.wait_for_dags(expect, timeout=args.timeout)
    for dag_id in [args.trigger, *expect]:
        client.unpause(dag_id)
    since = utcnow()
    client.trigger(args.trigger)
    reports = cycle_report(client, since, [args.trigger, *expect], timeout=args.timeout)
    print(format_report(reports))
    return 0 if all(r.state == "success" for r in reports) else 1


def _cycle(args: argparse.Namespace) -> int:
    if url := _running_url(args.home):  # an `up` instance runs on this home: use it
        client = AirflowClient(url, ADMIN_USER, local_secrets(args.home)["admin_password"])
        try:
            return _run_cycle(client, args)
        finally:
            client.close()
    with LocalAirflow(args.home, args.dags, port=args.port, metadata_db_url=args.db_url) as af:
        print(f"Airflow up in {af.startup_seconds:.1f}s at {af.url}", flush=True)
        return _run_cycle(af.client, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.local.launcher", description="Run a real Airflow 3 locally as plain processes."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (
        ("up", _up, "start Airflow and keep it running until Ctrl-C"),
        (
            "cycle",
            _cycle,
            "trigger a DAG and report the event-driven cycle it sets off "
            "(on the `up` instance of --home if one runs, else on its own)",
        ),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--home", type=Path, default=Path("var/airflow"), help="AIRFLOW_HOME (default: var/airflow)")
        p.add_argument("--dags", type=Path, default=Path("dags"), help="DAGs folder (default: dags)")
        p.add_argument("--port", type=int, help="API server port (default: a free one)")
        p.add_argument("--db-url", help="metadata DB SQLAlchemy URL (default: SQLite in --home)")
        p.set_defaults(func=func)
        if name == "cycle":
            p.add_argument("--trigger", default="tick", help="DAG to trigger (default: tick)")
            p.add_argument(
                "--expect",
                help="comma-separated DAGs to wait for (default: every DAG downstream of --trigger by assets)",
            )
            p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the cycle")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AirflowLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
