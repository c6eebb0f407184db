"""Deliver alerts: route → outbox → send now; Slack failures fall back to e-mail and the
Slack row stays pending for `redeliver()`. `notify()` never raises, and never loses an alert:

- the alert is sanitised first (`alerting.sanitise`: secrets redacted, lone surrogates and NUL
  replaced, sizes bounded), so nothing unsafe is rendered, sent or stored;
- a route whose match raises sends the alert to the default route (as well as to the routes
  that matched); a renderer that raises is replaced by a minimal plain-text rendering;
- every row of every route is recorded in the outbox (pending) before any Slack or SMTP I/O;
- one `notify()` call spends at most `notify_budget_s` (alerting.yml, default 10 s) on
  sending: each Slack/SMTP call gets the time that is left as its timeout, and what has not
  been sent by then stays pending in the outbox for `redeliver()`.

`redeliver()` also prunes the outbox: sent (and other finished) rows and resolved incidents
older than `retention_days` (alerting.yml, default 30), a bounded batch per call."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import time
import urllib.error
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from .credentials import EmailSettings, SlackSettings
from .events import Alert
from .outbox import Outbox
from .outbox_tables import EMAIL, FAILURE_KINDS, PENDING, SENDING, SENT, SLACK, SLACK_REPLY, SLACK_STORM, utcnow
from .redaction import redact, redacting_logger
from .render import (
    EmailMessageParts,
    SlackMessage,
    render_email,
    render_email_minimal,
    render_minimal,
    render_recovered,
    render_repeat,
    render_retry_reply,
    render_slack,
    render_storm,
)
from .routing import Route, RoutingConfig
from .sanitise import clean_text, sanitise_alert

log = redacting_logger("alerting.delivery")
_sdk_log = redacting_logger("alerting.slack_sdk")


def _connection_exists(conn_id: str) -> bool:
    from .credentials import airflow_connection

    try:
        return airflow_connection(conn_id) is not None
    except Exception:  # noqa: BLE001
        return False


class DeliveryError(Exception):
    def __init__(self, message: str, *, retry_after_s: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.permanent = permanent


# Slack errors that retrying the same message cannot fix: the row fails at once (its
# e-mail fallback still goes). invalid_auth/token_revoked are NOT here: a fixed token
# lets redeliver() send what is pending.
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "restricted_action",
        "too_many_attachments",
    }
)


def _header(headers: Any, name: str) -> str | None:
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            return v[0] if isinstance(v, (list, tuple)) else v
    return None


# Below this much time left in a notify() budget, a delivery is not started (left pending).
MIN_ATTEMPT_S = 0.25


def _time_left(deadline: float | None, default: float) -> float:
    """The timeout for one call: the configured one, or less when the notify() budget ends sooner."""
    if deadline is None:
        return default
    return max(0.05, min(default, deadline - time.monotonic()))


def _within(deadline: float | None, needed_s: float) -> bool:
    return deadline is None or time.monotonic() + needed_s < deadline


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack-sdk's 429 handler, but only for a Retry-After short enough to sleep through
    inside notify() (and inside its budget); a longer one surfaces and the outbox row waits
    that long instead."""

    def __init__(self, max_wait_s: float, *, deadline: float | None = None, request_timeout_s: float = 0.0, **kw: Any):
        super().__init__(**kw)
        self.max_wait_s = max_wait_s
        self.deadline = deadline
        self.request_timeout_s = request_timeout_s

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        try:
            wait = float(_header(response.headers, "retry-after") or 1)
        except ValueError:
            return False
        return wait <= self.max_wait_s and _within(self.deadline, wait + self.request_timeout_s)


class DeadlineServerErrorRetryHandler(ServerErrorRetryHandler):
    """slack-sdk's 500/503 handler, retrying only when the retry fits in the notify() budget."""

    def __init__(self, *, deadline: float | None = None, request_timeout_s: float = 0.0, **kw: Any):
        super().__init__(**kw)
        self.deadline = deadline
        self.request_timeout_s = request_timeout_s

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        backoff = 1.5  # slack-sdk's first backoff: 0.5 s plus up to 1 s of jitter
        return super()._can_retry(state=state, request=request, response=response, error=error) and _within(
            self.deadline, backoff + self.request_timeout_s
        )


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


class SlackSender:
    def __init__(self, settings: SlackSettings):
        self.settings = settings

    def _handlers(self, deadline: float | None = None, timeout_s: float = 0.0) -> list[RetryHandler]:
        return [
            CappedRateLimitRetryHandler(
                self.settings.max_retry_after_s, deadline=deadline, request_timeout_s=timeout_s, max_retry_count=1
            ),
            DeadlineServerErrorRetryHandler(deadline=deadline, request_timeout_s=timeout_s, max_retry_count=1),
        ]

    @property
    def supports_threads(self) -> bool:
        return self.settings.token() is not None

    def _client(self, deadline: float | None = None) -> WebClient | None:
        """A WebClient for the bot token: from the Airflow Slack connection through the provider's
        SlackHook (token, base_url and timeout from the connection) when one is named and Airflow
        is importable, else from the token (env var or connection) directly. Its timeout is the
        configured one, or what is left of the notify() budget."""
        s = self.settings
        timeout = _time_left(deadline, s.timeout_s)
        client: WebClient | None = None
        if s.token_conn_id and not (s.token_env and os.environ.get(s.token_env)):
            try:
                from airflow.providers.slack.hooks.slack import SlackHook

                client = SlackHook(
                    slack_conn_id=s.token_conn_id,
                    timeout=int(max(1, s.timeout_s)),
                    base_url=s.base_url,
                    retry_handlers=self._handlers(deadline, timeout),
                ).client
            except ImportError:
                pass
        if client is None:
            token = s.token()
            if token is None:
                return None
            kw: dict[str, Any] = {
                "token": token.get(),
                "retry_handlers": self._handlers(deadline, timeout),
                "logger": _sdk_log,
            }
            if s.base_url:
                kw["base_url"] = s.base_url
            client = WebClient(**kw)
        client.timeout = timeout  # type: ignore[assignment]  # slack-sdk declares int; urllib takes a float
        return client

    def update(self, channel_id: str, ts: str, message: SlackMessage, *, deadline: float | None = None) -> None:
        """Rewrite a posted message (marks a failure resolved). Best effort: raises DeliveryError."""
        try:
            client = self._client(deadline)
            if client is None:
                raise DeliveryError("no Slack token: messages cannot be updated")
            client.chat_update(
                channel=channel_id, ts=ts, text=clean_text(message.text), blocks=_clean_json(message.blocks) or None
            )
        except SlackApiError as e:
            raise DeliveryError(
                redact(f"Slack chat.update: {e.response.get('error') if e.response is not None else e}")
            ) from None
        except (TimeoutError, urllib.error.URLError, OSError) as e:
            raise DeliveryError(redact(f"Slack unreachable: {type(e).__name__}: {e}")) from None

    def post(
        self, channel: str, message: SlackMessage, thread_ts: str | None = None, *, deadline: float | None = None
    ) -> tuple[str | None, str | None]:
        text, blocks = clean_text(message.text), _clean_json(message.blocks)
        try:
            client = self._client(deadline)
            if client is not None:
                args: dict[str, Any] = {
                    "channel": channel,
                    "text": text,
                    "unfurl_links": False,
                    "unfurl_media": False,
                }
                if blocks:
                    args["blocks"] = blocks
                if thread_ts:
                    args["thread_ts"] = thread_ts
                resp = client.chat_postMessage(**args)
                return resp.get("channel"), resp.get("ts")
            url = self.settings.webhook_url()
            if url is None:
                raise DeliveryError("no Slack credentials (token or webhook) configured")
            timeout = _time_left(deadline, self.settings.timeout_s)
            hook_kw: dict[str, Any] = {
                "timeout": timeout,
                "retry_handlers": self._handlers(deadline, timeout),
                "logger": _sdk_log,
            }
            hook = WebhookClient(url.get(), **hook_kw).send(
                text=text, blocks=blocks or None, unfurl_links=False, unfurl_media=False
            )
            if hook.status_code != 200:
                retry_after = _header(hook.headers, "retry-after")
                raise DeliveryError(
                    f"webhook HTTP {hook.status_code}: {hook.body[:200]}",
                    retry_after_s=float(retry_after) if retry_after else None,
                )
            return None, None
        except SlackApiError as e:
            retry_after = _header(e.response.headers, "retry-after") if e.response is not None else None
            status = e.response.status_code if e.response is not None else "?"
            err = e.response.get("error") if e.response is not None and isinstance(e.response.data, dict) else None
            raise DeliveryError(
                redact(f"Slack API HTTP {status}: {err or e}"),
                retry_after_s=float(retry_after) if retry_after else None,
                permanent=err in PERMANENT_SLACK_ERRORS,
            ) from None
        except DeliveryError:
            raise
        except (TimeoutError, urllib.error.URLError, OSError) as e:
            raise DeliveryError(redact(f"Slack unreachable: {type(e).__name__}: {e}")) from None


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib.SMTP whose every socket operation waits at most until the deadline, so a relay that
    answers each command slowly cannot stretch one send past the notify() budget."""

    def __init__(self, host: str, port: int, *, timeout: float, deadline: float | None):
        self._deadline = deadline
        super().__init__(host, port, timeout=_time_left(deadline, timeout))

    def _arm(self) -> None:
        if self._deadline is not None and self.sock is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the notify() budget is spent")
            self.sock.settimeout(min(self.timeout, left))

    def send(self, s: Any) -> None:
        self._arm()
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        self._arm()
        return super().getreply()


class EmailSender:
    def __init__(self, settings: EmailSettings):
        self.settings = settings

    def send(
        self,
        to: list[str],
        parts: EmailMessageParts,
        *,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> str:
        """Send; the Message-ID (a reply's In-Reply-To names it). With `deadline` (time.monotonic()),
        the whole SMTP conversation ends by then."""
        s = self.settings
        msg = EmailMessage()
        msg["Subject"] = clean_text(parts.subject)
        msg["From"] = s.sender
        msg["To"] = ", ".join(to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = message_id = make_msgid(domain="alerting.local")
        for k, v in (headers or {}).items():
            msg[k] = clean_text(v)
        msg.set_content(clean_text(parts.text))
        msg.add_alternative(clean_text(parts.html), subtype="html")
        user, password = s.credentials()
        try:
            with _DeadlineSMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_s, deadline=deadline) as smtp:
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if user and password is not None:
                    smtp.login(user, password.get())
                refused = smtp.send_message(msg)
                if refused and len(refused) == len(to):
                    raise DeliveryError(f"all recipients refused: {sorted(refused)}")
            return message_id
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as e:
            raise DeliveryError(redact(f"SMTP {s.smtp_host}:{s.smtp_port}: {type(e).__name__}: {e}")) from None


@dataclass
class DeliveryResult:
    row_id: int | None
    route: str
    kind: str
    status: str  # sent | pending | failed | skipped
    error: str | None = None


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
                    alert.extra["history"] = self.outbox.history(alert.dag_id, alert.task_id, alert.run_id)
                except Exception:  # noqa: BLE001 - the earlier tries are detail
                    log.exception("alerting: could not read the earlier tries of %s.%s", alert.dag_id, alert.task_id)
            result.routes = [r.name for r in routes]
            threads = self._supports_threads()
            to_send: list[int] = []
            for route in routes:  # 1. every row of every route in the outbox, before any I/O
                try:
                    q = self.outbox.enqueue(
                        alert,
                        route,
                        self._kinds(route),
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
                    log.info("quiet mode: recorded, not sent: route=%s %s", route.name, self._slack_text(alert))
                    continue
                to_send += q.row_ids
            for row_id in to_send:  # 2. send, within the budget; the rest stays pending
                result.deliveries += self._deliver(row_id, force=True, deadline=deadline)
        except Exception as e:  # noqa: BLE001 - an alerting failure must never fail the caller
            errors.append(redact(f"{type(e).__name__}: {e}"))
            log.exception(
                "alerting: notify failed for %s.%s", getattr(alert, "dag_id", "?"), getattr(alert, "task_id", "?")
            )
        result.error = "; ".join(errors) or None
        result.elapsed_s = time.monotonic() - t0
        return result

    def redeliver(
        self, now: datetime | None = None, *, limit: int = 100, include_future: bool = False
    ) -> list[DeliveryResult]:
        """Send what is pending and due (all pending with include_future), then prune what is
        older than `retention_days` (a bounded batch: see `Outbox.prune`). Never raises."""
        results: list[DeliveryResult] = []
        try:
            ids = self.outbox.due(now, limit, include_future=include_future)
            for row_id in ids:
                results += self._deliver(row_id, now=now, force=include_future)
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

    def _kinds(self, route: Route) -> list[str]:
        kinds = []
        slack = bool(route.slack_channel) and self._slack_configured()
        if slack:
            kinds.append(SLACK)
        if route.emails and (route.email_mode == "always" or not slack):
            kinds.append(EMAIL)
        return kinds

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
