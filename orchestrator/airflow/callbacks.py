"""How the generated DAGs alert: the `alerting` package's Airflow callbacks, configured from
orchestration.yml (`alerting.config`, the routing file) and the profile (the outbox: see
OrchestrationConfig.outbox_url; SQLite under var/ embedded, PostgreSQL in production). Nothing is
opened at parse time."""

from __future__ import annotations

from alerting.airflow import AirflowAlerts

from ..config import OrchestrationConfig
from .lineage_alert import enrich


def airflow_alerts(config: OrchestrationConfig) -> AirflowAlerts:
    """The callbacks; each alert of a Meltano or dbt DAG gets what the plan's lineage says of it:
    a failure its blast radius, a recovery what ran late (lineage_alert.enrich)."""
    return AirflowAlerts(
        config.alerting_config, outbox_url=config.outbox_url(), enrich=lambda alert: enrich(config, alert)
    )
