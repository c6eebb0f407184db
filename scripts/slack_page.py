"""A failure alert as Slack would show it, for the README's screenshot, drawn locally.

The message is the real thing: an `alerting.events.Alert` of a dbt_finance failure, routed by this
repo's alerting.yml (channel, owners' Slack ids) and rendered by `alerting.rendering.slack_message.render_slack`
into Block Kit. Only the drawing is ours: a small HTML page that imitates Slack's message layout
(header, two-column fields, button, code blocks, context), with no network access and no Slack.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerting.events import Alert, DbtContext, DbtFailure
from alerting.rendering.slack_message import render_slack
from alerting.routing import RoutingConfig

REPO = Path(__file__).resolve().parent.parent


def sample_alert() -> Alert:
    """dbt_finance's build failing on its last try: a model error and a failed test."""
    return Alert(
        kind="task_failed",
        dag_id="dbt_finance",
        task_id="dbt_build",
        run_id="asset_triggered__2026-03-02T00:01:12+00:00",
        try_number=3,
        max_tries=3,
        duration_s=14.2,
        log_url="http://127.0.0.1:8080/dags/dbt_finance/runs/asset_triggered__2026-03-02T00:01:12+00:00"
        "/tasks/dbt_build?try_number=3",
        error="dbt build failed: 1 error, 1 test failure, 1 skipped\n"
        "Runtime Error in model fct_payments (models/marts/finance/fct_payments.sql)\n"
        '  Binder Error: Referenced column "amount_cents" not found in FROM clause!\n'
        '  Candidate bindings: "stg_payments.amount", "stg_payments.method"',
        dag_tags=["dbt", "dbt_tag:finance"],
        dbt=DbtContext(
            tag="finance",
            failures=[
                DbtFailure(
                    "fct_payments",
                    "model",
                    ["finance-data@example.com"],
                    'Binder Error: Referenced column "amount_cents" not found in FROM clause!',
                ),
                DbtFailure(
                    "accepted_values_fct_payments_method",
                    "test",
                    ["finance-data@example.com"],
                    "Got 1 result, configured to fail if != 0",
                ),
            ],
        ),
        occurred_at=datetime(2026, 3, 2, 0, 3, 41, tzinfo=UTC),
    )


def channel_and_message(alert: Alert) -> tuple[str, dict[str, Any]]:
    routing = RoutingConfig.load(REPO / "alerting.yml")
    routes = routing.resolve(alert)
    channel = next((r.slack_channel for r in routes if r.slack_channel), "#data-alerts")
    return channel, render_slack(alert, routing.slack_id).payload()


# ---- Block Kit -> HTML (only what render_slack produces) -----------------------------------------


def mrkdwn(text: str, names: dict[str, str]) -> str:
    """Slack mrkdwn to HTML. The renderer already turned & < > into entities, so the text is safe
    HTML as it stands; quotes are escaped here. Code blocks first, so nothing inside them changes."""
    text = text.replace('"', "&quot;")
    parts = re.split(r"```\n?(.*?)\n?```", text, flags=re.S)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<pre>{part}</pre>")
            continue
        part = re.sub(r"&lt;@([UW][A-Z0-9]+)&gt;|<@([UW][A-Z0-9]+)>", lambda m: _mention(m, names), part)
        part = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", part)
        part = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", part)
        out.append(part.strip("\n").replace("\n", "<br>"))
    return "".join(out)


def _mention(m: re.Match[str], names: dict[str, str]) -> str:
    uid = m.group(1) or m.group(2)
    return f'<span class="mention">@{html.escape(names.get(uid, uid))}</span>'


def block_html(block: dict[str, Any], names: dict[str, str]) -> str:
    kind = block["type"]
    if kind == "header":
        return f'<div class="header">{html.escape(block["text"]["text"])}</div>'
    if kind == "section" and "fields" in block:
        cells = "".join(f'<div class="field">{mrkdwn(f["text"], names)}</div>' for f in block["fields"])
        return f'<div class="fields">{cells}</div>'
    if kind == "section":
        return f'<div class="section">{mrkdwn(block["text"]["text"], names)}</div>'
    if kind == "actions":
        buttons = "".join(f'<span class="button">{html.escape(e["text"]["text"])}</span>' for e in block["elements"])
        return f'<div class="actions">{buttons}</div>'
    if kind == "context":
        return f'<div class="context">{" ".join(mrkdwn(e["text"], names) for e in block["elements"])}</div>'
    return ""


CSS = """
body { margin: 0; background: #fff; font: 15px/1.46668 -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif;
       color: #1d1c1d; }
.top { height: 49px; border-bottom: 1px solid #ddd; display: flex; align-items: center; padding: 0 20px;
       font-weight: 900; font-size: 18px; }
.top small { font-weight: 400; color: #616061; font-size: 13px; margin-left: 12px; }
.msg { display: flex; padding: 12px 20px 16px; }
.avatar { width: 36px; height: 36px; border-radius: 4px; background: #017cee; color: #fff; font-weight: 700;
          display: flex; align-items: center; justify-content: center; margin-right: 8px; flex: none; }
.body { flex: 1; min-width: 0; max-width: 760px; }
.who b { font-weight: 900; } .app { background: #e8e8e8; color: #616061; font-size: 10px; font-weight: 700;
       padding: 1px 3px; border-radius: 2px; margin: 0 4px; } .who time { color: #616061; font-size: 12px; }
.header { font-weight: 900; font-size: 18px; margin: 4px 0 6px; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin: 6px 0; }
.field { overflow-wrap: anywhere; }
.section { margin: 6px 0; overflow-wrap: anywhere; }
.actions { margin: 8px 0; }
.button { display: inline-block; border: 1px solid #bbb; border-radius: 4px; padding: 3px 12px; font-weight: 700;
          font-size: 13px; }
pre { background: #f8f8f8; border: 1px solid #ddd; border-radius: 4px; padding: 8px; margin: 4px 0;
      font: 12px/1.5 Monaco, Menlo, "DejaVu Sans Mono", monospace; white-space: pre-wrap; }
code { color: #e01e5a; background: #f6f6f6; border: 1px solid #ddd; border-radius: 3px; padding: 0 3px;
       font: 12px Monaco, Menlo, "DejaVu Sans Mono", monospace; }
.mention { color: #1264a3; background: #e8f5fa; border-radius: 3px; padding: 0 2px; }
.context { color: #616061; font-size: 12px; margin-top: 6px; }
.note { color: #868686; font-size: 11px; padding: 0 20px 10px 64px; }
"""


def alert_html(alert: Alert | None = None) -> str:
    alert = alert or sample_alert()
    channel, payload = channel_and_message(alert)
    names = {"U00FINANCE": "finance-data", "U00COREDATA": "core-data", "U00MARKETING": "marketing-data"}
    blocks = "\n".join(block_html(b, names) for b in payload["blocks"])
    when = alert.occurred_at.strftime("%H:%M")
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>{CSS}</style></head><body>
<div class="top">{html.escape(channel)}<small>rendered locally by alerting's Block Kit renderer</small></div>
<div class="msg"><div class="avatar">A</div><div class="body">
<div class="who"><b>Airflow alerts</b><span class="app">APP</span><time>{when}</time></div>
{blocks}
</div></div></body></html>"""


if __name__ == "__main__":  # look at it: python scripts/slack_page.py > /tmp/alert.html
    print(alert_html())
