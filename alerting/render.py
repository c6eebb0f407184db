"""Render an Alert as a Slack Block Kit message and as an e-mail: one import for both.

The renderings live in `alerting.slack_message` (Block Kit, mrkdwn escaping, Slack limits),
`alerting.email_message` (text and HTML parts, bounded) and `alerting.render_text` (titles,
truncation with a visible marker, the minimal rendering that cannot fail); this module keeps
the `alerting.render` names working.
"""

from .email_message import (
    EMAIL_FIELD_MAX,
    EMAIL_HISTORY_MAX,
    EMAIL_HTML_MAX,
    EMAIL_LINE_MAX,
    EMAIL_LIST_MAX,
    EMAIL_TEXT_MAX,
    EmailMessageParts,
    render_email,
    render_email_minimal,
)
from .render_text import LOG_TAIL_LINES, MARKER, TITLES, first_line, format_duration, title, truncate, truncate_head
from .slack_message import (
    BLOCKS_MAX,
    FIELD_MAX,
    HEADER_MAX,
    SECTION_MAX,
    TEXT_MAX,
    SlackMessage,
    escape_mrkdwn,
    owner_mention,
    plain,
    render_minimal,
    render_recovered,
    render_repeat,
    render_retry_reply,
    render_slack,
    render_storm,
)

__all__ = [
    "BLOCKS_MAX",
    "EMAIL_FIELD_MAX",
    "EMAIL_HISTORY_MAX",
    "EMAIL_HTML_MAX",
    "EMAIL_LINE_MAX",
    "EMAIL_LIST_MAX",
    "EMAIL_TEXT_MAX",
    "FIELD_MAX",
    "HEADER_MAX",
    "LOG_TAIL_LINES",
    "MARKER",
    "SECTION_MAX",
    "TEXT_MAX",
    "TITLES",
    "EmailMessageParts",
    "SlackMessage",
    "escape_mrkdwn",
    "first_line",
    "format_duration",
    "owner_mention",
    "plain",
    "render_email",
    "render_email_minimal",
    "render_minimal",
    "render_recovered",
    "render_repeat",
    "render_retry_reply",
    "render_slack",
    "render_storm",
    "title",
    "truncate",
    "truncate_head",
]
