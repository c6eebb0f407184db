"""alerting: events, rendering and routing (pure, no servers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerting.events import Alert, DbtContext, DbtFailure, MeltanoContext, normalise_error
from alerting.rendering.email_message import render_email
from alerting.rendering.slack_message import BLOCKS_MAX, escape_mrkdwn, render_slack
from alerting.rendering.text import MARKER, truncate
from alerting.routing import RoutingConfig
from alerting.routing.credentials import Secret

UTC = UTC
OWNERS = {"alice@example.com": "U0ALICE"}


def finance_alert(**over) -> Alert:
    kw = dict(
        kind="task_failed",
        dag_id="dbt_finance",
        task_id="dbt_build",
        run_id="scheduled__2026-01-01T00:00:00+00:00",
        try_number=2,
        max_tries=3,
        duration_s=83.4,
        log_url="http://airflow.local/dags/dbt_finance/runs/r1/tasks/dbt_build?try_number=2",
        error='Database Error in model fct_payments\n  relation "raw_shop.payments" does not exist',
        dag_tags=["dbt", "finance"],
        dbt=DbtContext(
            tag="finance",
            failures=[
                DbtFailure("fct_payments", "model", ["alice@example.com"], "Database Error: relation missing"),
                DbtFailure("not_null_fct_payments_id", "test", ["bob@example.com"], "Got 3 results"),
            ],
        ),
        occurred_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
    )
    kw.update(over)
    return Alert(**kw)


def test_signature_ignores_what_varies():
    a = Alert(
        "task_failed",
        "d",
        "t",
        error="Timeout after 30s at 2026-01-01T10:00:00Z in pid 4242, "
        "query 3f2a1b9c8d, id 123e4567-e89b-12d3-a456-426614174000 0xdeadbeef",
    )
    b = Alert(
        "task_failed",
        "d",
        "t",
        error="Timeout after 31s at 2026-01-02 11:12:13 in pid 77,  "
        "query 00aa11bb22, id 00000000-1111-2222-3333-444444444444 0x1",
    )
    assert a.signature() == b.signature()
    assert a.alert_id() != b.alert_id()
    assert a.signature() != Alert("task_failed", "d", "other", error=a.error).signature()
    assert a.signature() != Alert("task_failed", "d", "t", error="Permission denied").signature()
    assert normalise_error("x 2026-01-01T10:00:00Z y 12 0xff") == "x <ts> y <n> <hex>"
    assert Alert.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    with pytest.raises(ValueError):
        Alert("exploded", "d")


def test_slack_message_exact():
    alert = finance_alert()
    msg = render_slack(alert, RoutingConfig.from_dict({"owners": OWNERS}).slack_id)
    assert msg.text == (
        "🔴 Task failed: dbt_finance.dbt_build (run scheduled__2026-01-01T00:00:00+00:00, "
        "try 2/3): Database Error in model fct_payments"
    )
    assert msg.blocks == [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "🔴 Task failed: dbt_finance.dbt_build", "emoji": True},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*DAG*\ndbt_finance"},
                {"type": "mrkdwn", "text": "*Task*\ndbt_build"},
                {"type": "mrkdwn", "text": "*Run*\nscheduled__2026-01-01T00:00:00+00:00"},
                {"type": "mrkdwn", "text": "*Try*\n2/3"},
                {"type": "mrkdwn", "text": "*Duration*\n1m 23s"},
            ],
        },
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
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Error*\n```\nDatabase Error in model fct_payments\n"
                '  relation "raw_shop.payments" does not exist\n```',
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Failed dbt models/tests: 2* (tag `finance`)"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "• model `fct_payments` — owners: <@U0ALICE>\nDatabase Error: relation missing",
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "• test `not_null_fct_payments_id` — owners: bob@example.com\nGot 3 results",
            },
        },
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"task_failed · 2026-01-01T00:05:00+00:00 · sig {alert.signature()[:12]}"}
            ],
        },
    ]


def test_meltano_context_and_log_tail():
    lines = [f"line {i} <b>" for i in range(100)]
    alert = Alert(
        "task_failed",
        "meltano_tap_shop",
        "run",
        error="tap-shop exited 1",
        meltano=MeltanoContext("tap-shop", "dev:tap-shop-to-target-duckdb", lines),
    )
    blocks = render_slack(alert).blocks
    assert {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": "*Extractor*\ntap-shop"},
            {"type": "mrkdwn", "text": "*State ID*\ndev:tap-shop-to-target-duckdb"},
        ],
    } in blocks
    tail = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Meltano log"))
    assert tail.startswith("*Meltano log (last 30 lines)*\n```\nline 70 &lt;b&gt;\n")
    assert tail.endswith("line 99 &lt;b&gt;\n```") and "line 69 " not in tail
    mail = render_email(alert)
    assert "Meltano extractor: tap-shop" in mail.text and "line 99 &lt;b&gt;" in mail.html


def test_untrusted_text_is_escaped():
    evil = "boom <!channel> <!here> @channel @here <http://evil.example|click me> <@U999> a & b ```x"
    alert = Alert(
        "task_failed",
        "d<!channel>",
        "t",
        error=evil,
        dbt=DbtContext(tag="t<!here>", failures=[DbtFailure("m<!channel>", "model", ["x<@U1>@e.com"], evil)]),
    )
    msg = render_slack(alert)
    everything = json.dumps(msg.payload(), ensure_ascii=False)
    for bad in ("<!channel>", "<!here>", "<http://evil", "<@U999>", "<@U1>", "@channel", "@here"):
        assert bad not in everything, bad
    err = next(b["text"]["text"] for b in msg.blocks if b.get("text", {}).get("text", "").startswith("*Error*"))
    assert err == (
        "*Error*\n```\nboom &lt;!channel&gt; &lt;!here&gt; @\u2060channel @\u2060here "
        "&lt;http://evil.example|click me&gt; &lt;@U999&gt; a &amp; b `\u2060``x\n```"
    )
    assert msg.text.startswith("🔴 Task failed: d&lt;!channel&gt;.t (run -): boom &lt;!channel&gt;")
    mail = render_email(alert)
    assert "&lt;!channel&gt;" in mail.html and "<!channel>" not in mail.html
    assert "\n" not in mail.subject and "\r" not in mail.subject


def test_slack_limits():
    big = render_slack(
        Alert(
            "task_failed",
            "d" * 400,
            "t",
            error="E" * 10_000,
            dbt=DbtContext(failures=[DbtFailure(f"m{i}", owners=[]) for i in range(120)]),
        )
    )
    assert len(big.blocks) == BLOCKS_MAX
    header = big.blocks[0]["text"]["text"]
    assert len(header) == 150 and header.endswith(MARKER)
    err = big.blocks[2]["text"]["text"]
    assert len(err) <= 3000 and err.endswith(MARKER + "\n```") and err.startswith("*Error*\n```\nEEEE")
    assert all(len(b["text"]["text"]) <= 3000 for b in big.blocks if "text" in b and b["type"] == "section")
    trimmed = big.blocks[-2]
    assert trimmed["type"] == "context" and trimmed["elements"][0]["text"].startswith(MARKER)
    assert trimmed["elements"][0]["text"].endswith("more dbt failures not shown")
    assert big.blocks[-1]["type"] == "context"  # the occurrence footer survives the trim
    assert len(big.text) <= 3000
    # an escaped entity is never cut in half
    cut = truncate(escape_mrkdwn("<" * 2000), 3000)
    assert cut.endswith("&lt;" + MARKER) and len(cut) <= 3000


def test_routing_from_yaml(tmp_path, monkeypatch):
    monkeypatch.delenv("ALERTING_QUIET", raising=False)
    path = tmp_path / "alerting.yml"
    path.write_text("""
quiet: true
owners: {Alice@Example.com: U0ALICE}
slack: {token_env: MY_SLACK_TOKEN}
routes:
  - name: finance
    match: {dbt_tag: finance}
    slack_channel: "#finance"
    emails: [finance@example.com]
  - name: finance-dags
    match: {dag_tag: [finance, revenue]}
    slack_channel: "#finance"
    emails: [finance@example.com]
  - name: marketing
    match: {dag_id: "dbt_marketing*", dag_tag: dbt}
    slack_channel: "#marketing"
default:
  slack_channel: "#data-alerts"
  emails: [data@example.com]
""")
    cfg = RoutingConfig.load(path)
    assert cfg.quiet and cfg.slack_id("alice@example.com") == "U0ALICE"
    assert [r.name for r in cfg.resolve(finance_alert())] == ["finance", "finance-dags"]
    r = cfg.resolve(finance_alert())[0]
    assert (r.slack_channel, r.emails) == ("#finance", ["finance@example.com"])
    assert [r.name for r in cfg.resolve(Alert("task_failed", "dbt_marketing", dag_tags=["dbt"]))] == ["marketing"]
    # AND across keys: the dag_id matches but the tag does not
    assert [r.name for r in cfg.resolve(Alert("task_failed", "dbt_marketing", dag_tags=[]))] == ["default"]
    d = cfg.resolve(Alert("task_failed", "unknown_dag"))
    assert [(x.name, x.slack_channel, x.emails) for x in d] == [("default", "#data-alerts", ["data@example.com"])]
    monkeypatch.setenv("ALERTING_QUIET", "0")
    assert not RoutingConfig.load(path).quiet


def test_secrets_never_in_config_or_repr(monkeypatch):
    with pytest.raises(ValueError, match="secrets do not belong"):
        RoutingConfig.from_dict({"slack": {"token": "xoxb-nope"}})
    monkeypatch.setenv("MY_SLACK_TOKEN", "xoxb-very-secret-123")
    cfg = RoutingConfig.from_dict({"slack": {"token_env": "MY_SLACK_TOKEN"}})
    token = cfg.slack.token()
    assert isinstance(token, Secret) and token.get() == "xoxb-very-secret-123"
    assert "xoxb-very-secret-123" not in repr(token) + str(token) + repr(cfg)
    # an Airflow connection by name, from its AIRFLOW_CONN_ env form
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({"conn_type": "slack", "password": "xoxb-from-conn"}))
    cfg = RoutingConfig.from_dict({"slack": {"token_env": None, "token_conn_id": "slack_alerts"}})
    assert cfg.slack.token().get() == "xoxb-from-conn"
