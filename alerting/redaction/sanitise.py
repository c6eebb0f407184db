"""Alert content is made safe once, when `Notifier.notify()` receives it, before anything is
rendered, sent or stored in the outbox:

- secrets are redacted from every text field (error, Meltano log tail, dbt messages, extra,
  ids): every resolved credential (`credentials.Secret`), the secret values of the environment
  (`redaction.env_secrets`: *TOKEN*, *PASSWORD*, *SECRET*, *_KEY, *WEBHOOK* variables, AIRFLOW_CONN_*
  passwords, passwords of URL-valued variables), read at that moment, not at import; and any
  `scheme://user:password@host` password and Slack-token-shaped string (`xoxb-…`);
- a lone surrogate (text decoded with `surrogateescape`, a broken UTF-16 pair) becomes U+FFFD,
  so the outbox (SQLite, PostgreSQL), json and MIME can all encode it; a NUL becomes the
  four characters `\\x00` (PostgreSQL text cannot hold NUL, and it must not go raw into MIME);
- sizes are bounded: each text field at `FIELD_MAX` characters (a visible marker where cut), the
  Meltano log tail at its last `LOG_TAIL_MAX` lines of `LINE_MAX` characters, a dbt failure's
  message at `LINE_MAX`;
- `extra` becomes JSON-safe (what is not a JSON value becomes its str), as the outbox stores it.

`clean_text` (surrogates, NUL) is also applied by the senders to whatever they send.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from ..events import KINDS, Alert
from .registry import known_secrets, redact

FIELD_MAX = 64_000  # characters of any one text field of an alert (as stored), marker included
LOG_TAIL_MAX = 100  # Meltano log lines kept (the renderers show the last 30)...
LINE_MAX = 4_000  # ...and characters of each, as of each dbt failure's message
MARKER = "… (truncated)"
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Lone surrogates -> U+FFFD (a valid pair is joined into its character); NUL -> `\\x00`."""
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text


def cap(text: str, limit: int = FIELD_MAX) -> str:
    return text if len(text) <= limit else text[: limit - len(MARKER)] + MARKER


def clean_value(value: Any, secrets: list[str] | None = None, limit: int = FIELD_MAX) -> Any:
    """A JSON-safe copy with every string cleaned, redacted and capped."""
    if isinstance(value, str):
        # cut far beyond the cap first (bounded work on a 100 MB line), redact, then cap: a secret
        # can be cut in half only beyond what is kept
        return cap(redact(clean_text(value[: 4 * limit]), secrets), limit)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {clean_value(str(k), secrets, 200): clean_value(v, secrets, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean_value(v, secrets, limit) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return clean_value(str(value), secrets, limit)


def sanitise_alert(alert: Alert) -> Alert:
    """The alert as it may be rendered, sent and stored (see the module doc)."""
    secrets = known_secrets()
    kind, occurred_at = alert.kind, alert.occurred_at
    try:
        d = alert.to_dict()
        del d["kind"], d["occurred_at"]
        d = clean_value(d, secrets)
        meltano = d.get("meltano")
        if isinstance(meltano, dict) and isinstance(meltano.get("log_tail"), list):
            meltano["log_tail"] = [
                cap(x, LINE_MAX) if isinstance(x, str) else x for x in meltano["log_tail"][-LOG_TAIL_MAX:]
            ]
        dbt = d.get("dbt")
        for f in (dbt.get("failures") or []) if isinstance(dbt, dict) else []:
            if isinstance(f, dict) and isinstance(f.get("message"), str):
                f["message"] = cap(f["message"], LINE_MAX)
        return Alert(kind=kind, occurred_at=occurred_at, **d)
    except Exception:  # noqa: BLE001 - a malformed detail must not lose the alert: keep the essentials
        return Alert(
            kind=kind if kind in KINDS else "task_failed",
            dag_id=clean_value(str(alert.dag_id), secrets),
            task_id=clean_value(str(alert.task_id), secrets) if alert.task_id is not None else None,
            run_id=clean_value(str(alert.run_id), secrets) if alert.run_id is not None else None,
            try_number=alert.try_number if isinstance(alert.try_number, int) else None,
            max_tries=alert.max_tries if isinstance(alert.max_tries, int) else None,
            error=clean_value(str(alert.error), secrets),
            dag_tags=[t for t in clean_value(list(alert.dag_tags or []), secrets) if isinstance(t, str)],
            occurred_at=occurred_at,
        )
