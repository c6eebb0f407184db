"""Delivery: `Notifier` records an alert in the outbox for every route it matches, then sends
what is due to Slack and by e-mail within a time budget; `redeliver()` sends the rest later.

    notifier.py       Notifier: notify, redeliver, which routes and channels
    dispatch.py       Dispatcher: one outbox row claimed, rendered, sent, marked (and its fallback)
    slack_sender.py   SlackSender: slack-sdk (or the Airflow Slack provider's hook), bounded retries
    email_sender.py   EmailSender: SMTP, the whole conversation within the budget
    budget.py         the notify() time budget, DeliveryError
"""

from .dispatch import DeliveryResult
from .notifier import Notifier, NotifyResult

__all__ = ["DeliveryResult", "Notifier", "NotifyResult"]
