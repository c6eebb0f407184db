"""The Celery workers' configuration: Airflow's default, plus the tasks' preload (preload.py).

Celery imports the modules listed in `imports` in a worker's main process as it starts, before it
forks its prefork pool. Each pool process, and each task process the Task SDK forks from one, then
starts with dbt and our task code imported and dbt's serialisers compiled by one `dbt parse`, as
the LocalExecutor's task processes do through their forkserver (local/airflow_env.py:
warm_task_start). Without it, every dbt task on a Celery worker imported dbt itself (seconds on a
loaded machine) and compiled its serialisers again.

Named by `[celery] celery_config_options` (local/airflow_env.py: celery_env; docker-compose.yml).
The scheduler builds its Celery app from the same dict but never imports `imports`: only a worker's
start does.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

PRELOAD_MODULE = f"{__package__}.preload"  # named, not imported: importing it runs the preload

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), PRELOAD_MODULE),
}
