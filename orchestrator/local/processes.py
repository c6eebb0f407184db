"""A real Airflow 3.3, run locally as plain processes.

`LocalAirflow` runs `airflow db migrate`, then `scheduler`, `dag-processor`, `api-server` and
`triggerer` (and, for the CeleryExecutor, workers) as subprocesses, each leading its own process
group with its log in `<home>/logs/<name>.log`, and stops them all again. Nothing here is a mock:
it is the same scheduler, executor and API a deployment runs, on SQLite (default, a file in the
home) or PostgreSQL.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from .airflow_env import ADMIN_USER, AirflowLocalError, airflow_env, free_port, local_secrets
from .client import AirflowClient, utcnow
from .warehouse import ensure_postgres_database

PROCESSES = ("scheduler", "dag-processor", "api-server", "triggerer")
LOG_TEMPLATE_SETTINGS = ("AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE", "AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE")


def _table() -> dict[int, tuple[int, int, str, str]]:
    """Every live process from /proc: pid -> (parent pid, session id, start time, state)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[3]), fields[19], fields[0])
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(pids: Iterable[int]) -> set[int]:
    """All descendants of `pids` (by parent pid, from /proc)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in _table().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def family(sessions: Iterable[int], known: dict[int, str] | None = None) -> dict[int, str]:
    """pid -> start time of every live process of an instance: the members of the components'
    sessions (each component leads one, and everything it starts stays in it, however its parent
    ends: LocalExecutor workers, task runners in groups of their own, log servers, parsing
    processes), plus the descendants of those and of the `known` processes still alive (a task's
    subprocess may open a session of its own). A zombie counts as gone."""
    table = {pid: t for pid, t in _table().items() if t[3] != "Z"}
    sessions = set(sessions)
    found = {pid for pid, (_, sid, _, _) in table.items() if sid in sessions}
    found |= {pid for pid, started in (known or {}).items() if pid in table and table[pid][2] == started}
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid: table[pid][2] for pid in found}


def _started(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), None once it is gone: with its pid, an identity."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _signal(pids: Iterable[int], sig: int, groups: bool) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig) if groups else os.kill(pid, sig)


def _signal_same(processes: dict[int, str], sig: int) -> None:
    """Signal these very processes (pid and start time), never a new one that reused a pid."""
    _signal([pid for pid, started in processes.items() if _started(pid) == started], sig, groups=False)


def _exit_status(proc: subprocess.Popen) -> int | None:
    """A component's exit status once it has ended, else None, without reaping it: until stop() reaps
    it, its pid (and so its session id) cannot be given to another process."""
    if proc.returncode is not None:
        return proc.returncode
    info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _kill_family(sessions: list[int], known: dict[int, str]) -> dict[int, str]:
    """SIGKILL the family (see `family`): freeze it with SIGSTOP until a search finds nobody new (a
    stopped process neither forks nor exits, so no child escapes the search), then kill. Returns the
    processes it killed."""
    stopped: dict[int, str] = {}
    while left := {pid: st for pid, st in family(sessions, {**known, **stopped}).items() if pid not in stopped}:
        _signal_same(left, signal.SIGSTOP)
        stopped.update(left)
    _signal_same(stopped, signal.SIGKILL)
    return stopped


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
        self.started_at: datetime | None = None  # when the components were started
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

    def start(self, before_scheduler: Callable[[LocalAirflow], None] | None = None) -> LocalAirflow:
        """Migrate the metadata DB, start the components, wait until healthy. Once: a started
        instance returns itself (so `with LocalAirflow(...).start() as af:` starts it only once).

        `before_scheduler(self)` runs once the API server, dag-processor and triggerer are healthy
        and before the scheduler starts: what must be in place before anything gets scheduled."""
        if self.processes:
            return self
        t0 = time.monotonic()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.metadata_db_url and self.metadata_db_url.startswith("postgresql"):
            ensure_postgres_database(self.metadata_db_url)
        # Idempotent: creates the schema on a new database, upgrades an old one, else a no-op. The
        # no-op still costs an `airflow` CLI process (15 s on 2 loaded cores): skipped when this
        # Airflow version already migrated this database and it is still at that revision.
        if not self.schema_current():
            (self.log_dir / "db-migrate.log").write_text(self.airflow("db", "migrate"))
            self._stamp_schema()
        self.timings["db migrate"] = time.monotonic() - t0
        atexit.register(self.stop)
        self.started_at = utcnow()
        try:
            # With a `before_scheduler` step, the API server and dag-processor start alone: on 2 cores
            # each component's start-up (importing Airflow) competes with the others, and these two
            # are what the step waits for (pools through the API, every DAG parsed again). The
            # triggerer, which nothing needs until a task defers, starts with the scheduler after.
            later = {"scheduler", "triggerer"} if before_scheduler else set()
            for name in PROCESSES:
                if name not in later:
                    self._spawn(name, [name, "--port", str(self.port)] if name == "api-server" else [name])
            for i in range(1, self.workers + 1):
                self.start_worker(f"worker-{i}")
            if before_scheduler:
                self.wait_healthy(self.startup_timeout - (time.monotonic() - t0), scheduler=False, triggerer=False)
                self.warm_execution_api()
                before_scheduler(self)
                self.timings["before scheduler"] = time.monotonic() - t0
                for name in PROCESSES:
                    if name in later:
                        self._spawn(name, [name])
            self.wait_healthy(self.startup_timeout - (time.monotonic() - t0))
            if not before_scheduler:
                self.warm_execution_api()
            for i in range(1, self.workers + 1):
                self.wait_worker_ready(f"worker-{i}", self.startup_timeout - (time.monotonic() - t0))
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = self.timings["healthy"] = time.monotonic() - t0
        return self

    @property
    def _schema_stamp(self) -> Path:
        return self.home / "schema-migrated.json"

    def _schema_state(self) -> dict[str, str | None]:
        """This Airflow's version, the database's Alembic revision (None: no schema yet) and the log
        templates this environment sets."""
        revision = None
        with contextlib.suppress(Exception):  # no database, no table yet: not migrated
            engine = create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
            try:
                with engine.connect() as conn:
                    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            finally:
                engine.dispose()
        # `db migrate` also records the log file name templates (synchronize_log_template): a changed
        # one must migrate again, or task logs are looked for under the old names.
        templates = {k: self.env.get(k) for k in LOG_TEMPLATE_SETTINGS}
        return {"airflow": importlib.metadata.version("apache-airflow"), "revision": revision, **templates}

    def schema_current(self) -> bool:
        """Whether `airflow db migrate` would be a no-op: this Airflow version migrated this database
        (the stamp, written after it succeeded) and the database is still at the revision it left."""
        try:
            stamp = json.loads(self._schema_stamp.read_text())
        except (OSError, ValueError):
            return False
        return bool(stamp.get("revision")) and stamp == self._schema_state()

    def _stamp_schema(self) -> None:
        self._schema_stamp.write_text(json.dumps(self._schema_state()))

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
            self.check_alive()
            if " ready." in (self.log_dir / f"{name}.log").read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise AirflowLocalError(f"Celery {name} not ready after {timeout:.0f}s (log: {self.log_dir / name}.log)")

    def kill(self, name: str) -> None:
        """SIGKILL one component and everything it started, as a lost machine would: no clean-up."""
        proc = self.processes.pop(name)
        _kill_family([proc.pid], {})
        proc.wait()

    def check_alive(self) -> None:
        """AirflowLocalError with the end of its log if a component has exited."""
        for name, proc in self.processes.items():
            if (status := _exit_status(proc)) is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-4000:]
                raise AirflowLocalError(f"airflow {name} exited with {status}; end of its log:\n{tail}")

    def warm_execution_api(self) -> None:
        """One request into the Task Execution API before any task needs it. Its app (Cadwyn)
        builds the routers of every API version on its first request, synchronously, on the API
        server's only event loop: 6-25 s on 2 loaded cores during which every request waits, the
        first task's start call included (seen as the tick's task taking 17-20 s in
        bench/cycle_ratio.py). Paid here, at start-up, nothing waits on it. Any answer will do."""
        t0 = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{self.url}/execution/health", timeout=max(60.0, self.startup_timeout / 2))
        self.timings["execution api warm"] = time.monotonic() - t0

    def wait_healthy(self, timeout: float, *, scheduler: bool = True, triggerer: bool = True) -> dict:
        """Until /api/v2/monitor/health says the metadata DB, dag-processor, scheduler (unless
        `scheduler=False`) and triggerer (unless `triggerer=False`) are healthy (each component
        heartbeats into the metadata DB; the API server reads them)."""
        components = (
            "metadatabase",
            "dag_processor",
            *(("scheduler",) if scheduler else ()),
            *(("triggerer",) if triggerer else ()),
        )
        deadline, health = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if all((health.get(c) or {}).get("status") == "healthy" for c in components):
                    return health
            except (httpx.HTTPError, ValueError):
                pass  # API server not listening yet
            time.sleep(0.5)
        raise AirflowLocalError(f"Airflow not healthy after {timeout:.0f}s: {health} (logs in {self.log_dir})")

    def stop(self, timeout: float = 20) -> None:
        """Stop every process of the instance, and return only once they are all gone.

        SIGTERM the components' process groups, the API server last (task runners report their final
        state through it while the scheduler shuts down); after `timeout` s, freeze what is left with
        SIGSTOP (no more forks, no parent exits that would orphan a child), find everything again and
        SIGKILL it. Processes are found by session, not only by ancestry: a process whose parent ended
        is no longer anyone's descendant, but stays in its component's session; and they are watched
        throughout the shutdown, so a task's subprocess with a session of its own is seen while its
        parent still lives."""
        atexit.unregister(self.stop)
        t0 = time.monotonic()
        if self._client:
            self._client.close()
            self._client = None
        if not self.processes:
            return
        sessions = [p.pid for p in self.processes.values()]  # a session outlives its leader
        known = family(sessions)
        deadline = t0 + timeout
        last = [p for n, p in self.processes.items() if n == "api-server"]
        for batch in ([p for p in self.processes.values() if p not in last], last):
            _signal([p.pid for p in batch], signal.SIGTERM, groups=True)
            while any(_exit_status(p) is None for p in batch) and time.monotonic() < deadline:
                known.update(family(sessions, known))
                time.sleep(0.1)
        killed = _kill_family(sessions, known)
        for proc in self.processes.values():
            proc.wait()
        while family(sessions, killed) and time.monotonic() < deadline + 10:
            time.sleep(0.05)  # SIGKILLed processes die once scheduled; zombies count as gone
        self.processes.clear()
        self.timings["stop"] = time.monotonic() - t0

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
