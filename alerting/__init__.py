"""Alerting for the data platform: Slack (Block Kit) and e-mail notifications of DAG/task
failures, retries, recoveries and lateness, with routing by dbt tag / DAG tag / dag_id,
de-duplication, incidents resolved in their thread, storm grouping and an exactly-once
outbox. Independent of `orchestrator`; `alerting.airflow` has the Airflow callbacks.

    from alerting import Alert, Notifier, Outbox, RoutingConfig
    notifier = Notifier(RoutingConfig.load("alerting.yml"), Outbox("sqlite:///var/alerting/outbox.sqlite"))
    result = notifier.notify(Alert("task_failed", "dbt_finance", "dbt_build", error="..."))   # never raises
    notifier.redeliver()                                                                     # pending + due rows

`notify()` sanitises the alert first (secrets redacted, odd characters replaced, sizes bounded:
`alerting.redaction.sanitise`), records it in the outbox for every route before sending, and keeps to
`notify_budget_s`; `redeliver()` sends what is left and prunes what is older than `retention_days`.
`RoutingConfig.load` raises `RoutingConfigError` naming the file and key of every problem.

The package, by concept: `events` (the Alert), `routing/` (configuration and routing),
`redaction/` (secrets never leave, sizes bounded), `outbox/`, `delivery/`, `rendering/`,
`airflow/` (the Airflow glue), `lateness`, `mailsink` (a development mail sink).

Imports are lazy: a DAG file that attaches the callbacks pays for slack-sdk and SQLAlchemy
only when a callback runs, not at every parse.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Alert": "events",
    "DbtContext": "events",
    "DbtFailure": "events",
    "MeltanoContext": "events",
    "normalise_error": "events",
    "DeliveryResult": "delivery.dispatch",
    "EmailSender": "delivery.email_sender",
    "Notifier": "delivery.notifier",
    "NotifyResult": "delivery.notifier",
    "SlackSender": "delivery.slack_sender",
    "Outbox": "outbox.store",
    "render_email": "rendering.email_message",
    "render_slack": "rendering.slack_message",
    "Route": "routing.route",
    "RoutingConfig": "routing.config",
    "RoutingConfigError": "routing.checks",
    "Secret": "routing.credentials",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'alerting' has no attribute {name!r}")
