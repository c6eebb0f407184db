"""Render an Alert as a Slack Block Kit message: the top-level message (also its "resolved"
rewrite), the replies in its thread (a retry, the recovery, "seen again"), a storm's header,
and `render_minimal`, a plain one that cannot fail.

Everything that comes from outside (errors, log lines, model names, ids) is escaped for
mrkdwn: `&`, `<`, `>` become entities (so `<!channel>` or `<http://x|y>` cannot ping or forge
a link) and `@channel`/`@here`/`@everyone` get a zero-width joiner. Slack limits are enforced
with a visible marker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..events import Alert
from .lineage import slack_block
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

SECTION_MAX = 3000
HEADER_MAX = 150
FIELD_MAX = 2000
BLOCKS_MAX = 50
TEXT_MAX = 3000

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


def _code_section(title: str, body: str, keep_end: bool = False) -> dict[str, Any]:
    prefix, fence_open, fence_close = f"{title}\n", "```\n", "\n```"
    room = SECTION_MAX - len(prefix) - len(fence_open) - len(fence_close)
    body = _code(body) or " "
    body = truncate_head(body, room) if keep_end else truncate(body, room)
    return {"type": "section", "text": {"type": "mrkdwn", "text": prefix + fence_open + body + fence_close}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX)}}


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
    what chat.update writes over the failure once the next run succeeds. Blocks in order: the
    head (title, resolution, fields, log button), the detail (error, lateness, earlier tries), the
    dbt failures (cut to fit Slack's 50 blocks) and the tail (lineage, Meltano, signature)."""
    heading = title(alert) if resolved is None else "✅ Resolved: " + title(alert).split(" ", 1)[1]
    head = _head_blocks(alert, heading, resolved) + _detail_blocks(alert)
    tail = _tail_blocks(alert, slack_id)  # blocks that must survive the 50-block trim
    blocks = head + _dbt_blocks(alert, slack_id, BLOCKS_MAX - len(head) - len(tail)) + tail
    return SlackMessage(text=_fallback_text(alert, heading), blocks=blocks)


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _head_blocks(alert: Alert, heading: str, resolved: Alert | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(plain(heading), HEADER_MAX), "emoji": True}},
    ]
    if resolved is not None:
        when = resolved.occurred_at.isoformat(timespec="seconds")
        blocks.append(_context(escape_mrkdwn(f"Resolved at {when} by run {resolved.run_id or '-'}")))
    fields = [
        ("DAG", alert.dag_id),
        ("Task", alert.task_id or "-"),
        ("Run", alert.run_id or "-"),
        ("Try", try_label(alert)),
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
        button = {"type": "plain_text", "text": "View log"}
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "text": button, "url": alert.log_url, "action_id": "view_log"}],
            }
        )
    return blocks


def _detail_blocks(alert: Alert) -> list[dict[str, Any]]:
    """The error, a late DAG's deadline and missing Assets, the earlier tries."""
    blocks: list[dict[str, Any]] = []
    if alert.error:
        blocks.append(_code_section("*Error*", alert.error))
    if alert.kind == "late":
        when = alert.extra.get("expected_by", "-")
        text = f"*Expected by* {escape_mrkdwn(when)} (cycle {escape_mrkdwn(alert.extra.get('cycle', '-'))})"
        missing = alert.extra.get("missing_assets")
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
    return blocks


def _tail_blocks(alert: Alert, slack_id: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """A failure's blast radius (a recovery's late DAGs), the Meltano detail, the signature line."""
    blocks: list[dict[str, Any]] = []
    lineage = slack_block(
        alert, escape_mrkdwn, lambda o: owner_mention(o, slack_id), lambda t: truncate(t, SECTION_MAX)
    )
    if lineage is not None:
        blocks.append(lineage)
    if alert.meltano:
        m = alert.meltano
        fields = [("Extractor", m.extractor), ("State ID", m.state_id or "-")]
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": truncate(f"*{k}*\n{escape_mrkdwn(v)}", FIELD_MAX)} for k, v in fields
                ],
            }
        )
        if m.log_tail:
            lines = list(m.log_tail)[-LOG_TAIL_LINES:]
            blocks.append(_code_section(f"*Meltano log (last {len(lines)} lines)*", "\n".join(lines), keep_end=True))
    when = alert.occurred_at.isoformat(timespec="seconds")
    blocks.append(_context(escape_mrkdwn(f"{alert.kind} · {when} · sig {alert.signature()[:12]}")))
    return blocks


def _dbt_blocks(alert: Alert, slack_id: Callable[[str], str | None], room: int) -> list[dict[str, Any]]:
    """At most `room` blocks: the count of failed dbt nodes (the true count, those the outbox left
    out included), one section per failure while they fit, and a line counting the rest."""
    if not alert.dbt or not alert.dbt.failures:
        return []
    tag = f" (tag `{escape_mrkdwn(alert.dbt.tag)}`)" if alert.dbt.tag else ""
    failures, hidden = alert.dbt.failures, alert.dbt.omitted
    if 1 + len(failures) + (1 if hidden else 0) > room:
        keep = max(0, room - 2)  # room for the count and the "more" line
        failures, hidden = failures[:keep], hidden + len(failures) - keep
    blocks = [_section(f"*Failed dbt models/tests: {alert.dbt.total}*{tag}")]
    for f in failures:
        owners = ", ".join(owner_mention(o, slack_id) for o in f.owners) or "no owner"
        text = f"• {escape_mrkdwn(f.resource_type)} `{escape_mrkdwn(f.name)}` — owners: {owners}"
        if f.message:
            text += "\n" + truncate(escape_mrkdwn(first_line(f.message)), 500)
        blocks.append(_section(text))
    if hidden:
        blocks.append(_context(f"{MARKER}: {hidden} more dbt failures not shown"))
    return blocks


def _fallback_text(alert: Alert, heading: str) -> str:
    """The notification text (and what clients without blocks show): title, run, try, error."""
    text = heading
    if alert.task_id or alert.run_id:
        text += f" (run {alert.run_id or '-'}" + (f", try {try_label(alert)})" if alert.try_number is not None else ")")
    err = first_line(alert.error)
    text = escape_mrkdwn(text) + (f": {escape_mrkdwn(err)}" if err else "")
    return truncate(text, TEXT_MAX)


def render_retry_reply(alert: Alert) -> SlackMessage:
    """A failed try that will be retried, as a quiet reply in the open incident's thread."""
    text = f"🟠 Try {try_label(alert)} failed, will retry (run {alert.run_id or '-'})"
    err = first_line(alert.error)
    return SlackMessage(
        text=truncate(escape_mrkdwn(text) + (f": {escape_mrkdwn(err)}" if err else ""), TEXT_MAX), blocks=[]
    )


def render_recovered(alert: Alert) -> SlackMessage:
    """The next success after a failure, posted in the failure's thread."""
    text = escape_mrkdwn(recovered_sentence(alert))
    if alert.log_url and re.fullmatch(r"https?://[^\s<>|]+", alert.log_url):
        text += f" · <{alert.log_url}|log>"
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


def render_minimal(alert: Alert) -> SlackMessage:
    """A plain-text rendering that cannot fail: what is sent when `render_slack` raised on an
    alert (a malformed detail), so the alert still reaches its channel."""
    text = escape_mrkdwn(minimal_lines(alert))
    return SlackMessage(text=truncate(text, TEXT_MAX), blocks=[])
