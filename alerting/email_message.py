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
from dataclasses import dataclass

from .events import Alert
from .render_lineage import email_parts
from .render_text import (
    LOG_TAIL_LINES,
    MARKER,
    first_line,
    format_duration,
    minimal_lines,
    title,
    truncate,
    truncate_head,
    try_label,
)
from .slack_message import render_recovered

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
    subject = truncate(subject, 200)
    line = lambda t: truncate(str(t), EMAIL_LINE_MAX)  # noqa: E731
    rows = [
        ("DAG", alert.dag_id),
        ("Task", alert.task_id or "-"),
        ("Run", alert.run_id or "-"),
        ("Try", try_label(alert)),
        ("Duration", format_duration(alert.duration_s)),
        ("Occurred at", alert.occurred_at.isoformat(timespec="seconds")),
    ]
    body = _Body(EMAIL_TEXT_MAX, EMAIL_HTML_MAX)
    body.add(
        [line(title(alert)), ""] + [f"{k}: {line(v)}" for k, v in rows],
        f"<h2>{html.escape(line(title(alert)))}</h2>\n<table>\n"
        + "\n".join(f"<tr><th align='left'>{k}</th><td>{html.escape(line(v))}</td></tr>" for k, v in rows)
        + "\n</table>",
    )
    if alert.log_url:
        link = ""
        if re.match(r"https?://", alert.log_url) and len(alert.log_url) <= EMAIL_LINE_MAX:
            link = f'<p><a href="{html.escape(alert.log_url, quote=True)}">View log</a></p>'
        body.add([f"Log: {line(alert.log_url)}"], link)
    if alert.error:
        err = truncate(alert.error, EMAIL_FIELD_MAX)
        body.add(["", "Error:", err], f"<h3>Error</h3><pre>{html.escape(err)}</pre>")
    if alert.dbt and alert.dbt.failures:
        tag = f" (tag {line(alert.dbt.tag)})" if alert.dbt.tag else ""
        body.add(["", f"Failed dbt models/tests{tag}:"], f"<h3>Failed dbt models/tests{html.escape(tag)}</h3><ul>")
        shown = 0
        for f in alert.dbt.failures[:EMAIL_LIST_MAX]:
            owners = line(", ".join(f.owners) or "no owner")
            message = line(first_line(f.message))
            if not body.add(
                [f"- {line(f.resource_type)} {line(f.name)} (owners: {owners}) {message}".rstrip()],
                f"<li>{html.escape(line(f.resource_type))} <code>{html.escape(line(f.name))}</code> "
                f"(owners: {html.escape(owners)}) {html.escape(message)}</li>",
            ):
                break
            shown += 1
        hidden = len(alert.dbt.failures) - shown
        more = f"{MARKER}: {hidden} more dbt failures not shown" if hidden else ""
        body.add([more] if more else [], (f"<li>{html.escape(more)}</li>" if more else "") + "</ul>", force=True)
    lineage_text, lineage_html = email_parts(alert, line)
    if lineage_text:
        body.add(lineage_text, lineage_html)
    if alert.meltano:
        m = alert.meltano
        body.add(
            ["", f"Meltano extractor: {line(m.extractor)}", f"State ID: {line(m.state_id or '-')}"],
            f"<h3>Meltano</h3><p>Extractor: {html.escape(line(m.extractor))}<br>"
            f"State ID: {html.escape(line(m.state_id or '-'))}</p>",
        )
        if m.log_tail:
            lines = [line(x) for x in list(m.log_tail)[-LOG_TAIL_LINES:]]
            tail = truncate_head("\n".join(lines), EMAIL_FIELD_MAX)
            body.add(["Log tail:", tail], f"<pre>{html.escape(tail)}</pre>")
    if alert.kind == "late":
        missing = [line(a) for a in (alert.extra.get("missing_assets") or [])][:EMAIL_LIST_MAX]
        expected = line(alert.extra.get("expected_by", "-"))
        body.add(
            ["", f"Expected by: {expected}", "Upstream Assets not arrived: " + (", ".join(missing) or "-")],
            f"<p>Expected by {html.escape(expected)}</p><ul>"
            + "".join(f"<li><code>{html.escape(a)}</code></li>" for a in missing)
            + "</ul>",
        )
    if alert.kind == "recovered":
        recovered = html.unescape(render_recovered(Alert(**{**alert.to_dict(), "log_url": None})).text)
        body.add(["", recovered], f"<p>{html.escape(recovered)}</p>")
    history = (alert.extra.get("history") or [])[-EMAIL_HISTORY_MAX:]
    if history:
        body.add(
            ["", "Earlier tries:"]
            + [
                f"- try {t.get('try_number')} at {str(t.get('occurred_at'))[:19]}: "
                f"{line(first_line(t.get('error', '')))}"
                for t in history
            ],
            "<h3>Earlier tries</h3><ul>"
            + "".join(
                f"<li>try {html.escape(str(t.get('try_number')))}: "
                f"{html.escape(line(first_line(t.get('error', ''))))}</li>"
                for t in history
            )
            + "</ul>",
        )
    if repeat_count > 1:
        body.add(["", f"Occurrences in the suppression window: {repeat_count}"])
    return body.parts(subject)


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
