"""Routing: which Slack channel and which e-mail list an alert goes to.

The config (YAML file, YAML text or dict) holds names only: the Slack token, the
webhook URL and the SMTP password are read at send time from environment
variables or Airflow connections named here, and are redacted from every repr
and every log line of this package.

    quiet: false                   # dev: record in the outbox, send nothing (env ALERTING_QUIET=1 too)
    suppression_window_s: 3600     # same signature within it: counted, not re-sent
    thread_replies: false          # post "seen N times" in the original's thread
    storm: {threshold: 5, window_s: 600}   # more failures than this on a route within the window:
                                           # the rest go in one thread
    slack:
      token_env: SLACK_BOT_TOKEN   # or token_conn_id: slack_api_default
      webhook_env: null            # or webhook_conn_id: slack_webhook (used when no token)
      base_url: null               # e.g. a test server: http://127.0.0.1:PORT/api/ (env ALERTING_SLACK_BASE_URL)
      timeout_s: 3
    email:
      smtp_host: localhost         # env ALERTING_SMTP_HOST / ALERTING_SMTP_PORT override
      smtp_port: 25
      starttls: false
      sender: airflow@example.com
      username_env: null
      password_env: null           # or conn_id: smtp_default
      timeout_s: 5
    owners:                        # owner e-mail (dbt meta.owner) -> Slack user id
      alice@example.com: U012ALICE
    routes:                        # every matching route gets the alert
      - name: finance
        match: {dbt_tag: finance}  # keys: dbt_tag, dag_tag, dag_id (glob); AND across keys,
        slack_channel: "#finance"  # a list is OR within a key
        emails: [finance@example.com]
        email_mode: fallback       # fallback (only when Slack fails) | always
    default:
      slack_channel: "#data-alerts"
      emails: [data@example.com]
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from .events import Alert

log = logging.getLogger("alerting")

# ---------------------------------------------------------------- secrets / redaction

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
REDACTED = "***"


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: Any) -> str:
    s = str(text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in s:
            s = s.replace(secret, REDACTED)
    return s


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a record's rendered message (and exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(exc_text)
            record.exc_info = None
        record.msg, record.args = clean, None
        return True


def redacting_logger(name: str) -> logging.Logger:
    lg = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in lg.filters):
        lg.addFilter(RedactingFilter())
    return lg


redacting_logger("alerting")


class Secret:
    """A resolved credential: never shows its value in repr/str."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def _airflow_connection(conn_id: str) -> dict[str, Any] | None:
    """An Airflow connection's fields, from AIRFLOW_CONN_<ID> (URI or JSON) first, then,
    if Airflow is importable, its secrets backends / metadata DB."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        raw = raw.strip()
        if raw.startswith("{"):
            d = json.loads(raw)
            return {
                "host": d.get("host"),
                "port": d.get("port"),
                "login": d.get("login"),
                "password": d.get("password"),
                "extra": d.get("extra") or {},
            }
        u = urlsplit(raw)
        return {
            "host": unquote(u.hostname or "") or None,
            "port": u.port,
            "login": unquote(u.username) if u.username else None,
            "password": unquote(u.password) if u.password else None,
            "extra": {},
        }
    try:  # lazy: this package does not need Airflow
        from airflow.sdk import BaseHook  # type: ignore[import-not-found]

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001
        return None
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return {"host": conn.host, "port": conn.port, "login": conn.login, "password": conn.password, "extra": extra}


def resolve_secret(env: str | None = None, conn_id: str | None = None, field_name: str = "password") -> Secret | None:
    if env and os.environ.get(env):
        return Secret(os.environ[env])
    if conn_id:
        conn = _airflow_connection(conn_id)
        if conn:
            value = conn.get(field_name) or (conn.get("extra") or {}).get(field_name)
            if field_name == "password" and not value:
                value = (conn.get("extra") or {}).get("token") or (conn.get("extra") or {}).get("webhook_token")
            if value:
                return Secret(str(value))
    return None


# ---------------------------------------------------------------- config


@dataclass
class SlackSettings:
    token_env: str | None = "SLACK_BOT_TOKEN"
    token_conn_id: str | None = None
    webhook_env: str | None = None
    webhook_conn_id: str | None = None
    base_url: str | None = None
    timeout_s: float = 3.0
    max_retry_after_s: float = 2.0  # a longer Retry-After is not slept through: the row is redelivered later

    def token(self) -> Secret | None:
        return resolve_secret(self.token_env, self.token_conn_id)

    def webhook_url(self) -> Secret | None:
        url = resolve_secret(self.webhook_env, None)
        if url is None and self.webhook_conn_id:
            conn = _airflow_connection(self.webhook_conn_id)
            if conn:
                password = conn.get("password") or (conn.get("extra") or {}).get("webhook_token")
                if password and str(password).startswith("http"):
                    url = Secret(str(password))
                elif password:
                    host = conn.get("host") or "https://hooks.slack.com/services"
                    url = Secret(host.rstrip("/") + "/" + str(password).lstrip("/"))
        return url


@dataclass
class EmailSettings:
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    sender: str = "airflow-alerts@localhost"
    username_env: str | None = None
    password_env: str | None = None
    conn_id: str | None = None
    timeout_s: float = 5.0

    def credentials(self) -> tuple[str | None, Secret | None]:
        user = os.environ.get(self.username_env) if self.username_env else None
        password = resolve_secret(self.password_env, self.conn_id)
        if user is None and self.conn_id:
            conn = _airflow_connection(self.conn_id)
            user = conn.get("login") if conn else None
        return user, password


@dataclass
class Route:
    name: str
    slack_channel: str | None = None
    emails: list[str] = field(default_factory=list)
    email_mode: str = "fallback"  # fallback | always
    match: dict[str, list[str]] = field(default_factory=dict)

    def matches(self, alert: Alert) -> bool:
        if not self.match:
            return False
        for key, patterns in self.match.items():
            if key == "dbt_tag":  # the dbt context's tag, or a DAG tag `dbt_tag:<tag>` (DAG-level alerts)
                values = [alert.dbt.tag] if alert.dbt and alert.dbt.tag else []
                values += [t.split(":", 1)[1] for t in alert.dag_tags if t.startswith("dbt_tag:")]
            elif key == "dag_tag":
                values = list(alert.dag_tags)
            elif key == "dag_id":
                values = [alert.dag_id]
            else:
                raise ValueError(f"route {self.name}: unknown match key {key!r}")
            if not any(fnmatch.fnmatchcase(v, p) for v in values for p in patterns):
                return False
        return True


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)]


def _route(d: dict[str, Any], default_name: str) -> Route:
    known = {"name", "slack_channel", "emails", "email_mode", "match"}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"route {d.get('name', default_name)}: unknown keys {sorted(unknown)}")
    mode = d.get("email_mode", "fallback")
    if mode not in ("fallback", "always"):
        raise ValueError(f"route {d.get('name', default_name)}: email_mode must be fallback or always")
    return Route(
        name=str(d.get("name", default_name)),
        slack_channel=d.get("slack_channel"),
        emails=_as_list(d.get("emails")),
        email_mode=mode,
        match={k: _as_list(v) for k, v in (d.get("match") or {}).items()},
    )


_FORBIDDEN = ("token", "webhook_url", "password", "url")


@dataclass
class RoutingConfig:
    routes: list[Route] = field(default_factory=list)
    default: Route = field(default_factory=lambda: Route(name="default"))
    quiet: bool = False
    suppression_window_s: float = 3600.0
    thread_replies: bool = False
    storm_threshold: int = 5
    storm_window_s: float = 600.0
    owners: dict[str, str] = field(default_factory=dict)
    slack: SlackSettings = field(default_factory=SlackSettings)
    email: EmailSettings = field(default_factory=EmailSettings)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoutingConfig:
        d = dict(d or {})
        for section in ("slack", "email"):
            for key in d.get(section) or {}:
                if key in _FORBIDDEN:
                    raise ValueError(
                        f"{section}.{key}: secrets do not belong in the routing config; "
                        f"name an env var ({key}_env) or an Airflow connection (…_conn_id)"
                    )
        default = _route({"name": "default", **(d.get("default") or {})}, "default")
        quiet = d.get("quiet", False)
        env_quiet = os.environ.get("ALERTING_QUIET")
        if env_quiet is not None:
            quiet = env_quiet.lower() in ("1", "true", "yes")
        slack, email = dict(d.get("slack") or {}), dict(d.get("email") or {})
        # Where to send, per deployment (a mail sink in dev, a test server): env over the file.
        for env_name, section, key, cast in (
            ("ALERTING_SLACK_BASE_URL", slack, "base_url", str),
            ("ALERTING_SMTP_HOST", email, "smtp_host", str),
            ("ALERTING_SMTP_PORT", email, "smtp_port", int),
        ):
            if os.environ.get(env_name):
                section[key] = cast(os.environ[env_name])
        storm = d.get("storm") or {}
        unknown = set(d) - {
            "quiet",
            "suppression_window_s",
            "thread_replies",
            "storm",
            "owners",
            "slack",
            "email",
            "routes",
            "default",
        }
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        return cls(
            routes=[_route(r, f"route{i}") for i, r in enumerate(d.get("routes") or [])],
            default=default,
            quiet=bool(quiet),
            suppression_window_s=float(d.get("suppression_window_s", 3600)),
            thread_replies=bool(d.get("thread_replies", False)),
            storm_threshold=int(storm.get("threshold", 5)),
            storm_window_s=float(storm.get("window_s", 600)),
            owners={str(k).lower(): str(v) for k, v in (d.get("owners") or {}).items()},
            slack=SlackSettings(**slack),
            email=EmailSettings(**email),
        )

    @classmethod
    def load(cls, source: str | Path | dict[str, Any]) -> RoutingConfig:
        if isinstance(source, dict):
            return cls.from_dict(source)
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and Path(source).exists()):
            try:
                return cls.from_dict(yaml.safe_load(Path(source).read_text()) or {})
            except FileNotFoundError:
                raise ValueError(f"{source}: file not found") from None
            except (ValueError, TypeError, yaml.YAMLError) as e:
                raise ValueError(f"{source}: {e}") from None
        return cls.from_dict(yaml.safe_load(source) or {})

    def resolve(self, alert: Alert) -> list[Route]:
        """Every matching route (each once, in config order), else the default route."""
        seen: dict[str, Route] = {}
        for r in self.routes:
            if r.name not in seen and r.matches(alert):
                seen[r.name] = r
        return list(seen.values()) or [self.default]

    def route(self, name: str) -> Route | None:
        if name == self.default.name:
            return self.default
        return next((r for r in self.routes if r.name == name), None)

    def slack_id(self, owner: str) -> str | None:
        return self.owners.get(owner.strip().lower())

    def routes_iter(self) -> Iterable[Route]:
        yield from self.routes
        yield self.default
