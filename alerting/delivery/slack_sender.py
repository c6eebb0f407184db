"""Send to Slack: `SlackSender` posts (bot token through the WebClient or the Airflow Slack
provider's hook, else an incoming webhook) and updates messages. slack-sdk's retry handlers
are bounded: a 429 is slept through only for a short Retry-After and a 5xx retried only when
it fits in the notify() budget; otherwise the outbox row waits and is redelivered. Errors that
no retry can fix (`PERMANENT_SLACK_ERRORS`) fail the row at once."""

from __future__ import annotations

import os
import urllib.error
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

from ..redaction import redact, redacting_logger
from ..redaction.sanitise import clean_text
from ..rendering.slack_message import SlackMessage
from ..routing.credentials import SlackSettings
from .budget import DeliveryError, time_left, within

_sdk_log = redacting_logger("alerting.slack_sdk")


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
        return wait <= self.max_wait_s and within(self.deadline, wait + self.request_timeout_s)


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
        return super()._can_retry(state=state, request=request, response=response, error=error) and within(
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
        timeout = time_left(deadline, s.timeout_s)
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
            timeout = time_left(deadline, self.settings.timeout_s)
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
