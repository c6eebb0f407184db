"""Delivering one outbox row (`Notifier._deliver`): claim it, render, send to Slack (top level,
in a parent's thread, a "seen again" reply, a storm header) or by e-mail, then mark it sent or
schedule its retry. A Slack failure falls back to e-mail at once; a renderer that raises is
replaced by a minimal plain rendering; a recovery rewrites the failure's message as resolved."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .delivery_budget import MIN_ATTEMPT_S, DeliveryError
from .email_message import EmailMessageParts, render_email, render_email_minimal
from .email_sender import EmailSender
from .events import Alert
from .outbox import Outbox
from .outbox_tables import EMAIL, FAILURE_KINDS, PENDING, SENDING, SENT, SLACK, SLACK_REPLY, SLACK_STORM
from .redaction import redact, redacting_logger
from .routing import RoutingConfig
from .slack_message import (
    SlackMessage,
    render_minimal,
    render_recovered,
    render_repeat,
    render_retry_reply,
    render_slack,
    render_storm,
)
from .slack_sender import SlackSender

log = redacting_logger("alerting.delivery")


@dataclass
class DeliveryResult:
    row_id: int | None
    route: str
    kind: str
    status: str  # sent | pending | failed | skipped
    error: str | None = None


class RowDelivery:
    """Mixed into `Notifier` (alerting.delivery): sending one row, its thread, its fallback."""

    config: RoutingConfig
    outbox: Outbox
    slack: SlackSender
    email: EmailSender

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

    def _slack_text(self, alert: Alert) -> str:
        try:
            return render_slack(alert, self.config.slack_id).text
        except Exception:  # noqa: BLE001
            return render_minimal(alert).text

    def _message(self, alert: Alert, threaded: bool) -> SlackMessage:
        """The Slack rendering; a minimal plain-text one when the renderer fails on this alert."""
        try:
            if alert.kind == "retry":
                return render_retry_reply(alert)
            if alert.kind == "recovered":
                return render_recovered(alert) if threaded else render_slack(alert, self.config.slack_id)
            return render_slack(alert, self.config.slack_id)
        except Exception:  # noqa: BLE001
            log.exception(
                "alerting: rendering failed for %s.%s: sending a minimal message", alert.dag_id, alert.task_id
            )
            return render_minimal(alert)

    def _email(self, alert: Alert, repeat_count: int) -> EmailMessageParts:
        try:
            return render_email(alert, repeat_count=repeat_count)
        except Exception:  # noqa: BLE001
            log.exception("alerting: rendering failed for %s.%s: sending a minimal e-mail", alert.dag_id, alert.task_id)
            return render_email_minimal(alert, repeat_count=repeat_count)

    def _left_pending(self, row_id: int) -> list[DeliveryResult]:
        row = self.outbox.row(row_id)
        if row is None or row["status"] != PENDING:
            return []
        return [DeliveryResult(row_id, row["route"], row["kind"], PENDING, "notify budget spent: left for redelivery")]

    def _deliver(
        self, row_id: int, *, now: datetime | None = None, force: bool = False, deadline: float | None = None
    ) -> list[DeliveryResult]:
        if deadline is not None and deadline - time.monotonic() < MIN_ATTEMPT_S:
            return self._left_pending(row_id)
        row = self.outbox.claim(row_id, now, force=force)
        if row is None:
            return []
        route, kind = row["route"], row["kind"]
        alert: Alert | None = None
        try:
            if kind == SLACK_STORM:
                channel_id, ts = self.slack.post(
                    row["target"], render_storm(json.loads(row["payload"])), deadline=deadline
                )
                self.outbox.mark_sent(row_id, slack_ts=ts, channel_id=channel_id)
                return [DeliveryResult(row_id, route, kind, SENT)]
            alert = Alert.from_dict(json.loads(row["payload"]))
            if kind == SLACK:
                channel_id, thread_ts, wait = self._thread(row)
                if wait:
                    self.outbox.release(row_id)
                    return [DeliveryResult(row_id, route, kind, PENDING, "parent message not sent yet")]
                message = self._message(alert, threaded=thread_ts is not None)
                posted_channel, ts = self.slack.post(
                    channel_id or row["target"], message, thread_ts=thread_ts, deadline=deadline
                )
                self.outbox.mark_sent(row_id, slack_ts=ts, channel_id=posted_channel, thread_ts=thread_ts)
                if alert.kind == "recovered" and thread_ts:
                    self._mark_resolved(row, alert, deadline)
            elif kind == SLACK_REPLY:
                channel_id, parent_ts = self.outbox.parent_ts(row["signature"], route, alert.kind)
                if parent_ts is None:
                    self.outbox.release(row_id)
                    return [DeliveryResult(row_id, route, kind, "pending", "parent message not sent yet")]
                since = alert.occurred_at.isoformat(timespec="seconds")
                _, ts = self.slack.post(
                    channel_id or row["target"],
                    render_repeat(row["repeat_count"], since),
                    thread_ts=parent_ts,
                    deadline=deadline,
                )
                self.outbox.mark_sent(row_id, slack_ts=ts, channel_id=channel_id, thread_ts=parent_ts)
            elif kind == EMAIL:
                to = [a for a in row["target"].split(",") if a]
                headers = {"X-Alert-Id": row["alert_id"], "X-Alert-Signature": row["signature"]}
                parent = self.outbox.row(row["parent_row_id"]) if row.get("parent_row_id") else None
                if parent and parent.get("message_id"):  # a recovery answers the failure's e-mail
                    headers.update({"In-Reply-To": parent["message_id"], "References": parent["message_id"]})
                parts = self._email(alert, row["repeat_count"])
                message_id = self.email.send(to, parts, headers=headers, deadline=deadline)
                self.outbox.mark_sent(row_id, message_id=message_id)
            else:
                raise DeliveryError(f"unknown delivery kind {kind!r}")
        except Exception as e:  # noqa: BLE001
            err = redact(str(e) if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}")
            status = self.outbox.mark_retry(
                row_id, err, retry_after_s=getattr(e, "retry_after_s", None), permanent=getattr(e, "permanent", False)
            )
            log.warning("alerting: %s delivery to route %s failed (%s): %s", kind, route, status, err)
            results = [DeliveryResult(row_id, route, kind, status, err)]
            if kind == SLACK and alert is not None and alert.kind != "retry":
                results += self._fallback(row, alert, deadline)
            return results
        log.info("alerting: %s delivered to route %s (%s)", kind, route, row["target"])
        return [DeliveryResult(row_id, route, kind, SENT)]

    def _mark_resolved(self, row: dict[str, Any], recovery: Alert, deadline: float | None) -> None:
        """Rewrite the failure's message as resolved (best effort: the reply already says so)."""
        try:
            parent = self.outbox.row(row["parent_row_id"])
            if not parent or not parent.get("slack_ts") or not parent.get("slack_channel_id"):
                return
            failure = Alert.from_dict(json.loads(parent["payload"]))
            if failure.kind not in FAILURE_KINDS:
                return
            if deadline is not None and deadline - time.monotonic() < MIN_ATTEMPT_S:
                return
            self.slack.update(
                parent["slack_channel_id"],
                parent["slack_ts"],
                render_slack(failure, self.config.slack_id, resolved=recovery),
                deadline=deadline,
            )
        except Exception as e:  # noqa: BLE001
            log.warning("alerting: could not mark the failure message resolved: %s", e)

    def _fallback(self, row: dict[str, Any], alert: Alert, deadline: float | None) -> list[DeliveryResult]:
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
        return self._deliver(fid, force=True, deadline=deadline) if fid is not None and created else []
