"""Delivering one outbox row: claim it, render, send to Slack (top level, in a parent's thread, a
"seen again" reply, a storm header) or by e-mail, then mark it sent or schedule its retry. A
Slack failure falls back to e-mail at once; a renderer that raises is replaced by a minimal plain
rendering; a recovery rewrites the failure's message as resolved."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events import Alert
from ..outbox import Outbox
from ..outbox.tables import EMAIL, FAILURE_KINDS, PENDING, SENDING, SENT, SLACK, SLACK_REPLY, SLACK_STORM
from ..redaction import redact, redacting_logger
from ..rendering.email_message import EmailMessageParts, render_email, render_email_minimal
from ..rendering.slack_message import (
    SlackMessage,
    render_minimal,
    render_recovered,
    render_repeat,
    render_retry_reply,
    render_slack,
    render_storm,
)
from ..routing.config import RoutingConfig
from .budget import MIN_ATTEMPT_S, DeliveryError, finish_by, spent
from .email_sender import EmailSender
from .slack_sender import SlackSender

log = redacting_logger("alerting.delivery")


@dataclass
class DeliveryResult:
    row_id: int | None
    route: str
    kind: str
    status: str  # sent | pending | failed | sending (still in flight when the budget ended)
    error: str | None = None


def slack_message(alert: Alert, config: RoutingConfig, *, threaded: bool = False) -> SlackMessage:
    """The Slack rendering; a minimal plain-text one when the renderer fails on this alert."""
    try:
        if alert.kind == "retry":
            return render_retry_reply(alert)
        if alert.kind == "recovered" and threaded:
            return render_recovered(alert)
        return render_slack(alert, config.slack_id)
    except Exception:  # noqa: BLE001 - a malformed detail must not keep the alert from its channel
        log.exception("alerting: rendering failed for %s.%s: sending a minimal message", alert.dag_id, alert.task_id)
        return render_minimal(alert)


def email_parts(alert: Alert, repeat_count: int) -> EmailMessageParts:
    try:
        return render_email(alert, repeat_count=repeat_count)
    except Exception:  # noqa: BLE001
        log.exception("alerting: rendering failed for %s.%s: sending a minimal e-mail", alert.dag_id, alert.task_id)
        return render_email_minimal(alert, repeat_count=repeat_count)


class Dispatcher:
    """Sends outbox rows: what `Notifier.notify()` sends at once and `redeliver()` later."""

    def __init__(self, config: RoutingConfig, outbox: Outbox, slack: SlackSender, email: EmailSender):
        self.config, self.outbox, self.slack, self.email = config, outbox, slack, email

    def deliver(
        self, row_id: int, *, now: datetime | None = None, force: bool = False, deadline: float | None = None
    ) -> list[DeliveryResult]:
        """Claim the row and send it; its results (with an e-mail fallback's). With `deadline`
        (time.monotonic()), nothing is started past it (the row stays pending), and a send still
        going at the deadline is left to finish in its worker (budget.py: `finish_by`)."""
        if spent(deadline, MIN_ATTEMPT_S):
            return self._left_pending(row_id)
        row = self.outbox.claim(row_id, now, force=force)
        if row is None:
            return []
        in_flight = DeliveryResult(row_id, row["route"], row["kind"], SENDING, "still sending when the budget ended")
        return finish_by(deadline, lambda: self._send(row, deadline), lambda: [in_flight])

    def _send(self, row: dict[str, Any], deadline: float | None) -> list[DeliveryResult]:
        """Send a claimed row, then mark it sent or schedule its retry (a Slack failure falls back
        to e-mail at once)."""
        row_id, route, kind = row["id"], row["route"], row["kind"]
        alert: Alert | None = None
        try:
            if kind == SLACK_STORM:
                channel_id, ts = self.slack.post(
                    row["target"], render_storm(json.loads(row["payload"])), deadline=deadline
                )
                self.outbox.mark_sent(row_id, slack_ts=ts, channel_id=channel_id)
                return [DeliveryResult(row_id, route, kind, SENT)]
            alert = Alert.from_dict(json.loads(row["payload"]))
            send = {SLACK: self._slack, SLACK_REPLY: self._reply, EMAIL: self._email}.get(kind)
            if send is None:
                raise DeliveryError(f"unknown delivery kind {kind!r}")
            waiting = send(row, alert, deadline)
            if waiting is not None:
                return [waiting]
        except Exception as e:  # noqa: BLE001
            err = redact(str(e) if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}")
            status = self.outbox.mark_retry(
                row_id, err, retry_after_s=getattr(e, "retry_after_s", None), permanent=getattr(e, "permanent", False)
            )
            log.warning("alerting: %s delivery to route %s failed (%s): %s", kind, route, status, err)
            results = [DeliveryResult(row_id, route, kind, status, err)]
            if kind == SLACK and alert is not None and alert.kind != "retry":
                results += self._fallback(row, deadline)
            return results
        log.info("alerting: %s delivered to route %s (%s)", kind, route, row["target"])
        return [DeliveryResult(row_id, route, kind, SENT)]

    # ------------------------------------------------------------ one kind of row each

    def _slack(self, row: dict[str, Any], alert: Alert, deadline: float | None) -> DeliveryResult | None:
        channel_id, thread_ts, wait = self._thread(row)
        if wait:
            self.outbox.release(row["id"])
            return DeliveryResult(row["id"], row["route"], SLACK, PENDING, "parent message not sent yet")
        message = slack_message(alert, self.config, threaded=thread_ts is not None)
        posted_channel, ts = self.slack.post(
            channel_id or row["target"], message, thread_ts=thread_ts, deadline=deadline
        )
        self.outbox.mark_sent(row["id"], slack_ts=ts, channel_id=posted_channel, thread_ts=thread_ts)
        if alert.kind == "recovered" and thread_ts:
            self._mark_resolved(row, alert, deadline)
        return None

    def _reply(self, row: dict[str, Any], alert: Alert, deadline: float | None) -> DeliveryResult | None:
        """ "Seen again: N occurrences", in the thread of the window's first message."""
        channel_id, parent_ts = self.outbox.parent_ts(row["signature"], row["route"], alert.kind)
        if parent_ts is None:
            self.outbox.release(row["id"])
            return DeliveryResult(row["id"], row["route"], SLACK_REPLY, PENDING, "parent message not sent yet")
        since = alert.occurred_at.isoformat(timespec="seconds")
        message = render_repeat(row["repeat_count"], since)
        _, ts = self.slack.post(channel_id or row["target"], message, thread_ts=parent_ts, deadline=deadline)
        self.outbox.mark_sent(row["id"], slack_ts=ts, channel_id=channel_id, thread_ts=parent_ts)
        return None

    def _email(self, row: dict[str, Any], alert: Alert, deadline: float | None) -> DeliveryResult | None:
        to = [a for a in row["target"].split(",") if a]
        headers = {"X-Alert-Id": row["alert_id"], "X-Alert-Signature": row["signature"]}
        parent = self.outbox.row(row["parent_row_id"]) if row.get("parent_row_id") else None
        if parent and parent.get("message_id"):  # a recovery answers the failure's e-mail
            headers.update({"In-Reply-To": parent["message_id"], "References": parent["message_id"]})
        parts = email_parts(alert, row["repeat_count"])
        message_id = self.email.send(to, parts, headers=headers, deadline=deadline)
        self.outbox.mark_sent(row["id"], message_id=message_id)
        return None

    # ------------------------------------------------------------ threads, fallback, resolution

    def _thread(self, row: dict[str, Any]) -> tuple[str | None, str | None, bool]:
        """(channel id, thread ts, wait) for a row posted under a parent row's message. Slack
        threads are one level deep: a parent that is itself a reply lends its own thread."""
        if not row.get("parent_row_id"):
            return None, None, False
        parent = self.outbox.row(row["parent_row_id"])
        if parent is None:
            return None, None, False
        if parent["status"] in (PENDING, SENDING):
            return None, None, True  # post after the parent, in its thread
        if parent["status"] != SENT or not parent.get("slack_ts"):
            return None, None, False  # the parent never went out: post at top level
        return parent.get("slack_channel_id"), parent.get("thread_ts") or parent["slack_ts"], False

    def _left_pending(self, row_id: int) -> list[DeliveryResult]:
        row = self.outbox.row(row_id)
        if row is None or row["status"] != PENDING:
            return []
        return [DeliveryResult(row_id, row["route"], row["kind"], PENDING, "notify budget spent: left for redelivery")]

    def _mark_resolved(self, row: dict[str, Any], recovery: Alert, deadline: float | None) -> None:
        """Rewrite the failure's message as resolved (best effort: the reply already says so)."""
        try:
            parent = self.outbox.row(row["parent_row_id"])
            if not parent or not parent.get("slack_ts") or not parent.get("slack_channel_id"):
                return
            failure = Alert.from_dict(json.loads(parent["payload"]))
            if failure.kind not in FAILURE_KINDS or spent(deadline, MIN_ATTEMPT_S):
                return
            self.slack.update(
                parent["slack_channel_id"],
                parent["slack_ts"],
                render_slack(failure, self.config.slack_id, resolved=recovery),
                deadline=deadline,
            )
        except Exception as e:  # noqa: BLE001
            log.warning("alerting: could not mark the failure message resolved: %s", e)

    def _fallback(self, row: dict[str, Any], deadline: float | None) -> list[DeliveryResult]:
        route = self.config.route(row["route"])
        if route is None or not route.emails:
            return []
        fid, created = self.outbox.ensure(
            row["alert_id"],
            route.name,
            EMAIL,
            ",".join(route.emails),
            signature=row["signature"],
            payload=row["payload"],
            count=row["repeat_count"],
        )
        # a fallback created now goes now (within the budget); an older pending one keeps its own backoff
        return self.deliver(fid, force=True, deadline=deadline) if fid is not None and created else []
