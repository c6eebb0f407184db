"""What is known to be secret: every credential this package resolved (`register_secret`: each
`Secret` registers itself) and the environment's secrets, read when an alert is sent (never at
import): variables named like one (*TOKEN*, *PASSWORD*, *PASSWD*, *PASSPHRASE*, *SECRET*, *_PASS,
*_PWD, *_KEY, *APIKEY*, *API_KEY*, *WEBHOOK*, *CREDENTIAL*), the passwords of AIRFLOW_CONN_*
connections and of any URL-valued variable. A value is masked wherever it appears, also
percent-decoded.
"""

from __future__ import annotations

import json
import os
import re
import threading
from urllib.parse import unquote, urlsplit

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# Environment variables whose value is a secret (read at redaction time, never at import).
SECRET_ENV_NAME = re.compile(
    r"TOKEN|PASSWORD|PASSWD|PASSPHRASE|SECRET|_PASS$|_PWD$|_KEY$|APIKEY|API_KEY|WEBHOOK|CREDENTIAL", re.IGNORECASE
)
_NOT_SECRET = {"true", "false", "yes", "no", "on", "off", "none", "null"}
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
