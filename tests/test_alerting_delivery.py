"""alerting: delivery through real servers on 127.0.0.1 — a Slack-compatible HTTP API
(tests/alerting_fakes.py FakeSlack, spoken to by slack-sdk) and aiosmtpd (spoken to by smtplib).
No HTTP or SMTP is mocked."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from alerting_fakes import FakeSlack, FakeSMTP

from alerting.delivery import Notifier
from alerting.events import Alert, DbtContext, DbtFailure
from alerting.outbox import Outbox
from alerting.outbox.tables import utcnow
from alerting.rendering.slack_message import render_slack

TOKEN = "xoxb-test-token-5f3a9c"
FAST = 4.0  # notify() must return within this in every fault case (Slack timeout is 1 s)
UTC = UTC


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
    monkeypatch.setenv("TEST_SLACK_TOKEN", TOKEN)
    monkeypatch.delenv("ALERTING_QUIET", raising=False)


def config(fake_slack, fake_smtp, **over) -> dict:
    d = {
        "slack": {"token_env": "TEST_SLACK_TOKEN", "base_url": fake_slack.api_url, "timeout_s": 1},
        "email": {
            "smtp_host": "127.0.0.1",
            "smtp_port": fake_smtp.port,
            "sender": "airflow@example.com",
            "timeout_s": 2,
        },
        "owners": {"alice@example.com": "U0ALICE"},
        "routes": [
            {
                "name": "finance",
                "match": {"dbt_tag": "finance"},
                "slack_channel": "#finance",
                "emails": ["finance@example.com", "cfo@example.com"],
            }
        ],
        "default": {"slack_channel": "#data-alerts", "emails": ["data@example.com"]},
    }
    d.update(over)
    return d


def notifier(fake_slack, fake_smtp, tmp_path, **over) -> Notifier:
    from alerting.routing import RoutingConfig

    return Notifier(
        RoutingConfig.from_dict(config(fake_slack, fake_smtp, **over)), Outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    )


def failure(n: int = 0, **over) -> Alert:
    kw = dict(
        kind="task_failed",
        dag_id="dbt_finance",
        task_id="dbt_build",
        run_id=f"manual__{n}",
        try_number=1,
        max_tries=2,
        duration_s=12.5,
        log_url="http://airflow.local/log/1",
        error=f"Database Error in model fct_payments (query id {1000 + n}) at 2026-01-01T00:0{n % 10}:00Z",
        dag_tags=["dbt"],
        dbt=DbtContext(
            tag="finance", failures=[DbtFailure("fct_payments", "model", ["alice@example.com"], "relation missing")]
        ),
        occurred_at=datetime(2026, 1, 1, 0, 0, tzinfo=UTC) + timedelta(minutes=n),
    )
    kw.update(over)
    return Alert(**kw)


def other(n: int = 0, **over) -> Alert:
    kw = dict(dag_id="meltano_tap_crm", task_id="run", dbt=None, dag_tags=["meltano"], error=f"tap-crm failed {n}")
    kw.update(over)
    return failure(n, **kw)


def timed_notify(n: Notifier, alert: Alert):
    t0 = time.monotonic()
    res = n.notify(alert)
    elapsed = time.monotonic() - t0
    assert elapsed < FAST, f"notify took {elapsed:.1f}s"
    assert res.error is None
    return res


def statuses(n: Notifier) -> list[tuple[str, str, str]]:
    return [(r["route"], r["kind"], r["status"]) for r in n.outbox.rows()]


# ------------------------------------------------------------------ happy path, payloads, routing


def test_finance_alert_posted_exactly_with_mentions(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    alert = failure()
    res = timed_notify(n, alert)
    assert res.routes == ["finance"] and res.delivered
    assert slack.posted() == [
        {
            "channel": "#finance",
            "text": render_slack(alert, n.config.slack_id).text,
            "blocks": render_slack(alert, n.config.slack_id).blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }
    ]
    body = slack.posted()[0]
    assert body["text"] == (
        "🔴 Task failed: dbt_finance.dbt_build (run manual__0, try 1/2): "
        "Database Error in model fct_payments (query id 1000) at 2026-01-01T00:00:00Z"
    )
    assert {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "• model `fct_payments` — owners: <@U0ALICE>\nrelation missing"},
    } in body["blocks"]
    assert slack.messages[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert smtp.received == []  # e-mail is the fallback: Slack worked
    row = n.outbox.rows()[0]
    assert (row["status"], row["attempts"], row["slack_ts"]) == ("sent", 1, "1700000001.000100")


def test_unknown_goes_to_default_and_email_always(slack, smtp, tmp_path):
    n = notifier(
        slack,
        smtp,
        tmp_path,
        default={"slack_channel": "#data-alerts", "emails": ["data@example.com"], "email_mode": "always"},
    )
    res = timed_notify(n, other())
    assert res.routes == ["default"]
    assert [b["channel"] for b in slack.posted()] == ["#data-alerts"]
    assert [m.rcpt_tos for m in smtp.received] == [["data@example.com"]]
    msg = smtp.received[0].message()
    assert msg["Subject"] == "[Airflow] 🔴 Task failed: meltano_tap_crm.run (try 1/2)"
    assert msg["From"] == "airflow@example.com" and msg["X-Alert-Id"] == other().alert_id()
    assert "tap-crm failed 0" in msg.get_body(("plain",)).get_content()
    assert "<pre>tap-crm failed 0</pre>" in msg.get_body(("html",)).get_content()


def test_escaping_and_truncation_arrive_on_the_wire(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    evil = "<!channel> pay now <http://evil.example|invoice> " + "x" * 10_000
    timed_notify(n, other(error=evil))
    raw = slack.messages[0].raw.decode()
    assert "<!channel>" not in raw and "<http://evil" not in raw
    blocks = slack.posted()[0]["blocks"]
    err = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Error*"))
    assert err.startswith("*Error*\n```\n&lt;!channel&gt; pay now &lt;http://evil.example|invoice&gt; xxx")
    assert len(err) <= 3000 and err.endswith("xx… (truncated)\n```")
    many = other(1, error="y", dbt=DbtContext(tag="x", failures=[DbtFailure(f"m{i}") for i in range(80)]))
    timed_notify(n, many)
    assert len(slack.posted()[1]["blocks"]) == 50


def test_webhook_when_no_token(slack, smtp, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", slack.webhook_url("T0/B0/hooksecret42"))
    n = notifier(slack, smtp, tmp_path, slack={"token_env": None, "webhook_env": "TEST_SLACK_WEBHOOK", "timeout_s": 1})
    alert = other()
    timed_notify(n, alert)
    [m] = slack.messages
    assert m.path == "/services/T0/B0/hooksecret42"
    msg = render_slack(alert)
    assert m.body == {"text": msg.text, "blocks": msg.blocks, "unfurl_links": False, "unfurl_media": False}


def test_quiet_records_but_sends_nothing(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path, quiet=True)
    res = timed_notify(n, failure())
    assert res.quiet and slack.requests == [] and smtp.received == []
    assert statuses(n) == [("finance", "slack", "quiet")]
    assert n.redeliver(include_future=True) == []


# ------------------------------------------------------------------ dedup and exactly-once


def test_dedup_three_failures_one_message_and_counter(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    results = [timed_notify(n, failure(i)) for i in range(3)]  # same failure, other run/ids/time
    assert len({a.signature() for a in (failure(0), failure(1), failure(2))}) == 1
    assert len(slack.posted()) == 1
    assert [r.suppressed for r in results] == [{}, {"finance": 2}, {"finance": 3}]
    assert n.outbox.count(failure().signature(), "finance") == 3
    # the same occurrence notified twice (a re-run callback) is neither sent nor counted again
    timed_notify(n, failure(2))
    assert n.outbox.count(failure().signature(), "finance") == 3
    # after the window: a new top-level message
    timed_notify(n, failure(0, occurred_at=datetime(2026, 1, 1, 2, 0, tzinfo=UTC)))
    assert len(slack.posted()) == 2


def test_dedup_thread_replies(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path, thread_replies=True)
    for i in range(3):
        timed_notify(n, failure(i))
    top, r1, r2 = slack.posted()
    assert "thread_ts" not in top
    ts = n.outbox.rows(kind="slack")[0]["slack_ts"]
    assert (r1["thread_ts"], r2["thread_ts"]) == (ts, ts)
    assert r1["text"] == "Seen again: 2 occurrences since 2026-01-01T00:01:00+00:00"
    assert r2["text"].startswith("Seen again: 3 occurrences")


def _race_redelivery(slack, a, b, check_pending=None) -> dict[str, list]:
    """Queue 6 distinct alerts while Slack rejects the token, then let `a` and `b` redeliver at once."""
    slack.mode = "invalid_auth"
    for i in range(6):
        a.notify(other(i, error=f"distinct failure {'abcdefghij'[i]}"))
    if check_pending is not None:
        assert [s for *_, s in check_pending()] == ["pending"] * 6
    slack.mode, slack.delay_s = "ok", 0.05
    go = threading.Barrier(2)
    out: dict[str, list] = {}

    def run(name, nt):
        go.wait()
        out[name] = nt.redeliver(include_future=True)

    threads = [threading.Thread(target=run, args=(k, v)) for k, v in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return out


def test_concurrent_redelivery_sends_each_row_once(slack, smtp, tmp_path):
    cfg = {
        "default": {"slack_channel": "#data-alerts"},
        "routes": [],  # no e-mail: rows stay pending
        "storm": {"threshold": 10},
    }
    a, b = notifier(slack, smtp, tmp_path, **cfg), notifier(slack, smtp, tmp_path, **cfg)  # two engines, one DB
    out = _race_redelivery(slack, a, b, check_pending=lambda: statuses(a))
    assert len(slack.posted()) == 6
    assert sorted(json.dumps(p["text"]) for p in slack.posted()) == sorted(
        set(json.dumps(p["text"]) for p in slack.posted())
    )
    assert len(out["a"]) + len(out["b"]) == 6 and all(r.status == "sent" for r in out["a"] + out["b"])
    assert a.redeliver(include_future=True) == [] and len(slack.posted()) == 6


# ------------------------------------------------------------------ faults


def test_429_with_retry_after_then_success(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    slack.fail_next("429", retry_after=1)
    res = timed_notify(n, failure())
    assert [r.answered for r in slack.requests] == ["429", "ok"]
    assert res.delivered and smtp.received == [] and len(slack.posted()) == 1


def test_429_with_long_retry_after_waits_in_the_outbox(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    slack.fail_next("429", retry_after=30)
    res = timed_notify(n, failure())
    assert res.delivered and [r.answered for r in slack.requests] == ["429"]  # not slept through
    assert [m.rcpt_tos for m in smtp.received] == [["finance@example.com", "cfo@example.com"]]
    row = n.outbox.rows(kind="slack")[0]
    assert row["status"] == "pending" and row["next_attempt_at"] >= utcnow() + timedelta(seconds=25)
    assert n.redeliver() == []  # not due yet
    assert [r.status for r in n.redeliver(utcnow() + timedelta(seconds=31))] == ["sent"]
    assert len(slack.posted()) == 1 and len(smtp.received) == 1


def test_500_then_success(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    slack.fail_next("500")
    res = timed_notify(n, failure())
    assert [r.answered for r in slack.requests] == ["500", "ok"]
    assert res.delivered and smtp.received == []


def test_timeout_falls_back_to_email_then_redelivers_once(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    slack.fail_next("sleep", 2.5)
    res = timed_notify(n, failure())
    assert [(d.kind, d.status) for d in res.deliveries] == [("slack", "pending"), ("email", "sent")]
    assert "timed out" in res.deliveries[0].error
    assert len(smtp.received) == 1 and slack.posted() == []
    assert statuses(n) == [("finance", "slack", "pending"), ("finance", "email", "sent")]
    later = utcnow() + timedelta(hours=1)
    assert [(r.kind, r.status) for r in n.redeliver(later)] == [("slack", "sent")]
    assert n.redeliver(later) == []
    assert len(slack.posted()) == 1 and len(smtp.received) == 1


def test_invalid_token_falls_back_to_email_and_never_logs_it(slack, smtp, tmp_path, monkeypatch, caplog):
    secret = "xoxb-wrong-secret-77aa"
    monkeypatch.setenv("TEST_SLACK_TOKEN", secret)
    n = notifier(slack, smtp, tmp_path)
    with caplog.at_level(logging.DEBUG):
        res = timed_notify(n, failure())
    assert [r.answered for r in slack.requests] == ["invalid_auth"]
    assert res.delivered and len(smtp.received) == 1
    row = n.outbox.rows(kind="slack")[0]
    assert row["status"] == "pending" and "invalid_auth" in row["last_error"]
    assert caplog.records and secret not in caplog.text and secret not in repr(n)
    assert all(secret not in (r["last_error"] or "") for r in n.outbox.rows())


def test_webhook_url_is_redacted_from_logs(slack, smtp, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", slack.webhook_url("T0/B0/supersecretpath99"))
    n = notifier(slack, smtp, tmp_path, slack={"token_env": None, "webhook_env": "TEST_SLACK_WEBHOOK", "timeout_s": 1})
    slack.mode = "500"
    with caplog.at_level(logging.DEBUG):
        res = timed_notify(n, failure())
    assert res.deliveries[0].status == "pending"
    assert "supersecretpath99" not in caplog.text and "***" in caplog.text


def test_smtp_refusing_keeps_email_in_outbox(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path, default={"emails": ["data@example.com"]})  # e-mail only
    smtp.stop()
    res = timed_notify(n, other())
    assert not res.delivered and res.deliveries[0].status == "pending"
    assert "ConnectionRefusedError" in res.deliveries[0].error
    smtp.start()
    assert [r.status for r in n.redeliver(include_future=True)] == ["sent"]
    assert n.redeliver(include_future=True) == []
    assert len(smtp.received) == 1


def test_both_down_then_back_everything_delivered_once(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    slack.mode = "500"
    smtp.stop()
    r1 = timed_notify(n, failure())
    r2 = timed_notify(n, other())
    assert not r1.delivered and not r2.delivered
    assert sorted(statuses(n)) == sorted(
        [
            ("finance", "slack", "pending"),
            ("finance", "email", "pending"),
            ("default", "slack", "pending"),
            ("default", "email", "pending"),
        ]
    )
    assert slack.posted() == [] and smtp.received == []
    # a redelivery while still down changes nothing but the attempt counters
    assert {r.status for r in n.redeliver(include_future=True)} == {"pending"}
    slack.mode = "ok"
    smtp.start()
    sent = n.redeliver(include_future=True)
    assert sorted((r.route, r.kind, r.status) for r in sent) == sorted(
        [
            ("finance", "slack", "sent"),
            ("finance", "email", "sent"),
            ("default", "slack", "sent"),
            ("default", "email", "sent"),
        ]
    )
    assert n.redeliver(include_future=True) == []
    assert sorted(p["channel"] for p in slack.posted()) == ["#data-alerts", "#finance"]
    assert sorted(tuple(m.rcpt_tos) for m in smtp.received) == [
        ("data@example.com",),
        ("finance@example.com", "cfo@example.com"),
    ]


def test_notify_never_raises(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    n.outbox.engine.dispose()
    (tmp_path / "outbox.db").unlink()
    (tmp_path / "outbox.db").mkdir()  # the outbox file is now unusable
    res = n.notify(failure())
    assert res.error and not res.delivered
    assert n.redeliver()[0].status == "failed"


def test_permanent_slack_error_fails_row_and_emails(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    slack.fail_next("error", "channel_not_found")
    res = timed_notify(n, failure())
    assert [(d.kind, d.status) for d in res.deliveries] == [("slack", "failed"), ("email", "sent")]
    assert res.delivered and n.redeliver(include_future=True) == []


def _postgres_engine(schema: str):
    import socket

    from sqlalchemy import create_engine, text

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        pytest.skip("postgres not reachable on 127.0.0.1:5432 (start with: scripts/services.sh start)")
    url = "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/postgres"
    try:
        with create_engine(url).begin() as c:
            c.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"postgres not usable: {type(e).__name__}")
    return lambda: create_engine(url, connect_args={"options": f"-csearch_path={schema}"})


@pytest.mark.services
def test_concurrent_redelivery_exactly_once_on_postgres(slack, smtp):
    from sqlalchemy import create_engine, text

    from alerting.routing import RoutingConfig

    schema = f"alerting_test_{int(time.time() * 1000)}"
    make = _postgres_engine(schema)
    try:
        cfg = RoutingConfig.from_dict(
            config(slack, smtp, routes=[], default={"slack_channel": "#data-alerts"}, storm={"threshold": 10})
        )
        a, b = Notifier(cfg, Outbox(make())), Notifier(cfg, Outbox(make()))
        out = _race_redelivery(slack, a, b)
        assert len(slack.posted()) == 6 and len({p["text"] for p in slack.posted()}) == 6
        assert len(out["a"]) + len(out["b"]) == 6
        a.outbox.engine.dispose()
        b.outbox.engine.dispose()
    finally:
        with create_engine("postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/postgres").begin() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def test_retries_recovery_and_relapse_in_threads(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    timed_notify(n, failure(0, kind="retry", run_id="manual__1", try_number=1))  # no incident yet: recorded only
    assert slack.posted() == []
    timed_notify(n, failure(1, try_number=2))  # final failure: posted, with the earlier try
    timed_notify(n, failure(2, kind="retry", try_number=1))  # next run's retry: a quiet reply in its thread
    timed_notify(n, failure(2, try_number=2))  # same failure again: suppressed
    res = timed_notify(n, failure(3, kind="recovered", error="", try_number=1))
    timed_notify(n, failure(4))  # relapse after recovery: announced again
    posted = slack.posted()
    first_ts = slack.ts_of(0)
    assert [(p["text"].split(":")[0], p.get("thread_ts")) for p in posted] == [
        ("🔴 Task failed", None),
        ("🟠 Try 1/2 failed, will retry (run manual__2)", first_ts),
        ("✅ Recovered", first_ts),
        ("🔴 Task failed", None),
    ]
    earlier = next(b for b in posted[0]["blocks"] if b.get("text", {}).get("text", "").startswith("*Earlier tries*"))
    assert earlier["text"]["text"] == (
        "*Earlier tries*\n• try 1 at 2026-01-01T00:00:00: Database Error in model "
        "fct_payments (query id 1000) at 2026-01-01T00:00:00Z"
    )
    assert posted[2]["text"] == (
        "✅ Recovered: dbt_finance.dbt_build succeeded in run manual__3 (try 1); failing "
        "since 2026-01-01T00:01:00, 2 failures · <http://airflow.local/log/1|log>"
    )
    assert res.routes == ["finance"]
    # the failure's message is rewritten as resolved
    assert len(slack.updated()) == 1 and slack.updated()[0]["ts"] == first_ts
    assert slack.updated()[0]["text"].startswith("✅ Resolved: Task failed: dbt_finance.dbt_build (run manual__1")
    assert [i["resolved_at"] is not None for i in n.outbox.incidents()] == [True, False]
    assert smtp.received == []


def test_success_without_an_open_incident_sends_nothing(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    assert n.outbox.open_incident_routes("dbt_finance", "dbt_build") == []
    res = timed_notify(n, failure(0, kind="recovered", error=""))
    assert res.routes == [] and slack.posted() == [] and n.outbox.rows() == []


def test_recovery_answers_the_failure_email_when_the_failure_went_by_email(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path)
    slack.mode = "500"
    timed_notify(n, failure(1))  # Slack down: the e-mail fallback goes
    slack.mode = "ok"
    timed_notify(n, failure(2, kind="recovered", error=""))
    assert [m.message()["Subject"] for m in smtp.received] == [
        "[Airflow] 🔴 Task failed: dbt_finance.dbt_build (try 1/2)",
        "[Airflow] ✅ Recovered: dbt_finance.dbt_build (try 1/2)",
    ]
    assert smtp.received[1].message()["In-Reply-To"] == smtp.received[0].message()["Message-ID"]
    # the failure's Slack row is still pending (redelivered later); the recovery waits for it,
    # then goes in its thread
    n.redeliver(include_future=True)
    n.redeliver(include_future=True)
    assert [p["text"].split(":")[0] for p in slack.posted()] == ["🔴 Task failed", "✅ Recovered"]
    assert slack.posted()[1]["thread_ts"] == slack.ts_of(0)


def test_a_storm_of_failures_is_grouped_in_one_thread(slack, smtp, tmp_path):
    n = notifier(slack, smtp, tmp_path, storm={"threshold": 3, "window_s": 600})
    for i in range(7):
        timed_notify(n, other(i, dag_id=f"meltano_tap_{i}", error=f"source {i} unreachable"))
    posted = slack.posted()
    top = [p for p in posted if "thread_ts" not in p]
    assert [p["text"].split(":")[0] for p in top] == ["🔴 Task failed"] * 3 + ["🌩️ Failure storm on route default"]
    storm_ts = slack.ts_of(3)
    threaded = [p for p in posted if p.get("thread_ts") == storm_ts]
    assert [p["text"].split(" (")[0] for p in threaded] == [f"🔴 Task failed: meltano_tap_{i}.run" for i in range(3, 7)]
    assert top[3]["text"].startswith("🌩️ Failure storm on route default: more than 3 failures within 10 min")
    # a new window: top level again
    timed_notify(n, other(20, dag_id="meltano_tap_late", occurred_at=datetime(2026, 1, 1, 1, 0, tzinfo=UTC)))
    assert "thread_ts" not in slack.posted()[-1]
