"""Render an Alert as an e-mail (text and HTML parts, HTML-escaped), and
`render_email_minimal`, a plain one that cannot fail.

E-mails are bounded whatever the alert holds: the error and the log tail at
`EMAIL_FIELD_MAX` characters, any one line at `EMAIL_LINE_MAX`, at most `EMAIL_LIST_MAX` dbt
failures, and the whole text part at `EMAIL_TEXT_MAX` (HTML: `EMAIL_HTML_MAX`); what is cut
ends in a visible "… (truncated)" marker.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..events import Alert
from .lineage import email_parts
from .text import (
    LOG_TAIL_LINES,
    MARKER,
    first_line,
    format_duration,
    minimal_lines,
    recovered_sentence,
    title,
    truncate,
    truncate_head,
    try_label,
)

# e-mail bounds: a field (the error, the log tail), any one line, list lengths, the whole body
EMAIL_FIELD_MAX = 20_000
EMAIL_LINE_MAX = 2_000
EMAIL_LIST_MAX = 200
EMAIL_HISTORY_MAX = 20
EMAIL_TEXT_MAX = 100_000
EMAIL_HTML_MAX = 250_000


@dataclass
class EmailMessageParts:
    subject: str
    text: str
    html: str


class _Body:
    """The text and HTML parts of an e-mail, within a size budget: a section that does not fit
    is left out, and one "truncated" marker says so at the end."""

    def __init__(self, text_max: int, html_max: int):
        self.text: list[str] = []
        self.html: list[str] = []
        self.room = [text_max, html_max]
        self.full = False

    def add(self, text: list[str], html: str = "", *, force: bool = False) -> bool:
        size = [sum(len(t) + 1 for t in text), len(html) + 1 if html else 0]
        if not force and (self.full or size[0] > self.room[0] or size[1] > self.room[1]):
            self.full = True
            return False
        self.text += text
        if html:
            self.html.append(html)
        self.room = [self.room[0] - size[0], self.room[1] - size[1]]
        return True

    def parts(self, subject: str) -> EmailMessageParts:
        text, html_parts = list(self.text), list(self.html)
        if self.full:
            text += ["", f"{MARKER}: the rest of this alert did not fit in an e-mail; see the log."]
            html_parts.append(
                f"<p><em>{html.escape(MARKER)}: the rest of this alert did not fit in an e-mail; see the log.</em></p>"
            )
        return EmailMessageParts(
            subject=subject,
            text="\n".join(text) + "\n",
            html="<html><body>" + "\n".join(html_parts) + "</body></html>",
        )


def render_email(alert: Alert, *, repeat_count: int = 1) -> EmailMessageParts:
    """The e-mail: bounded whatever the alert holds (each field, each line, the whole body;
    a visible "truncated" marker where something was cut)."""
    subject = " ".join(f"[Airflow] {title(alert)} (try {try_label(alert)})".split())  # no CR/LF
    body = _Body(EMAIL_TEXT_MAX, EMAIL_HTML_MAX)
    for section in _SECTIONS:
        section(body, alert)
    if repeat_count > 1:
        body.add(["", f"Occurrences in the suppression window: {repeat_count}"])
    return body.parts(truncate(subject, 200))


def _line(value: object) -> str:
    return truncate(str(value), EMAIL_LINE_MAX)


def _summary(body: _Body, alert: Alert) -> None:
    rows = [
        ("DAG", alert.dag_id),
        ("Task", alert.task_id or "-"),
        ("Run", alert.run_id or "-"),
        ("Try", try_label(alert)),
        ("Duration", format_duration(alert.duration_s)),
        ("Occurred at", alert.occurred_at.isoformat(timespec="seconds")),
    ]
    body.add(
        [_line(title(alert)), ""] + [f"{k}: {_line(v)}" for k, v in rows],
        f"<h2>{html.escape(_line(title(alert)))}</h2>\n<table>\n"
        + "\n".join(f"<tr><th align='left'>{k}</th><td>{html.escape(_line(v))}</td></tr>" for k, v in rows)
        + "\n</table>",
    )
    if alert.log_url:
        link = ""
        if re.match(r"https?://", alert.log_url) and len(alert.log_url) <= EMAIL_LINE_MAX:
            link = f'<p><a href="{html.escape(alert.log_url, quote=True)}">View log</a></p>'
        body.add([f"Log: {_line(alert.log_url)}"], link)
    if alert.error:
        err = truncate(alert.error, EMAIL_FIELD_MAX)
        body.add(["", "Error:", err], f"<h3>Error</h3><pre>{html.escape(err)}</pre>")


def _dbt_failures(body: _Body, alert: Alert) -> None:
    """The failed dbt nodes while they fit, and a count of the rest (those the outbox left out too)."""
    if not alert.dbt or not alert.dbt.failures:
        return
    tag = f" (tag {_line(alert.dbt.tag)})" if alert.dbt.tag else ""
    body.add(["", f"Failed dbt models/tests{tag}:"], f"<h3>Failed dbt models/tests{html.escape(tag)}</h3><ul>")
    shown = 0
    for f in alert.dbt.failures[:EMAIL_LIST_MAX]:
        owners = _line(", ".join(f.owners) or "no owner")
        message = _line(first_line(f.message))
        if not body.add(
            [f"- {_line(f.resource_type)} {_line(f.name)} (owners: {owners}) {message}".rstrip()],
            f"<li>{html.escape(_line(f.resource_type))} <code>{html.escape(_line(f.name))}</code> "
            f"(owners: {html.escape(owners)}) {html.escape(message)}</li>",
        ):
            break
        shown += 1
    hidden = alert.dbt.total - shown
    more = f"{MARKER}: {hidden} more dbt failures not shown" if hidden else ""
    body.add([more] if more else [], (f"<li>{html.escape(more)}</li>" if more else "") + "</ul>", force=True)


def _lineage(body: _Body, alert: Alert) -> None:
    lineage_text, lineage_html = email_parts(alert, _line)
    if lineage_text:
        body.add(lineage_text, lineage_html)


def _meltano(body: _Body, alert: Alert) -> None:
    if not alert.meltano:
        return
    m = alert.meltano
    body.add(
        ["", f"Meltano extractor: {_line(m.extractor)}", f"State ID: {_line(m.state_id or '-')}"],
        f"<h3>Meltano</h3><p>Extractor: {html.escape(_line(m.extractor))}<br>"
        f"State ID: {html.escape(_line(m.state_id or '-'))}</p>",
    )
    if m.log_tail:
        tail = truncate_head("\n".join(_line(x) for x in list(m.log_tail)[-LOG_TAIL_LINES:]), EMAIL_FIELD_MAX)
        body.add(["Log tail:", tail], f"<pre>{html.escape(tail)}</pre>")


def _lateness(body: _Body, alert: Alert) -> None:
    if alert.kind != "late":
        return
    missing = [_line(a) for a in (alert.extra.get("missing_assets") or [])][:EMAIL_LIST_MAX]
    expected = _line(alert.extra.get("expected_by", "-"))
    body.add(
        ["", f"Expected by: {expected}", "Upstream Assets not arrived: " + (", ".join(missing) or "-")],
        f"<p>Expected by {html.escape(expected)}</p><ul>"
        + "".join(f"<li><code>{html.escape(a)}</code></li>" for a in missing)
        + "</ul>",
    )


def _recovery(body: _Body, alert: Alert) -> None:
    if alert.kind == "recovered":
        sentence = recovered_sentence(alert)  # what the Slack thread reply says
        body.add(["", sentence], f"<p>{html.escape(sentence)}</p>")


def _history(body: _Body, alert: Alert) -> None:
    history = (alert.extra.get("history") or [])[-EMAIL_HISTORY_MAX:]
    if not history:
        return
    lines = [
        (t.get("try_number"), str(t.get("occurred_at"))[:19], _line(first_line(t.get("error", "")))) for t in history
    ]
    body.add(
        ["", "Earlier tries:"] + [f"- try {n} at {at}: {error}" for n, at, error in lines],
        "<h3>Earlier tries</h3><ul>"
        + "".join(f"<li>try {html.escape(str(n))}: {html.escape(error)}</li>" for n, _, error in lines)
        + "</ul>",
    )


_SECTIONS: list[Callable[[_Body, Alert], None]] = [
    _summary,
    _dbt_failures,
    _lineage,
    _meltano,
    _lateness,
    _recovery,
    _history,
]


def render_email_minimal(alert: Alert, *, repeat_count: int = 1) -> EmailMessageParts:
    """The e-mail counterpart of `render_minimal`."""
    body = minimal_lines(alert, limit=EMAIL_FIELD_MAX)
    if repeat_count > 1:
        body += f"\nOccurrences in the suppression window: {repeat_count}"
    first = body.split("\n", 1)[0]
    return EmailMessageParts(
        subject=truncate(" ".join(f"[Airflow] {first}".split()), 200),
        text=body + "\n",
        html=f"<html><body><pre>{html.escape(body)}</pre></body></html>",
    )
