"""How the generated DAGs alert: the `alerting` package's Airflow callbacks, configured from
orchestration.yml (`alerting.config`, the routing file) and the profile (`ALERTING_OUTBOX_URL`:
SQLite under var/ embedded, PostgreSQL in production). Nothing is opened at parse time."""

from __future__ import annotations

from alerting.airflow import AirflowAlerts

from ..plan.config import OrchestrationConfig


def airflow_alerts(config: OrchestrationConfig) -> AirflowAlerts:
    env = config.profile.environment()
    return AirflowAlerts(config.alerting_config, outbox_url=env.get("ALERTING_OUTBOX_URL") or None)
