"""How the generated DAGs alert: the `alerting` package's Airflow callbacks, configured from
orchestration.yml (`alerting.config`, the routing file) and the profile (`ALERTING_OUTBOX_URL`:
SQLite under var/ embedded, PostgreSQL in production; unset, a SQLite file in the config's var
dir, never the worker's working directory). Nothing is opened at parse time."""

from __future__ import annotations

from alerting.airflow import AirflowAlerts

from ..plan.config import OrchestrationConfig


def outbox_url(config: OrchestrationConfig) -> str:
    return config.profile.environment().get("ALERTING_OUTBOX_URL") or (
        f"sqlite:///{config.var_dir / 'alerting' / 'outbox.sqlite'}"
    )


def airflow_alerts(config: OrchestrationConfig) -> AirflowAlerts:
    """The callbacks; each alert of a Meltano or dbt DAG gets what the plan's lineage says of it:
    a failure its blast radius, a recovery what ran late (lineage_alert.enrich)."""
    from .lineage_alert import enrich

    return AirflowAlerts(
        config.alerting_config, outbox_url=outbox_url(config), enrich=lambda alert: enrich(config, alert)
    )
