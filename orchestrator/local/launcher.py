"""The local Airflow launcher's public names, kept importable from here (bench/, the production
tests). The code lives in airflow_env (settings), processes (LocalAirflow), client (REST API v2)
and report (one cycle followed and reported); `orchestrator up` (service.py) keeps one running."""

from __future__ import annotations

from .airflow_env import (
    ADMIN_USER,
    WORKER_LOG_SERVER_PORT,
    AirflowLocalError,
    airflow_env,
    celery_env,
    free_port,
    local_secrets,
)
from .client import TERMINAL_STATES, AirflowClient, parse_ts, utcnow
from .processes import PROCESSES, LocalAirflow, descendants, family
from .report import RunReport, blocked_dags, cycle_report, follow_cycle, format_report

__all__ = [
    "ADMIN_USER",
    "PROCESSES",
    "TERMINAL_STATES",
    "WORKER_LOG_SERVER_PORT",
    "AirflowClient",
    "AirflowLocalError",
    "LocalAirflow",
    "RunReport",
    "airflow_env",
    "blocked_dags",
    "celery_env",
    "cycle_report",
    "descendants",
    "family",
    "follow_cycle",
    "format_report",
    "free_port",
    "local_secrets",
    "parse_ts",
    "utcnow",
]
