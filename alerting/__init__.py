"""Alerting for the data platform: Slack (Block Kit) and e-mail notifications of DAG/task
failures, retries, recoveries and lateness, with routing by dbt tag / DAG tag / dag_id,
de-duplication and an exactly-once outbox. Independent of `orchestrator`.

    from alerting import Alert, Notifier, Outbox, RoutingConfig
    notifier = Notifier(RoutingConfig.load("alerting.yml"), Outbox("sqlite:///var/alerting/outbox.sqlite"))
    result = notifier.notify(Alert("task_failed", "dbt_finance", "dbt_build", error="..."))   # never raises
    notifier.redeliver()                                                                     # pending + due rows
"""

from .delivery import DeliveryResult, EmailSender, Notifier, NotifyResult, SlackSender
from .events import Alert, DbtContext, DbtFailure, MeltanoContext, normalise_error
from .outbox import Outbox
from .render import render_email, render_slack
from .routing import Route, RoutingConfig, Secret

__all__ = ["Alert", "DbtContext", "DbtFailure", "DeliveryResult", "EmailSender", "MeltanoContext", "Notifier",
           "NotifyResult", "Outbox", "Route", "RoutingConfig", "Secret", "SlackSender", "normalise_error",
           "render_email", "render_slack"]
