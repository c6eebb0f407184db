"""Redaction: no credential ever reaches a log line, an error or an alert of this package.

A value is a secret when it was registered (every resolved `Secret` registers itself) or when
the environment holds it: variables named like one (*TOKEN*, *PASSWORD*, *SECRET*, *_KEY,
*WEBHOOK*), the passwords of AIRFLOW_CONN_* connections and of any URL-valued variable.
`redact()` also masks URL passwords and Slack-token-shaped strings it was never told about;
`redacting_logger()` applies it to every record of a logger (the "alerting" logger has it
from import on).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
REDACTED = "***"

# Environment variables whose value is a secret (read at redaction time, never at import).
SECRET_ENV_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|_KEY$|WEBHOOK", re.IGNORECASE)
_NOT_SECRET = {"true", "false", "yes", "no", "on", "off", "none", "null"}
# scheme://user:password@host -> scheme://user:***@host
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@?#]*):(?P<pw>[^\s@/?#]+)@")
_SLACK_TOKEN = re.compile(r"\b(?P<kind>xox[abposr])-[A-Za-z0-9][A-Za-z0-9\-]*")
_env_cache: tuple[int, frozenset[str]] = (0, frozenset())


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def _candidates(value: str | None) -> set[str]:
    """A secret value as it may appear in text: itself, and percent-decoded."""
    if not value or len(value) < 4 or value.strip().lower() in _NOT_SECRET:
        return set()
    return {value, unquote(value)} - {""}


def _connection_secrets(raw: str) -> set[str]:
    """The password (and token-like extras) of an AIRFLOW_CONN_* value, URI or JSON."""
    out: set[str] = set()
    raw = raw.strip()
    try:
        if raw.startswith("{"):
            d = json.loads(raw)
            extra = d.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra) if extra.strip().startswith("{") else {}
            for v in (d.get("password"), extra.get("token"), extra.get("webhook_token"), extra.get("password")):
                out |= _candidates(v if isinstance(v, str) else None)
        else:
            out |= _candidates(urlsplit(raw).password)
    except (ValueError, AttributeError):
        pass
    return {x for x in out if len(x) >= 4}


def env_secrets() -> frozenset[str]:
    """Values of the environment that are secrets: variables named like one (*TOKEN*, *PASSWORD*,
    *SECRET*, *_KEY, *WEBHOOK*), the passwords of AIRFLOW_CONN_* connections, and the password of
    any URL-valued variable (scheme://user:password@host). Read now, cached until the environment changes."""
    global _env_cache
    items = tuple(sorted(os.environ.items()))
    key = hash(items)
    if _env_cache[0] == key and key:
        return _env_cache[1]
    found: set[str] = set()
    for name, value in items:
        if name.upper().startswith("AIRFLOW_CONN_"):
            found |= _connection_secrets(value)
        elif SECRET_ENV_NAME.search(name):
            found |= _candidates(value)
        elif "://" in value and "@" in value:
            found |= _connection_secrets(value)
    result = frozenset(found)
    _env_cache = (key, result)
    return result


def known_secrets() -> list[str]:
    """Every registered credential and every secret of the environment, longest first."""
    with _secrets_lock:
        registered = set(_secrets)
    return sorted(registered | env_secrets(), key=len, reverse=True)


def redact(text: Any, secrets: list[str] | None = None) -> str:
    """The text without any known secret, URL password or Slack-token-shaped string."""
    s = str(text)
    for secret in known_secrets() if secrets is None else secrets:
        if secret in s:
            s = s.replace(secret, REDACTED)
    if "://" in s:
        s = _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{REDACTED}@", s)
    if "xox" in s:
        s = _SLACK_TOKEN.sub(lambda m: f"{m.group('kind')}-{REDACTED}", s)
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
