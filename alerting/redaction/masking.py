"""`redact(text)`: every known secret (registry.py) and every secret-shaped string (patterns.py)
replaced by `***`; `redact_value` does it through a JSON-like value, masking whatever sits under a
field named like a secret; `redacting_logger(name)` applies `redact` to every record of a logger
(the "alerting" logger has it from import on)."""

from __future__ import annotations

import logging
from typing import Any

from .patterns import REDACTED, mask_shapes, sensitive_name
from .registry import known_secrets


def redact(text: Any, secrets: list[str] | None = None) -> str:
    """The text without any known secret (`secrets`, default: `known_secrets()` now) or secret shape."""
    s = str(text)
    for secret in known_secrets() if secrets is None else secrets:
        if secret in s:
            s = s.replace(secret, REDACTED)
    return mask_shapes(s)


def redact_all(value: Any) -> Any:
    """What sits under a sensitive field name: every string masked, the shape kept."""
    if isinstance(value, str):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(v) for v in value]
    return value


def masked_field(name: Any) -> bool:
    return isinstance(name, str) and sensitive_name(name)


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
