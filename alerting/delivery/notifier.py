"""Deliver alerts: route → outbox → send now; Slack failures fall back to e-mail and the
Slack row stays pending for `redeliver()`. `notify()` never raises, and never loses an alert:

- the alert is sanitised first (`alerting.redaction.sanitise`: secrets masked, lone surrogates
  and NUL replaced, sizes bounded), so nothing unsafe is rendered, sent or stored;
- a route whose match raises sends the alert to the default route (as well as to the routes
  that matched); a renderer that raises is replaced by a minimal plain-text rendering;
- every row of every route is recorded in the outbox (pending) before any Slack or SMTP I/O;
- one `notify()` call returns within `notify_budget_s` (alerting.yml, default 10 s), counted
  from its start (sanitising, the outbox writes and the credential lookups included): each
  Slack/SMTP call gets the time that is left as its timeout, a send still going at the deadline
  is left to finish in its worker thread (budget.py), and what has not been sent stays in the
  outbox for `redeliver()`.

`redeliver()` also prunes the outbox: sent (and other finished) rows and resolved incidents
older than `retention_days` (alerting.yml, default 30), a bounded batch per call.

Here: `Notifier` (notify, redeliver, which routes and channels), over its collaborators: the
`Outbox`, a `Dispatcher` (dispatch.py: sending one outbox row, its thread and its e-mail
fallback), which holds the `SlackSender` and `EmailSender` (slack_sender.py, email_sender.py);
budget.py is the time budget and `DeliveryError`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..events import Alert
from ..outbox import Outbox
from ..outbox.tables import EMAIL, SENT, SLACK, utcnow
from ..redaction import redact, redacting_logger
from ..redaction.sanitise import bounded_history, sanitise_alert
from ..routing.config import RoutingConfig
from ..routing.credentials import airflow_connection
from ..routing.route import Route
from .budget import finish_by
from .dispatch import DeliveryResult, Dispatcher, slack_message
from .email_sender import EmailSender
from .slack_sender import SlackSender

log = redacting_logger("alerting.delivery")


def _connection_exists(conn_id: str) -> bool:
    try:
        return airflow_connection(conn_id) is not None
    except Exception:  # noqa: BLE001
        return False


@dataclass
class NotifyResult:
    alert_id: str | None
    signature: str | None
    routes: list[str] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)  # route -> occurrences in the window
    deliveries: list[DeliveryResult] = field(default_factory=list)
    quiet: bool = False
    error: str | None = None
    elapsed_s: float = 0.0

    @property
    def delivered(self) -> bool:
        """Every route reached someone (Slack or its e-mail fallback), or was suppressed."""
        for r in self.routes:
            if r in self.suppressed:
                continue
            if not any(d.route == r and d.status == SENT for d in self.deliveries):
                return False
        return self.error is None


class Notifier:
    def __init__(
        self,
        config: RoutingConfig,
        outbox: Outbox | None = None,
        *,
        slack: SlackSender | None = None,
        email: EmailSender | None = None,
    ):
        self.config = config
        self.outbox = outbox or Outbox()
        self.slack = slack or SlackSender(config.slack)
        self.email = email or EmailSender(config.email)
        self.dispatcher = Dispatcher(config, self.outbox, self.slack, self.email)
        self._slack_ok: bool | None = None
        self.last_prune: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Notifier(routes={[r.name for r in self.config.routes_iter()]}, outbox={self.outbox!r})"

    # ------------------------------------------------------------ public

    def notify(self, alert: Alert) -> NotifyResult:
        """Record the alert for every route it matches, then send what is due within the budget.
        Never raises (an error is in `result.error`)."""
        t0 = time.monotonic()
        deadline = t0 + self.config.notify_budget_s
        result = NotifyResult(alert_id=None, signature=None, quiet=self.config.quiet)
        errors: list[str] = []
        try:
            alert = sanitise_alert(alert)
            result.alert_id, result.signature = alert.alert_id(), alert.signature()
            routes = self._routes(alert)
            if alert.kind == "task_failed" and "history" not in alert.extra:
                try:
                    history = self.outbox.history(alert.dag_id, alert.task_id, alert.run_id)
                    alert.extra["history"] = bounded_history(history)
                except Exception:  # noqa: BLE001 - the earlier tries are detail
                    log.exception("alerting: could not read the earlier tries of %s.%s", alert.dag_id, alert.task_id)
            result.routes = [r.name for r in routes]
            to_send = self._record(alert, routes, deadline, result, errors)
            for row_id in to_send:  # 2. send, within the budget; the rest stays pending
                result.deliveries += self.dispatcher.deliver(row_id, force=True, deadline=deadline)
        except Exception as e:  # noqa: BLE001 - an alerting failure must never fail the caller
            errors.append(redact(f"{type(e).__name__}: {e}"))
            log.exception(
                "alerting: notify failed for %s.%s", getattr(alert, "dag_id", "?"), getattr(alert, "task_id", "?")
            )
        result.error = "; ".join(errors) or None
        result.elapsed_s = time.monotonic() - t0
        return result

    def _record(
        self, alert: Alert, routes: list[Route], deadline: float, result: NotifyResult, errors: list[str]
    ) -> list[int]:
        """1. Every row of every route in the outbox, before any I/O; the rows to send now. Reading
        the Slack credentials (an Airflow connection lookup may be a network call) is within the
        budget too: one that does not answer in time counts as set, without threads."""
        threads = finish_by(deadline, self._supports_threads, lambda: False)
        slack_ok = finish_by(deadline, self._slack_configured, lambda: True)
        to_send: list[int] = []
        for route in routes:
            try:
                q = self.outbox.enqueue(
                    alert,
                    route,
                    self._kinds(route, slack_ok),
                    window_s=self.config.suppression_window_s,
                    thread_replies=self.config.thread_replies,
                    threads=threads,
                    quiet=self.config.quiet,
                    storm=(self.config.storm_threshold, self.config.storm_window_s),
                )
            except Exception as e:  # noqa: BLE001 - the other routes still get it
                errors.append(redact(f"route {route.name}: {type(e).__name__}: {e}"))
                log.exception("alerting: could not record the alert for route %s", route.name)
                continue
            if q.suppressed:
                result.suppressed[route.name] = q.count
            if self.config.quiet:
                log.info(
                    "quiet mode: recorded, not sent: route=%s %s", route.name, slack_message(alert, self.config).text
                )
                continue
            to_send += q.row_ids
        return to_send

    def redeliver(
        self, now: datetime | None = None, *, limit: int = 100, include_future: bool = False
    ) -> list[DeliveryResult]:
        """Send what is pending and due (all pending with include_future), then prune what is
        older than `retention_days` (a bounded batch: see `Outbox.prune`). Never raises."""
        results: list[DeliveryResult] = []
        try:
            ids = self.outbox.due(now, limit, include_future=include_future)
            for row_id in ids:
                results += self.dispatcher.deliver(row_id, now=now, force=include_future)
        except Exception as e:  # noqa: BLE001
            log.exception("alerting: redeliver failed")
            results.append(DeliveryResult(None, "-", "-", "failed", redact(f"{type(e).__name__}: {e}")))
        try:
            cutoff = (now or utcnow()) - timedelta(days=self.config.retention_days)
            self.last_prune = self.outbox.prune(cutoff)
            if any(self.last_prune.values()):
                log.info("alerting: pruned from the outbox (older than %s): %s", cutoff, self.last_prune)
        except Exception:  # noqa: BLE001
            log.exception("alerting: pruning the outbox failed")
        return results

    # ------------------------------------------------------------ internals

    def _routes(self, alert: Alert) -> list[Route]:
        """The routes for an alert; whatever goes wrong in routing, at least the default route."""
        if alert.kind == "recovered":
            # only where something failed: the routes of the task's open incidents
            open_ = [
                i
                for i in self.outbox.incidents(dag_id=alert.dag_id, task_id=alert.task_id or "")
                if i["resolved_at"] is None
            ]
            names = list(dict.fromkeys(i["route"] for i in open_))
            if open_:
                alert.extra.setdefault("failing_since", min(i["opened_at"] for i in open_).isoformat())
                alert.extra.setdefault("failures", max(i["count"] for i in open_))
            return [self.config.route(n) or self.config.default for n in names]
        try:
            return self.config.resolve(alert)
        except Exception:  # noqa: BLE001 - a broken route must not lose the alert
            log.exception("alerting: routing failed for %s.%s: sent to the default route", alert.dag_id, alert.task_id)
            return [self.config.default]

    def _supports_threads(self) -> bool:
        try:
            return self.slack.supports_threads
        except Exception:  # noqa: BLE001 - an unreadable token: as if there were none (no threads)
            log.exception("alerting: could not resolve the Slack token")
            return False

    def _slack_configured(self) -> bool:
        """A token or webhook is set: without either (a laptop), Slack is skipped, not queued forever.
        A credential that cannot be read counts as set: the row waits (and falls back to e-mail)."""
        if self._slack_ok is None:
            s = self.config.slack
            try:
                self._slack_ok = (
                    bool(s.token_conn_id and _connection_exists(s.token_conn_id))
                    or s.token() is not None
                    or s.webhook_url() is not None
                )
            except Exception:  # noqa: BLE001
                log.exception("alerting: could not resolve the Slack credentials")
                return True
        return self._slack_ok

    def _kinds(self, route: Route, slack_ok: bool) -> list[str]:
        kinds = []
        slack = bool(route.slack_channel) and slack_ok
        if slack:
            kinds.append(SLACK)
        if route.emails and (route.email_mode == "always" or not slack):
            kinds.append(EMAIL)
        return kinds
