"""Render an Alert as a Slack Block Kit message and as an e-mail.

Everything that comes from outside (errors, log lines, model names, ids) is escaped:
for Slack mrkdwn `&`, `<`, `>` become entities (so `<!channel>` or `<http://x|y>` cannot
ping or forge a link) and `@channel`/`@here`/`@everyone` get a zero-width joiner; for
e-mail it is HTML-escaped. Slack limits are enforced with a visible marker.

E-mails are bounded too, whatever the alert holds: the error and the log tail at
`EMAIL_FIELD_MAX` characters, any one line at `EMAIL_LINE_MAX`, at most `EMAIL_LIST_MAX` dbt
failures, and the whole text part at `EMAIL_TEXT_MAX` (HTML: `EMAIL_HTML_MAX`); what is cut
ends in a visible "… (truncated)" marker. `render_minimal` / `render_email_minimal` are plain
renderings that cannot fail: the notifier sends them when the full renderer raises.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import Alert
from .render_lineage import email_parts, reply_suffix, slack_block

SECTION_MAX = 3000
HEADER_MAX = 150
FIELD_MAX = 2000
BLOCKS_MAX = 50
TEXT_MAX = 3000
MARKER = "… (truncated)"
LOG_TAIL_LINES = 30
# e-mail bounds: a field (the error, the log tail), any one line, list lengths, the whole body
EMAIL_FIELD_MAX = 20_000
EMAIL_LINE_MAX = 2_000
EMAIL_LIST_MAX = 200
EMAIL_HISTORY_MAX = 20
EMAIL_TEXT_MAX = 100_000
EMAIL_HTML_MAX = 250_000

TITLES = {
    "task_failed": ("🔴", "Task failed"),
    "dag_failed": ("🔴", "DAG failed"),
    "retry": ("🟠", "Task up for retry"),
    "recovered": ("✅", "Recovered"),
    "late": ("⏰", "Late"),
}

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_ZW = "\u2060"  # word joiner: displays nothing, breaks the @-keyword


def escape_mrkdwn(text: Any) -> str:
    s = str(text if text is not None else "")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@" + _ZW + m.group(1), s)


def plain(text: Any) -> str:
    """For plain_text objects (the header): not parsed for mentions by Slack, but angle
    brackets become look-alikes and broadcast keywords are broken anyway."""
    s = str(text if text is not None else "").replace("<", "‹").replace(">", "›")
    return _BROADCAST.sub(lambda m: "@" + _ZW + m.group(1), s)


def _code(text: str) -> str:
    """Escaped text safe inside a ``` block (no closing fence inside)."""
    return escape_mrkdwn(text).replace("```", "`" + _ZW + "``")


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


def _code_section(title: str, body: str, keep_end: bool = False) -> dict[str, Any]:
    prefix, fence_open, fence_close = f"{title}\n", "```\n", "\n```"
    room = SECTION_MAX - len(prefix) - len(fence_open) - len(fence_close)
    body = _code(body) or " "
    body = truncate_head(body, room) if keep_end else truncate(body, room)
    return {"type": "section", "text": {"type": "mrkdwn", "text": prefix + fence_open + body + fence_close}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m}m {sec}s" if h else f"{m}m {sec}s"


def _try(alert: Alert) -> str:
    if alert.try_number is None:
        return "-"
    return f"{alert.try_number}/{alert.max_tries}" if alert.max_tries else str(alert.try_number)


def title(alert: Alert) -> str:
    emoji, label = TITLES[alert.kind]
    where = alert.dag_id + (f".{alert.task_id}" if alert.task_id else "")
    return f"{emoji} {label}: {where}"


def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def owner_mention(owner: str, slack_id: Callable[[str], str | None]) -> str:
    uid = slack_id(owner) if owner else None
    if uid and re.fullmatch(r"[UW][A-Z0-9]+", uid):
        return f"<@{uid}>"
    return escape_mrkdwn(owner)


@dataclass
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def render_slack(
    alert: Alert, slack_id: Callable[[str], str | None] = lambda _o: None, *, resolved: Alert | None = None
) -> SlackMessage:
    """The top-level message. With `resolved` (the recovery), the same message marked resolved:
    what chat.update writes over the failure once the next run succeeds."""
    heading = title(alert) if resolved is None else "✅ Resolved: " + title(alert).split(" ", 1)[1]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(plain(heading), HEADER_MAX), "emoji": True}},
    ]
    if resolved is not None:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": escape_mrkdwn(
                            f"Resolved at {resolved.occurred_at.isoformat(timespec='seconds')} "
                            f"by run {resolved.run_id or '-'}"
                        ),
                    }
                ],
            }
        )
    fields = [
        ("DAG", alert.dag_id),
        ("Task", alert.task_id or "-"),
        ("Run", alert.run_id or "-"),
        ("Try", _try(alert)),
        ("Duration", format_duration(alert.duration_s)),
    ]
    blocks.append(
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": truncate(f"*{k}*\n{escape_mrkdwn(v)}", FIELD_MAX)} for k, v in fields
            ],
        }
    )
    if alert.log_url and re.match(r"https?://", alert.log_url) and len(alert.log_url) <= 3000:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "View log"},
                        "url": alert.log_url,
                        "action_id": "view_log",
                    }
                ],
            }
        )
    if alert.error:
        blocks.append(_code_section("*Error*", alert.error))
    missing = alert.extra.get("missing_assets")
    if alert.kind == "late":
        when = alert.extra.get("expected_by", "-")
        text = f"*Expected by* {escape_mrkdwn(when)} (cycle {escape_mrkdwn(alert.extra.get('cycle', '-'))})"
        if missing:
            text += "\n*Upstream Assets not arrived:*\n" + "\n".join(f"• `{escape_mrkdwn(a)}`" for a in missing)
        blocks.append(_section(text))
    history = alert.extra.get("history") or []
    if history:
        lines = [
            f"• try {h.get('try_number')} at {escape_mrkdwn(str(h.get('occurred_at', ''))[:19])}: "
            f"{truncate(escape_mrkdwn(first_line(h.get('error', ''))), 300)}"
            for h in history[-10:]
        ]
        blocks.append(_section("*Earlier tries*\n" + "\n".join(lines)))

    tail: list[dict[str, Any]] = []  # blocks that must survive the 50-block trim
    lineage = slack_block(
        alert, escape_mrkdwn, lambda o: owner_mention(o, slack_id), lambda t: truncate(t, SECTION_MAX)
    )
    if lineage is not None:  # a failure's blast radius, a recovery's late DAGs
        tail.append(lineage)
    if alert.meltano:
        m = alert.meltano
        tail.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": truncate(f"*Extractor*\n{escape_mrkdwn(m.extractor)}", FIELD_MAX)},
                    {"type": "mrkdwn", "text": truncate(f"*State ID*\n{escape_mrkdwn(m.state_id or '-')}", FIELD_MAX)},
                ],
            }
        )
        if m.log_tail:
            lines = list(m.log_tail)[-LOG_TAIL_LINES:]
            tail.append(_code_section(f"*Meltano log (last {len(lines)} lines)*", "\n".join(lines), keep_end=True))
    tail.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": escape_mrkdwn(
                        f"{alert.kind} · {alert.occurred_at.isoformat(timespec='seconds')} "
                        f"· sig {alert.signature()[:12]}"
                    ),
                }
            ],
        }
    )

    dbt_blocks: list[dict[str, Any]] = []
    if alert.dbt and alert.dbt.failures:
        tag = f" (tag `{escape_mrkdwn(alert.dbt.tag)}`)" if alert.dbt.tag else ""
        dbt_blocks.append(_section(f"*Failed dbt models/tests: {len(alert.dbt.failures)}*{tag}"))
        for f in alert.dbt.failures:
            owners = ", ".join(owner_mention(o, slack_id) for o in f.owners) or "no owner"
            text = f"• {escape_mrkdwn(f.resource_type)} `{escape_mrkdwn(f.name)}` — owners: {owners}"
            if f.message:
                text += "\n" + truncate(escape_mrkdwn(first_line(f.message)), 500)
            dbt_blocks.append(_section(text))
    room = BLOCKS_MAX - len(blocks) - len(tail)
    if len(dbt_blocks) > room:
        shown = dbt_blocks[: room - 1]
        hidden = len(dbt_blocks) - len(shown)
        dbt_blocks = shown + [
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{MARKER}: {hidden} more dbt failures not shown"}],
            }
        ]
    blocks = blocks + dbt_blocks + tail

    text = heading
    if alert.task_id or alert.run_id:
        text += f" (run {alert.run_id or '-'}" + (f", try {_try(alert)})" if alert.try_number is not None else ")")
    err = first_line(alert.error)
    text = escape_mrkdwn(text) + (f": {escape_mrkdwn(err)}" if err else "")
    return SlackMessage(text=truncate(text, TEXT_MAX), blocks=blocks)


def render_retry_reply(alert: Alert) -> SlackMessage:
    """A failed try that will be retried, as a quiet reply in the open incident's thread."""
    text = f"🟠 Try {_try(alert)} failed, will retry (run {alert.run_id or '-'})"
    err = first_line(alert.error)
    return SlackMessage(
        text=truncate(escape_mrkdwn(text) + (f": {escape_mrkdwn(err)}" if err else ""), TEXT_MAX), blocks=[]
    )


def render_recovered(alert: Alert) -> SlackMessage:
    """The next success after a failure, posted in the failure's thread."""
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
    text += reply_suffix(alert)  # the downstream DAGs it held back, running late now
    if alert.log_url and re.fullmatch(r"https?://[^\s<>|]+", alert.log_url):
        text = escape_mrkdwn(text) + f" · <{alert.log_url}|log>"
    else:
        text = escape_mrkdwn(text)
    return SlackMessage(text=truncate(text, TEXT_MAX), blocks=[])


def render_storm(info: dict[str, Any]) -> SlackMessage:
    text = (
        f"🌩️ Failure storm on route {info.get('route')}: more than {info.get('threshold')} failures within "
        f"{int(float(info.get('window_s', 0)) // 60)} min since {info.get('started_at')}. "
        f"Further failures are posted in this thread."
    )
    return SlackMessage(text=escape_mrkdwn(text), blocks=[])


def render_repeat(count: int, since: str) -> SlackMessage:
    text = f"Seen again: {count} occurrences since {since}"
    return SlackMessage(text=escape_mrkdwn(text), blocks=[])


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
    subject = " ".join(f"[Airflow] {title(alert)} (try {_try(alert)})".split())  # no CR/LF
    subject = truncate(subject, 200)
    line = lambda t: truncate(str(t), EMAIL_LINE_MAX)  # noqa: E731
    rows = [
        ("DAG", alert.dag_id),
        ("Task", alert.task_id or "-"),
        ("Run", alert.run_id or "-"),
        ("Try", _try(alert)),
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


def render_minimal(alert: Alert) -> SlackMessage:
    """A plain-text rendering that cannot fail: what is sent when `render_slack` raised on an
    alert (a malformed detail), so the alert still reaches its channel."""
    text = escape_mrkdwn(_minimal_lines(alert))
    return SlackMessage(text=truncate(text, TEXT_MAX), blocks=[])


def render_email_minimal(alert: Alert, *, repeat_count: int = 1) -> EmailMessageParts:
    """The e-mail counterpart of `render_minimal`."""
    body = _minimal_lines(alert, limit=EMAIL_FIELD_MAX)
    if repeat_count > 1:
        body += f"\nOccurrences in the suppression window: {repeat_count}"
    first = body.split("\n", 1)[0]
    return EmailMessageParts(
        subject=truncate(" ".join(f"[Airflow] {first}".split()), 200),
        text=body + "\n",
        html=f"<html><body><pre>{html.escape(body)}</pre></body></html>",
    )


def _minimal_lines(alert: Alert, limit: int = 2000) -> str:
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
