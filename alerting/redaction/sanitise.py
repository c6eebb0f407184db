"""Alert content is made safe once, when `Notifier.notify()` receives it, before anything is
rendered, sent or stored in the outbox:

- secrets are masked in every text field (error, Meltano log tail, dbt messages, extra, ids):
  what is known to be secret (registry.py: every resolved credential, the environment's secrets,
  read at that moment, not at import), whatever is shaped like a secret (patterns.py:
  detect-secrets, Airflow's masker, our own shapes), and every string under a field of `extra`
  named like a secret (`{"password": …}`);
- a lone surrogate (text decoded with `surrogateescape`, a broken UTF-16 pair) becomes U+FFFD,
  so the outbox (SQLite, PostgreSQL), json and MIME can all encode it; a NUL becomes the
  four characters `\\x00` (PostgreSQL text cannot hold NUL, and it must not go raw into MIME);
- sizes are bounded, so one alert is at most about `PAYLOAD_MAX` characters in the outbox
  whatever the task attached: each text field at `FIELD_MAX` characters (a visible marker where
  cut), the Meltano log tail at its last `LOG_TAIL_MAX` lines of `LINE_MAX` characters, the
  first `DBT_FAILURES_MAX` dbt failures (`dbt.omitted` counts the rest, and the renderers say
  so), each message at `MESSAGE_MAX`; in `extra`, `ITEMS_MAX` items per list or mapping and
  `DEPTH_MAX` levels (a marker says what was left out); past `PAYLOAD_MAX` in all, strings are
  cut to the marker and containers stop;
- `extra` becomes JSON-safe (what is not a JSON value becomes its str), as the outbox stores it.

`clean_text` (surrogates, NUL) is also applied by the senders to whatever they send.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime
from typing import Any

from ..events import KINDS, Alert, DbtContext
from .masking import masked_field, redact, redact_all
from .registry import known_secrets

FIELD_MAX = 64_000  # characters of any one text field of an alert (as stored), marker included
LOG_TAIL_MAX = 100  # Meltano log lines kept (the renderers show the last 30)...
LINE_MAX = 4_000  # ...and characters of each
DBT_FAILURES_MAX = 200  # dbt failures kept (the e-mail lists up to 200, Slack fewer)...
MESSAGE_MAX = 2_000  # ...and characters of each one's message (both show its first line)
ITEMS_MAX = 200  # items of any one list or mapping in `extra`
HISTORY_MAX = 20  # earlier tries listed in a failure (the e-mail shows 20, Slack 10)
DEPTH_MAX = 10  # nesting in `extra`
PAYLOAD_MAX = 1_000_000  # characters of the whole alert, about: what one outbox row stores
ITEM_COST = 8  # what a value costs the budget besides its text (the JSON around it)
SECRET_REACH = 1024  # characters read beyond a cut, so a secret across it is still found and masked
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
    return text if len(text) <= limit else text[: max(0, limit - len(MARKER))] + MARKER


class _Cleaner:
    """One walk through an alert's values with one size budget (`PAYLOAD_MAX`)."""

    def __init__(self, secrets: list[str], budget: int = PAYLOAD_MAX):
        self.secrets, self.left = secrets, budget

    def value(self, value: Any, limit: int = FIELD_MAX, depth: int = 0) -> Any:
        """A JSON-safe copy with every string cleaned, redacted and capped."""
        self.left -= ITEM_COST
        if isinstance(value, str):
            return self.text(value, limit)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, (dict, list, tuple, set, frozenset)) and depth >= DEPTH_MAX:
            return f"{MARKER}: nested more than {DEPTH_MAX} levels deep"
        if isinstance(value, dict):
            return self.mapping(value, limit, depth)
        if isinstance(value, (list, tuple, set, frozenset)):
            return self.sequence(list(value) if not isinstance(value, list) else value, limit, depth)
        return self.text(str(value), limit)

    def text(self, value: str, limit: int) -> str:
        room = max(0, min(limit, self.left))
        # cut beyond the cap first (bounded work on a 100 MB line), redact, then cap: a secret can
        # be cut in half only beyond what is kept (SECRET_REACH: no credential is longer)
        out = cap(redact(clean_text(value[: room + SECRET_REACH]), self.secrets), max(room, len(MARKER)))
        self.left -= len(out)
        return out

    def mapping(self, value: dict[Any, Any], limit: int, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= ITEMS_MAX or self.left <= 0:
                out[MARKER] = f"{len(value) - i} more keys left out"
                break
            key = self.text(str(k), 200)
            out[key] = self.value(redact_all(v) if masked_field(k) else v, limit, depth + 1)
        return out

    def sequence(self, value: list[Any], limit: int, depth: int) -> list[Any]:
        out = []
        for i, v in enumerate(value):
            if i >= ITEMS_MAX or self.left <= 0:
                out.append(f"{MARKER}: {len(value) - i} more items left out")
                break
            out.append(self.value(v, limit, depth + 1))
        return out


def bounded_history(tries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The earlier tries an alert lists (read back from the outbox): the last `HISTORY_MAX`, each
    error cut to `MESSAGE_MAX` (the renderers show its first line)."""
    return [
        {**t, "error": cap(t["error"], MESSAGE_MAX)} if isinstance(t.get("error"), str) else t
        for t in tries[-HISTORY_MAX:]
    ]


def _trimmed(alert: Alert) -> Alert:
    """The alert with only what is kept of its long lists, before anything is copied: the first
    dbt failures (the rest counted in `omitted`), the last lines of the Meltano log."""
    changes: dict[str, Any] = {}
    dbt = alert.dbt
    if isinstance(dbt, DbtContext) and isinstance(dbt.failures, list) and len(dbt.failures) > DBT_FAILURES_MAX:
        omitted = len(dbt.failures) - DBT_FAILURES_MAX + (dbt.omitted if isinstance(dbt.omitted, int) else 0)
        changes["dbt"] = dataclasses.replace(dbt, failures=dbt.failures[:DBT_FAILURES_MAX], omitted=omitted)
    meltano = alert.meltano
    if meltano is not None and isinstance(meltano.log_tail, list) and len(meltano.log_tail) > LOG_TAIL_MAX:
        changes["meltano"] = dataclasses.replace(meltano, log_tail=meltano.log_tail[-LOG_TAIL_MAX:])
    return dataclasses.replace(alert, **changes) if changes else alert


def _as_dict(alert: Alert, cleaner: _Cleaner) -> dict[str, Any]:
    """The alert's fields cleaned, in the order that spends the budget on what matters most:
    ids and the error, then dbt, Meltano, and `extra` last."""
    d: dict[str, Any] = {}
    for f in dataclasses.fields(alert):
        if f.name in ("kind", "occurred_at"):
            continue
        value = getattr(alert, f.name)
        if f.name == "dbt" and isinstance(value, DbtContext):
            failures = [cleaner.value(dataclasses.asdict(x), MESSAGE_MAX) for x in value.failures]
            d["dbt"] = {"failures": failures, "tag": cleaner.value(value.tag), "omitted": value.omitted}
        elif f.name == "meltano" and value is not None:
            lines = [cleaner.value(x, LINE_MAX) for x in value.log_tail]
            d["meltano"] = {**cleaner.value(dataclasses.asdict(value) | {"log_tail": []}), "log_tail": lines}
        else:
            d[f.name] = cleaner.value(value)
    return d


def sanitise_alert(alert: Alert) -> Alert:
    """The alert as it may be rendered, sent and stored (see the module doc)."""
    secrets = known_secrets()
    kind, occurred_at = alert.kind, alert.occurred_at
    try:
        return Alert(kind=kind, occurred_at=occurred_at, **_as_dict(_trimmed(alert), _Cleaner(secrets)))
    except Exception:  # noqa: BLE001 - a malformed detail must not lose the alert: keep the essentials
        cleaner = _Cleaner(secrets)
        return Alert(
            kind=kind if kind in KINDS else "task_failed",
            dag_id=cleaner.value(str(alert.dag_id)),
            task_id=cleaner.value(str(alert.task_id)) if alert.task_id is not None else None,
            run_id=cleaner.value(str(alert.run_id)) if alert.run_id is not None else None,
            try_number=alert.try_number if isinstance(alert.try_number, int) else None,
            max_tries=alert.max_tries if isinstance(alert.max_tries, int) else None,
            error=cleaner.value(str(alert.error)),
            dag_tags=[t for t in cleaner.value(list(alert.dag_tags or [])) if isinstance(t, str)],
            occurred_at=occurred_at,
        )
