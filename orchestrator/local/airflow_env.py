"""The environment of a local Airflow 3.3: every process of one instance gets the same settings.

`airflow_env` builds it: home, DAGs folder, metadata database (SQLite in the home, or PostgreSQL),
executor, API port, shared secrets (kept in `<home>/local_secrets.json`), simple auth manager,
and the latency and SQLite settings commented below; `celery_env` adds the CeleryExecutor's.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path

from .sqlite_clock import write_local_settings

WORKER_LOG_SERVER_PORT = 8793  # Airflow's default worker log server port: never our API port
ADMIN_USER = "admin"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class AirflowLocalError(RuntimeError):
    """Airflow did not start, or did not do what we waited for in time."""


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


# SQLite has one write lock per database, and every Airflow process writes: the scheduler (runs,
# task states), the dag-processor (DAGs it parsed), the API server (our pools and unpausing, the
# tasks' state through the Execution API), the triggerer. Airflow 3.3 already puts the file in WAL
# mode (readers never wait) but passes no busy timeout, so Python's sqlite3 default applies: a
# writer that waits 5 s for the lock gives up with "database is locked", which the API answers as
# `500 Database error`. On 2 loaded cores a start-up burst holds the lock that long (reproduced:
# POST /api/v2/pools -> 500 after exactly 5.0 s while another connection held the lock). Writers
# wait up to this long instead, as they would for a row lock on PostgreSQL; it stays below our
# client's HTTP timeout, so a wait shows as a slow call, not a timeout.
SQLITE_BUSY_TIMEOUT_S = 30


def sqlite_url(path: Path) -> str:
    """The metadata DB URL for a SQLite file, with the busy timeout. SQLAlchemy's pysqlite dialect
    passes `timeout` to sqlite3.connect, and Airflow derives its async (aiosqlite) URL from this
    one, query included, so every engine of every process waits the same."""
    return f"sqlite:///{Path(path).resolve()}?timeout={SQLITE_BUSY_TIMEOUT_S}"


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
    Writes `<home>/local_secrets.json` and the simple auth manager's password file on first use, and
    `<home>/config/airflow_local_settings.py` (sqlite_clock.py).
    """
    if port == WORKER_LOG_SERVER_PORT:
        raise ValueError(f"port {port} is Airflow's worker log server port; pick another for the API server")
    home = Path(home).resolve()
    sec = local_secrets(home)
    write_local_settings(home)  # sub-second now() on SQLite: runs start without a whole-second wait
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("AIRFLOW__") or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))
    }
    env.update(_instance(home, Path(dags_folder).resolve(), metadata_db_url, executor, sec))
    env.update(_api(home, port, sec))
    env.update(_latency(port))
    env.update(execution_api_client())
    if executor == "LocalExecutor":
        env.update(warm_task_start())
    if executor == "CeleryExecutor":
        env.update(celery_env(metadata_db_url))
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def _instance(home: Path, dags_folder: Path, metadata_db_url: str | None, executor: str, sec: dict) -> dict[str, str]:
    """Where the instance lives, what it runs and how much at once."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db_url or sqlite_url(home / "airflow.db"),
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
    }


def _api(home: Path, port: int, sec: dict) -> dict[str, str]:
    """The API server on our port, the secrets every process shares, and the one admin user; writes
    the simple auth manager's password file."""
    passwords_file = home / "simple_auth_manager_passwords.json"
    passwords_file.touch(mode=0o600)
    passwords_file.write_text(json.dumps({ADMIN_USER: sec["admin_password"]}))
    return {
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
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
    }


def _latency(port: int) -> dict[str, str]:
    """How soon the scheduler acts on an Asset event and the dag-processor sees a changed file; log
    servers that never clash with another instance's."""
    return {
        # Low latency of asset-triggered runs. The scheduler creates (and starts) the run of an
        # asset-scheduled DAG in its first loop after the event; it sleeps only after a loop that
        # found nothing to do, for this long (default 1 s). Measured on 2 cores, SQLite, event ->
        # downstream run start, median: 1 s -> 1.2 s; 0.25 s -> 0.8 s (PostgreSQL 0.15 s) for ~5 %
        # of a core while idle; 0.1 s -> 0.76 s for ~12 %.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
        # (`[scheduler] scheduler_heartbeat_sec` is only the liveness heartbeat in 3.3, not the loop
        # pace: the default 5 s is kept.)
        # DAG files: look for new files every 10 s (default 300 s). Changed files are re-parsed at
        # once anyway (file_parsing_sort_mode=modified_time); unchanged ones every 2 minutes
        # (default 30 s): dbt/Meltano DAGs read their project files at parse time, so they need a
        # periodic re-parse, but each parse of one of our 6 files took 1.4-3 s on 2 loaded cores
        # (dag-processor stats), so every 30 s the re-parsing took ~40 % of a core from the tasks
        # of a running cycle. `orchestrator run` parses every file again at each start anyway.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",  # one per core
        # Log servers on free ports (not the fixed 8793/8794), so two local instances never clash.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(avoid={port})),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port(avoid={port})),
        # Process logs go to files: no ANSI colour codes in them.
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
    }


# What the LocalExecutor's task processes start with already imported. Its workers are forks of the
# scheduler (multiprocessing's default start method on Linux) and each task process is a fork of a
# worker (the Task SDK's supervisor: bare os.fork), so a task imports whatever the scheduler had not:
# dbt-core and its adapter (8-16 s per dbt task on 2 loaded cores), the task runner, our DAG files'
# code. With `forkserver` the workers are forked from a server process that first imports
# `mp_forkserver_preload` once (Airflow 3.3's `[scheduler] mp_start_method`, applied by the
# scheduler command before the executor starts): orchestrator/airflow/preload.py imports all of it,
# so every task starts warm. The scheduler itself imports none of it. LocalExecutor only: the
# CeleryExecutor's scheduler starts no workers (its workers are `airflow celery worker` processes,
# which import the same preload through their Celery config: celery_env).
PRELOAD_MODULE = "orchestrator.airflow.preload"


def warm_task_start() -> dict[str, str]:
    """The scheduler's LocalExecutor workers forked from a forkserver that preloads the tasks' imports."""
    return {
        "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
        "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": PRELOAD_MODULE,
    }


# The task processes' client of the Execution API (the Task SDK's; `[workers]` options). Airflow's
# default timeout is 5 s per request, which a loaded 2-core machine exceeds: a task-state write through
# the API server waits for SQLite's write lock (up to SQLITE_BUSY_TIMEOUT_S) while the scheduler and
# dag-processor write, and the API server's one worker shares the cores with dbt and Meltano. Seen:
# the tick's first try failed with `httpx.ReadTimeout` and passed on its retry 140 s later. A request
# may take longer than the busy timeout (the lock wait plus the work), so the client waits twice
# that before it gives up on one; it retries 5 times (Airflow's default) on a timeout or a 5xx, but
# after 1 to 10 s, not up to 90 s: a local API server that is busy for a moment answers soon, and
# one that is gone will not come back within minutes.
EXECUTION_API_TIMEOUT_S = 2 * SQLITE_BUSY_TIMEOUT_S
EXECUTION_API_RETRIES = 5
EXECUTION_API_RETRY_WAIT_S = (1.0, 10.0)


def execution_api_client() -> dict[str, str]:
    """Timeouts and retries of the task processes' Execution API client (see above)."""
    return {
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": str(float(EXECUTION_API_TIMEOUT_S)),
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": str(EXECUTION_API_RETRIES),
        "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": str(EXECUTION_API_RETRY_WAIT_S[0]),
        "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": str(EXECUTION_API_RETRY_WAIT_S[1]),
    }


CELERY_CONFIG_OPTIONS = "orchestrator.airflow.celery_config.CELERY_CONFIG"


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
        # each worker imports the tasks' preload before forking its pool (airflow/celery_config.py)
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG_OPTIONS,
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }
