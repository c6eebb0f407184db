"""Airflow glue: the callbacks any DAG attaches (callbacks.py: `AirflowAlerts`) and the task
callables of the alerting housekeeping DAG (tasks.py: `check_lateness`, `redeliver`). Nothing
here imports Airflow at import time: a DAG file pays for it only when a callback runs."""

from .callbacks import AirflowAlerts, alert_from_context
from .tasks import check_lateness, redeliver

__all__ = ["AirflowAlerts", "alert_from_context", "check_lateness", "redeliver"]
