"""alerting: what must never go wrong, through real local servers (tests/alerting_fakes.py) and a
real outbox: an alert is never lost to a broken route, renderer or odd character; no secret
reaches Slack, e-mail or the outbox; notify() keeps to its time budget; e-mails stay bounded."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import pytest
from alerting_fakes import FakeSlack, FakeSMTP

from alerting.delivery import Notifier
from alerting.events import Alert, DbtContext, DbtFailure, MeltanoContext
from alerting.outbox import Outbox
from alerting.rendering.email_message import EMAIL_TEXT_MAX, render_email
from alerting.rendering.text import MARKER
from alerting.routing import Route, RoutingConfig

TOKEN = "xoxb-hardening-token-9d2e"


@pytest.fixture
def slack():
    with FakeSlack(tokens={TOKEN}) as s:
        yield s


@pytest.fixture
def smtp():
    server = FakeSMTP().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("HARDENING_SLACK_TOKEN", TOKEN)
    for name in ("ALERTING_QUIET", "ALERTING_SLACK_BASE_URL", "ALERTING_SMTP_HOST", "ALERTING_SMTP_PORT"):
        monkeypatch.delenv(name, raising=False)


def config(fake_slack, fake_smtp, **over) -> dict:
    d = {
        "slack": {"token_env": "HARDENING_SLACK_TOKEN", "base_url": fake_slack.api_url, "timeout_s": 1},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": fake_smtp.port, "sender": "af@example.com", "timeout_s": 2},
        "routes": [
            {"name": "finance", "match": {"dbt_tag": "finance"}, "slack_channel": "#finance", "emails": ["fin@x.io"]}
        ],
        "default": {"slack_channel": "#data-alerts", "emails": ["data@x.io"], "email_mode": "always"},
    }
    d.update(over)
    return d


def notifier(fake_slack, fake_smtp, url: str, **over) -> Notifier:
    return Notifier(RoutingConfig.from_dict(config(fake_slack, fake_smtp, **over)), Outbox(url))


def failure(n: int = 0, **over) -> Alert:
    kw = dict(
        kind="task_failed",
        dag_id="dbt_finance",
        task_id="dbt_build",
        run_id=f"manual__{n}",
        try_number=1,
        max_tries=2,
        error="Database Error in model fct_payments",
        dag_tags=["dbt"],
        dbt=DbtContext(tag="finance", failures=[DbtFailure("fct_payments", "model", [], "relation missing")]),
        occurred_at=datetime(2026, 1, 1, 0, 0, tzinfo=UTC) + timedelta(minutes=n),
    )
    kw.update(over)
    return Alert(**kw)


def other(n: int = 0, **over) -> Alert:
    return failure(n, **{"dag_id": "meltano_tap_crm", "task_id": "run", "dbt": None, "dag_tags": ["meltano"], **over})


def mail_text(received) -> str:
    """Both decoded bodies of a received e-mail (MIME may encode them as base64/QP)."""
    msg = BytesParser(policy=policy.default).parsebytes(received.content)
    text = msg.get_body(("plain",)).get_content() + msg.get_body(("html",)).get_content()
    return text.replace("\r\n", "\n")


def outbox_dump(n: Notifier) -> str:
    return json.dumps(n.outbox.rows(), default=str, ensure_ascii=False)


# ------------------------------------------------------------------ 2. an alert never vanishes


class BrokenRoute(Route):
    def matches(self, alert: Alert) -> bool:
        raise RuntimeError("match exploded")


def test_a_route_whose_match_raises_sends_the_alert_to_the_default_route(slack, smtp, tmp_path):
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    n.config.routes.insert(0, BrokenRoute("broken", slack_channel="#broken", match={"dag_id": ["*"]}))
    res = n.notify(other())  # matches nothing else: the default route only
    assert res.error is None and res.routes == ["default"] and res.delivered
    assert [p["channel"] for p in slack.posted()] == ["#data-alerts"]
    res = n.notify(failure())  # finance matched before the broken route could say no: both
    assert res.routes == ["finance", "default"]
    assert [p["channel"] for p in slack.posted()] == ["#data-alerts", "#finance", "#data-alerts"]
    assert {(r["route"], r["kind"], r["status"]) for r in n.outbox.rows()} == {
        ("default", "slack", "sent"),
        ("default", "email", "sent"),
        ("finance", "slack", "sent"),
    }


def test_a_routing_config_that_raises_falls_back_to_the_default_route(slack, smtp, tmp_path):
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")

    def boom(alert):
        raise KeyError("resolve exploded")

    n.config.resolve = boom  # type: ignore[method-assign]
    res = n.notify(failure())
    assert res.error is None and res.routes == ["default"] and res.delivered
    assert [p["channel"] for p in slack.posted()] == ["#data-alerts"]


MINIMAL_TEXT = (
    "🔴 Task failed: meltano_tap_crm.run\nRun: manual__0\nError: tap-crm failed &lt;badly&gt;\n"
    "(shown in a minimal form: the full alert could not be rendered; see the log)"
)


def test_an_alert_the_renderers_cannot_render_goes_out_in_a_minimal_form(slack, smtp, tmp_path):
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    # a malformed detail from a task's alert_context: the renderers iterate it as a list of dicts
    alert = other(error="tap-crm failed <badly>", extra={"history": "oops, not a list"})
    res = n.notify(alert)
    assert res.error is None and res.delivered
    assert slack.posted() == [
        {"channel": "#data-alerts", "text": MINIMAL_TEXT, "unfurl_links": False, "unfurl_media": False}
    ]
    [mail] = smtp.received
    msg = mail.message()
    assert msg["Subject"] == "[Airflow] 🔴 Task failed: meltano_tap_crm.run"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == (
        "🔴 Task failed: meltano_tap_crm.run\nRun: manual__0\nError: tap-crm failed <badly>\n"
        "(shown in a minimal form: the full alert could not be rendered; see the log)\n"
    )
    assert [(r["kind"], r["status"]) for r in n.outbox.rows()] == [("slack", "sent"), ("email", "sent")]


def test_every_route_is_recorded_before_any_network_io(slack, smtp, tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    n = notifier(
        slack,
        smtp,
        url,
        routes=[
            {"name": "a", "match": {"dag_id": "*"}, "slack_channel": "#a"},
            {"name": "b", "match": {"dag_id": "*"}, "slack_channel": "#b", "emails": ["b@x.io"]},
        ],
    )
    seen: list[list[tuple[str, str, str]]] = []
    observer = Outbox(url)
    slack.on_request = lambda req: seen.append(sorted((r["route"], r["kind"], r["status"]) for r in observer.rows()))
    n.notify(other())
    # when the first Slack request arrived, both routes' rows were already in the outbox
    assert seen[0] == [("a", "slack", "sending"), ("b", "slack", "pending")]
    assert [p["channel"] for p in slack.posted()] == ["#a", "#b"]


def test_an_alert_with_nowhere_to_go_is_still_on_record(slack, smtp, tmp_path, monkeypatch):
    monkeypatch.delenv("HARDENING_SLACK_TOKEN")  # no Slack credentials, and a Slack-only route
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}", default={"slack_channel": "#data-alerts"})
    res = n.notify(other())
    assert res.error is None and slack.requests == [] and smtp.received == []
    [row] = n.outbox.rows()
    assert (row["route"], row["kind"], row["status"], row["dag_id"]) == (
        "default",
        "record",
        "recorded",
        "meltano_tap_crm",
    )


def test_extra_that_is_not_json_does_not_lose_the_alert(slack, smtp, tmp_path):
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")

    class Opaque:
        def __str__(self) -> str:
            return "<opaque thing>"

    when = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    res = n.notify(other(extra={"when": when, "what": Opaque(), "tags": {"a"}}))
    assert res.error is None and res.delivered
    payload = json.loads(n.outbox.rows(kind="slack")[0]["payload"])
    assert payload["extra"] == {
        "when": "2026-01-01T12:00:00+00:00",
        "what": "<opaque thing>",
        "tags": ["a"],
        "history": [],
    }
    assert n.redeliver(include_future=True) == []  # and it reads back


# ------------------------------------------------------------------ 3. secrets never leave


def test_secrets_are_redacted_from_slack_email_and_the_outbox(slack, smtp, tmp_path, monkeypatch):
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    # set after the notifier exists: the environment is read when the alert is sent, not at import
    monkeypatch.setenv("WAREHOUSE_API_TOKEN", "whtok-7f3a91c2e4")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgresql://etl:pg-pass-5b7c%2F9@db.internal:5432/wh")
    monkeypatch.setenv("DBT_SIGNING_KEY", "sk-live-0d9e8f7a")
    secrets = [
        TOKEN,  # the Slack bot token itself (a registered Secret once resolved)
        "whtok-7f3a91c2e4",
        "pg-pass-5b7c/9",
        "pg-pass-5b7c%2F9",
        "sk-live-0d9e8f7a",
        "hunter2-url-pass",
        "xoxp-1234-5678-abcdef",
    ]
    alert = other(
        error="auth failed with whtok-7f3a91c2e4 for https://bob:hunter2-url-pass@git.example.com/repo.git "
        f"(token {TOKEN})",
        meltano=MeltanoContext(
            "tap-crm",
            "dev:tap-crm",
            [
                "connecting to postgresql://etl:pg-pass-5b7c%2F9@db.internal:5432/wh",
                "header Authorization: Bearer xoxp-1234-5678-abcdef",
                "decoded password pg-pass-5b7c/9 rejected",
            ],
        ),
        dbt=DbtContext(failures=[DbtFailure("m", message="signing with sk-live-0d9e8f7a failed")]),
        extra={"note": "env had whtok-7f3a91c2e4", "reason": "sk-live-0d9e8f7a"},
    )
    res = n.notify(alert)
    assert res.delivered and len(slack.messages) == 1 and len(smtp.received) == 1
    raw_slack = slack.messages[0].raw.decode()
    body = json.dumps(slack.posted()[0], ensure_ascii=False)
    mail = mail_text(smtp.received[0]) + smtp.received[0].content.decode(errors="replace")
    stored = outbox_dump(n)
    for secret in secrets:
        for where, text in (("slack", raw_slack + body), ("e-mail", mail), ("outbox", stored)):
            assert secret not in text, f"{secret} reached the {where}"
    # what is left says what was there
    assert "https://bob:***@git.example.com/repo.git" in body and "Bearer xoxp-***" in body
    assert "auth failed with *** for" in mail and "postgresql://etl:***@db.internal:5432/wh" in mail
    extra = json.loads(n.outbox.rows()[0]["payload"])["extra"]
    assert extra == {"note": "env had ***", "reason": "***", "history": []}


# ------------------------------------------------------------------ 5. surrogates and NUL


def test_lone_surrogates_and_nul_neither_lose_the_alert_nor_break_the_email(slack, smtp, tmp_path):
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    alert = other(
        run_id="manual__\udc80bad",  # e.g. bytes decoded with surrogateescape
        error="tap failed: \udcff\udcfe in a name, a NUL\x00here, and a pair \ud83d\ude00",
        meltano=MeltanoContext("tap-crm", None, ["line with NUL \x00 and \ud800 lone high"]),
    )
    res = n.notify(alert)
    assert res.error is None and res.delivered
    [row_slack, row_mail] = n.outbox.rows()
    assert row_slack["run_id"] == "manual__\ufffdbad" and row_mail["status"] == "sent"
    posted = slack.posted()[0]
    assert posted["text"] == (
        "🔴 Task failed: meltano_tap_crm.run (run manual__\ufffdbad, try 1/2): "
        "tap failed: \ufffd\ufffd in a name, a NUL\\x00here, and a pair 😀"
    )
    assert "\x00" not in json.dumps(posted, ensure_ascii=False) and "\\u0000" not in slack.messages[0].raw.decode()
    assert b"\x00" not in smtp.received[0].content
    text = mail_text(smtp.received[0])
    assert "Run: manual__\ufffdbad" in text and "line with NUL \\x00 and \ufffd lone high" in text


@pytest.mark.services
def test_nul_and_surrogates_on_postgres(slack, smtp, pg_url):
    n = notifier(slack, smtp, pg_url)
    res = n.notify(other(run_id="r\udc80", error="NUL\x00inside"))
    assert res.error is None and res.delivered
    assert [r["run_id"] for r in n.outbox.rows()] == ["r\ufffd", "r\ufffd"]
    n.outbox.engine.dispose()


@pytest.fixture
def pg_url():
    import socket

    from sqlalchemy import create_engine, text

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        pytest.skip("postgres not reachable on 127.0.0.1:5432 (start with: scripts/services.sh start)")
    base = "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/postgres"
    schema = f"alerting_hardening_{int(time.time() * 1000)}"
    with create_engine(base).begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with create_engine(base).begin() as c:
        c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


# ------------------------------------------------------------------ 4. the notify() budget


def test_notify_keeps_to_its_budget_when_slack_and_smtp_both_hang(slack, smtp, tmp_path):
    budget = 2.0
    n = notifier(
        slack,
        smtp,
        f"sqlite:///{tmp_path / 'o.db'}",
        notify_budget_s=budget,
        # without a budget: (1 s Slack timeout + 5 s SMTP timeout) x 2 routes = 12 s
        slack={"token_env": "HARDENING_SLACK_TOKEN", "base_url": slack.api_url, "timeout_s": 1},
        email={"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "sender": "af@example.com", "timeout_s": 5},
        routes=[
            {
                "name": r,
                "match": {"dag_id": "*"},
                "slack_channel": f"#{r}",
                "emails": [f"{r}@x.io"],
                "email_mode": "always",
            }
            for r in ("finance", "all")
        ],
    )
    slack.mode, slack.sleep_s = "sleep", 30  # Slack accepts the connection and never answers in time
    smtp.hang_s = 30  # the relay stalls at DATA
    t0 = time.monotonic()
    res = n.notify(failure())
    elapsed = time.monotonic() - t0
    # a loaded 2-core machine wakes threads late: a margin that still tells the budget from the 30 s hang
    assert elapsed < budget + 1.5, f"notify took {elapsed:.2f}s with a {budget}s budget"
    assert res.error is None and not res.delivered
    assert {(d.route, d.kind, d.status) for d in res.deliveries} <= {
        (route, kind, "pending") for route in ("finance", "all") for kind in ("slack", "email")
    }
    assert sorted((r["route"], r["kind"], r["status"]) for r in n.outbox.rows()) == [
        ("all", "email", "pending"),
        ("all", "slack", "pending"),
        ("finance", "email", "pending"),
        ("finance", "slack", "pending"),
    ]
    assert slack.posted() == [] and smtp.received == []
    slack.mode, smtp.hang_s = "ok", 0  # both back
    sent = n.redeliver(include_future=True)
    assert sorted((r.route, r.kind, r.status) for r in sent) == [
        ("all", "email", "sent"),
        ("all", "slack", "sent"),
        ("finance", "email", "sent"),
        ("finance", "slack", "sent"),
    ]
    assert n.redeliver(include_future=True) == []
    assert sorted(p["channel"] for p in slack.posted()) == ["#all", "#finance"]
    assert sorted(tuple(m.rcpt_tos) for m in smtp.received) == [("all@x.io",), ("finance@x.io",)]


# ------------------------------------------------------------------ 6. bounded e-mails


def test_a_5_mb_log_line_gives_a_small_email(slack, smtp, tmp_path):
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    huge = "x" * 5_000_000
    alert = other(error="E" * 5_000_000, meltano=MeltanoContext("tap-crm", None, ["first", huge, "last line"]))
    res = n.notify(alert)
    assert res.delivered
    [mail] = smtp.received
    assert len(mail.content) < 120_000, len(mail.content)
    text = mail.message().get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert f"xxx{MARKER}\nlast line" in text and f"EEE{MARKER}" in text
    assert all(len(r["payload"]) < 300_000 for r in n.outbox.rows())  # bounded in the outbox too


def test_the_whole_email_body_is_capped_with_a_marker():
    failures = [DbtFailure(f"model_{i}", message="m" * 1900) for i in range(150)]
    parts = render_email(other(error="boom", dbt=DbtContext(failures=failures)))
    assert len(parts.text) <= EMAIL_TEXT_MAX + 200 and len(parts.html) <= 260_000
    assert "more dbt failures not shown" in parts.text
    assert parts.text.rstrip().endswith("the rest of this alert did not fit in an e-mail; see the log.")
    note = f"{MARKER}: the rest of this alert did not fit in an e-mail; see the log."
    assert parts.html.endswith(f"</ul>\n<p><em>{note}</em></p></body></html>")
