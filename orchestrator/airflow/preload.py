"""What every task process of the embedded Airflow starts with already imported.

The LocalExecutor's task processes are forks of its worker processes (the Task SDK's supervisor
forks the task from the worker, bare `os.fork` on Linux). With the scheduler's
`mp_start_method = forkserver` (local/airflow_env.py), the workers are forked from a forkserver
that imports `mp_forkserver_preload` once: this module. A Celery worker imports it too, in its
main process before it forks its pool (celery_config.py). So dbt-core and its adapter, the Task
SDK's task runner and our DAG files' code are imported once per Airflow start instead of once
per task (dbt alone took 8-16 s per dbt task on 2 loaded cores).

Then one `dbt parse` of the configured project (`_warm_dbt`): dbt generates its (de)serialisers the
first time each is used, per process (mashumaro's lazy compilation: the partial-parse state's
decoder, manifest.json's and run_results.json's encoders, the project's and profile's JSON
schemas), which cost every dbt task ~2-3 s on 2 cores before its first model. Parsed once here, every
task process inherits them; the parse's state is shared with the runs (runners/dbt.py), so no dbt
task of the cycle re-parses the project either. It writes only under the configured dbt runs
directory (`.preload/`), and only when the Airflow was started for a config (ORCHESTRATION_CONFIG
set, as `orchestrator run`/`up` do). `ORCHESTRATOR_PRELOAD_DBT_PARSE=0` skips it.

Each import is guarded: the forkserver ignores an ImportError of a preload module but dies on
any other exception, and a task must then still start, only colder. `PRELOADED` lists what was
imported; `inherited()` tells a process forked after the preload from one that imported it itself.

Code imported here is the code every task runs until Airflow restarts (as with any long-lived
worker): `orchestrator run` starts Airflow for each cycle; after editing orchestrator/ under
`orchestrator up`, restart it.
"""

from __future__ import annotations

import importlib
import os

from orchestrator import settings

MODULES = (
    # the worker's own loop, the supervisor that forks each task, the task process's main
    "airflow.executors.local_executor",
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    # what every DAG file imports when the task process parses it, and the tasks' code: what only
    # a task run needs is imported by the task (not at every DAG parse), so it is listed here
    "orchestrator.airflow.dag_files",
    "orchestrator.airflow.render",  # dag_files imports it where it renders (the errors file never does)
    "orchestrator.airflow.dbt_task",
    "orchestrator.runners.meltano",
    "orchestrator.runners.reconcile",
    "orchestrator.runners.warehouse_lock",
    "orchestrator.runners.dbt_profile",
    "orchestrator.plan.translator",
    # dbt's runner, what `dbt build` imports only when it runs, and the adapters installed
    "dbt.cli.main",
    "dbt.task.build",
    "dbt.parser.manifest",
    "dbt.adapters.duckdb",
    "dbt.adapters.postgres",
)

PRELOADED: list[str] = []
_IMPORTED_BY = os.getpid()  # the process that ran the imports: the forkserver, when preloaded


def inherited() -> list[str]:
    """What this process found imported by the process it was forked from ([]: it imported this itself)."""
    return list(PRELOADED) if os.getpid() != _IMPORTED_BY else []


def _preload() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed, or broken: the task imports it (or fails) itself
            continue
        PRELOADED.append(name)
    _warm_api_client()
    # only for the project this Airflow was started for (local_airflow sets the config): an
    # Airflow started without one (a test's) must not parse the checkout's project into its var/
    warm = settings.PRELOAD_DBT_PARSE.get() != "0" and bool(settings.ORCHESTRATION_CONFIG.get())
    if "dbt.cli.main" in PRELOADED and warm:
        _warm_dbt()


def _warm_api_client() -> None:
    """The Task SDK's API client builds its SSL context (the CA store, certifi's bundle too) on first
    use, then caches it per process: each new LocalExecutor worker paid it (0.15 s on a loaded
    machine) for its first task's start call. Built here, every worker inherits it."""
    try:
        from airflow.sdk.api import client

        client.Client._get_ssl_context_cached(client.API_SSL_CA_FILE_PATH, client.API_SSL_CERT_PATH)
    except Exception:  # noqa: BLE001 - another SDK version: the first task builds it itself
        return
    PRELOADED.append("api client ssl context")


def _warm_dbt() -> None:
    """`dbt parse` of the configured project once, so the task processes forked after it inherit
    what dbt compiles lazily on first use (see the module's doc). Never fails the preload: without
    it each task is only slower."""
    try:
        from orchestrator.config import load_config
        from orchestrator.runners.dbt import DbtProjectRef, run_dbt

        config = load_config(None, None)
        env = config.profile.environment()
        env[settings.DBT_SEND_ANONYMOUS_USAGE_STATS.name] = "false"  # no tracker in a process that forks
        project = DbtProjectRef.of(config, env)
        target = config.dbt_runs_dir(env) / ".preload"
        result = run_dbt(["parse", "--quiet"], env=env, project=project, target_path=target, raise_on_failure=False)
    except Exception:  # noqa: BLE001 - no config, no project: the tasks say why when they run
        return
    if result.success:
        PRELOADED.append("dbt parse")


_preload()
