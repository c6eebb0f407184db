"""Credentials, read at send time and never stored: the Slack token or webhook URL and the
SMTP login, from environment variables or Airflow connections that the routing file names.

`Secret` hides its value from repr/str and registers it for redaction (`alerting.redaction`);
`SlackSettings` / `EmailSettings` are the `slack:` and `email:` sections of the routing file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ..redaction import register_secret


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


def airflow_connection(conn_id: str) -> dict[str, Any] | None:
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
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001
        return None
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return {"host": conn.host, "port": conn.port, "login": conn.login, "password": conn.password, "extra": extra}


def resolve_secret(env: str | None = None, conn_id: str | None = None, field_name: str = "password") -> Secret | None:
    if env and os.environ.get(env):
        return Secret(os.environ[env])
    if conn_id:
        conn = airflow_connection(conn_id)
        if conn:
            value = conn.get(field_name) or (conn.get("extra") or {}).get(field_name)
            if field_name == "password" and not value:
                value = (conn.get("extra") or {}).get("token") or (conn.get("extra") or {}).get("webhook_token")
            if value:
                return Secret(str(value))
    return None


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
            conn = airflow_connection(self.webhook_conn_id)
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
            conn = airflow_connection(self.conn_id)
            user = conn.get("login") if conn else None
        return user, password
