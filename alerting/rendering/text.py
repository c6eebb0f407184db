"""Text shared by the Slack and the e-mail renderings, unescaped (each medium escapes it its own
way): titles, the recovery sentence, truncation with a visible marker (never cutting an HTML
entity in half), durations, and the minimal plain rendering that cannot fail (`minimal_lines`:
what is sent when a full renderer raises).
"""

from __future__ import annotations

from typing import Any

from ..events import Alert
from .lineage import reply_suffix

MARKER = "… (truncated)"
LOG_TAIL_LINES = 30

TITLES = {
    "task_failed": ("🔴", "Task failed"),
    "dag_failed": ("🔴", "DAG failed"),
    "retry": ("🟠", "Task up for retry"),
    "recovered": ("✅", "Recovered"),
    "late": ("⏰", "Late"),
    "rows_mismatch": ("⚠️", "Rows not loaded as extracted"),
}


def truncate(text: str, limit: int, marker: str = MARKER) -> str:
    """At most `limit` characters; when cut, ends with the marker. Never cuts an
    HTML entity (&amp; &lt; &gt;) in half."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(marker))]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp < 6:
        cut = cut[:amp]
    return cut + marker


def truncate_head(text: str, limit: int, marker: str = MARKER) -> str:
    """Keeps the end (the latest log lines), marker first."""
    if len(text) <= limit:
        return text
    keep = text[len(text) - max(0, limit - len(marker) - 1) :]
    semi = keep.find(";")
    if 0 <= semi < 5 and "&" not in keep[:semi]:
        keep = keep[semi + 1 :]
    return marker + "\n" + keep


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m}m {sec}s" if h else f"{m}m {sec}s"


def try_label(alert: Alert) -> str:
    if alert.try_number is None:
        return "-"
    return f"{alert.try_number}/{alert.max_tries}" if alert.max_tries else str(alert.try_number)


def title(alert: Alert) -> str:
    emoji, label = TITLES[alert.kind]
    where = alert.dag_id + (f".{alert.task_id}" if alert.task_id else "")
    return f"{emoji} {label}: {where}"


def recovered_sentence(alert: Alert) -> str:
    """The next success after a failure, in words: what the thread reply says and the e-mail quotes."""
    since = alert.extra.get("failing_since")
    n = alert.extra.get("failures")
    text = f"✅ Recovered: {alert.dag_id}" + (f".{alert.task_id}" if alert.task_id else "")
    text += f" succeeded in run {alert.run_id or '-'}"
    if alert.try_number:
        text += f" (try {alert.try_number})"
    if since:
        text += f"; failing since {str(since)[:19]}"
    if n:
        text += f", {n} failure{'s' if n != 1 else ''}"
    return text + reply_suffix(alert)  # the downstream DAGs it held back, running late now


def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def minimal_lines(alert: Alert, limit: int = 2000) -> str:
    def s(value: Any) -> str:
        try:
            return str(value)
        except Exception:  # noqa: BLE001
            return "?"

    emoji, label = TITLES.get(s(getattr(alert, "kind", "")), ("🔴", "Alert"))
    task = getattr(alert, "task_id", None)
    where = s(getattr(alert, "dag_id", "?")) + (f".{s(task)}" if task else "")
    lines = [
        f"{emoji} {label}: {where}",
        f"Run: {s(getattr(alert, 'run_id', None) or '-')}",
        f"Error: {truncate(s(getattr(alert, 'error', '') or '-'), limit)}",
        "(shown in a minimal form: the full alert could not be rendered; see the log)",
    ]
    return "\n".join(lines)
