"""alerting: outbox retention on SQLite and PostgreSQL. redeliver() prunes finished rows and
resolved incidents older than `retention_days`, in bounded batches, and never a pending row or
the first message of a still-open incident."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from alerting_fakes import FakeSlack, FakeSMTP
from sqlalchemy import func, insert, select

from alerting.delivery import Notifier
from alerting.events import Alert
from alerting.outbox import Outbox
from alerting.outbox.tables import deliveries, incidents, utcnow
from alerting.routing import RoutingConfig

TOKEN = "xoxb-retention-3c1f"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # alerts of the last hour


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'o.db'}"
        return
    import socket

    from sqlalchemy import create_engine, text

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        pytest.skip("postgres not reachable on 127.0.0.1:5432 (start with: scripts/services.sh start)")
    base = "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/postgres"
    schema = f"alerting_retention_{int(time.time() * 1000)}"
    with create_engine(base).begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with create_engine(base).begin() as c:
        c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def sinks(monkeypatch):
    monkeypatch.setenv("RETENTION_SLACK_TOKEN", TOKEN)
    monkeypatch.delenv("ALERTING_QUIET", raising=False)
    with FakeSlack(tokens={TOKEN}) as slack, FakeSMTP() as smtp:
        yield slack, smtp


def notifier(slack, smtp, url: str, **over) -> Notifier:
    cfg = {
        "slack": {"token_env": "RETENTION_SLACK_TOKEN", "base_url": slack.api_url, "timeout_s": 1},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "timeout_s": 2},
        "default": {"slack_channel": "#data-alerts"},
        **over,
    }
    return Notifier(RoutingConfig.from_dict(cfg), Outbox(url))


def alert(dag: str, kind: str = "task_failed", minutes: int = 0, **over) -> Alert:
    return Alert(
        kind=kind,
        dag_id=dag,
        task_id="t",
        run_id=f"r{minutes}",
        error="" if kind == "recovered" else f"{dag} broke",
        occurred_at=T0 + timedelta(minutes=minutes),
        **over,
    )


def test_redeliver_prunes_what_is_older_than_the_retention(sinks, url):
    slack, smtp = sinks
    n = notifier(slack, smtp, url, retention_days=30)
    n.notify(alert("resolved_dag"))  # sent, then resolved by the next success
    n.notify(alert("resolved_dag", "recovered", 5))
    n.notify(alert("still_failing"))  # sent; its incident stays open
    slack.mode = "500"
    n.notify(alert("undelivered"))  # Slack down: stays pending
    slack.mode = "ok"
    n.notify(alert("resolved_dag", "retry", 10))  # recorded only (no open incident)
    before = sorted((r["dag_id"], r["kind"], r["status"]) for r in n.outbox.rows())
    assert before == [
        ("resolved_dag", "record", "recorded"),
        ("resolved_dag", "slack", "sent"),
        ("resolved_dag", "slack", "sent"),
        ("still_failing", "slack", "sent"),
        ("undelivered", "slack", "pending"),
    ]
    # within the retention: nothing goes
    assert n.redeliver() == [] and n.last_prune == {"deliveries": 0, "incidents": 0, "dedup": 0, "storms": 0}
    assert len(n.outbox.rows()) == 5
    # 31 days on (redeliver() at that time: the Slack row is due and still failing)
    slack.mode = "500"
    later = utcnow() + timedelta(days=31)
    assert [(r.kind, r.status) for r in n.redeliver(later)] == [("slack", "pending")]
    assert n.last_prune == {"deliveries": 3, "incidents": 1, "dedup": 2, "storms": 1}
    assert sorted((r["dag_id"], r["kind"], r["status"]) for r in n.outbox.rows()) == [
        ("still_failing", "slack", "sent"),  # the open incident's message: its recovery answers in its thread
        ("undelivered", "slack", "pending"),  # never pruned
    ]
    assert sorted((i["dag_id"], i["resolved_at"] is None) for i in n.outbox.incidents()) == [
        ("still_failing", True),
        ("undelivered", True),
    ]
    # the open incident still resolves in its thread
    slack.mode = "ok"
    n.notify(alert("still_failing", "recovered", 20))
    assert slack.posted()[-1]["thread_ts"] == n.outbox.rows(dag_id="still_failing", kind="slack")[0]["slack_ts"]
    n.outbox.engine.dispose()


def test_pruning_is_bounded_per_call(url):
    outbox = Outbox(url)
    old = utcnow() - timedelta(days=40)
    rows = [
        {
            "alert_id": f"a{i}",
            "signature": "s",
            "route": "default",
            "kind": "slack",
            "target": "#c",
            "status": "sent",
            "attempts": 1,
            "next_attempt_at": old,
            "created_at": old,
            "sent_at": old,
            "repeat_count": 1,
            "payload": "{}",
        }
        for i in range(2500)
    ]
    resolved = [
        {
            "dag_id": f"d{i}",
            "task_id": "t",
            "route": "default",
            "alert_kind": "task_failed",
            "first_alert_id": f"a{i}",
            "opened_at": old,
            "last_seen": old,
            "count": 1,
            "resolved_at": old,
            "resolved_by": "x",
        }
        for i in range(1200)
    ]
    with outbox.engine.begin() as c:
        c.execute(insert(deliveries), rows)
        c.execute(insert(incidents), resolved)
    cutoff = utcnow() - timedelta(days=30)
    counts = []
    for _ in range(4):
        t0 = time.monotonic()
        counts.append(outbox.prune(cutoff, limit=1000))
        assert time.monotonic() - t0 < 5
    assert [(c["deliveries"], c["incidents"]) for c in counts] == [(1000, 1000), (1000, 200), (500, 0), (0, 0)]
    with outbox.engine.begin() as c:
        assert c.execute(select(func.count()).select_from(deliveries)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(incidents)).scalar_one() == 0
    outbox.engine.dispose()
