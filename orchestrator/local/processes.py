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
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from .airflow_env import ADMIN_USER, AirflowLocalError, airflow_env, free_port, local_secrets
from .client import AirflowClient
from .warehouse import ensure_postgres_database

PROCESSES = ("scheduler", "dag-processor", "api-server", "triggerer")


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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig) if groups else os.kill(pid, sig)


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
            self.check_alive()
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

    def check_alive(self) -> None:
        """AirflowLocalError with the end of its log if a component has exited."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-4000:]
                raise AirflowLocalError(f"airflow {name} exited with {proc.returncode}; end of its log:\n{tail}")

    def wait_healthy(self, timeout: float) -> dict:
        """Until /api/v2/monitor/health says the metadata DB, scheduler, triggerer and dag-processor are
        healthy (each component heartbeats into the metadata DB; the API server reads them)."""
        deadline, health = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            self.check_alive()
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
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, t0 + timeout - time.monotonic()))
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
