"""alerting.airflow and alerting.lateness without a scheduler: the callback adapter turns Airflow
contexts into alerts (through a real Notifier, outbox and local Slack/SMTP servers), never raises,
and lateness names what did not arrive. The scheduler-driven path is in test_e2e_airflow.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from alerting_fakes import FakeSlack, FakeSMTP

from alerting.airflow import AirflowAlerts, alert_from_context
from alerting.delivery import Notifier
from alerting.lateness import Expectation, late_alerts
from alerting.outbox import Outbox
from alerting.routing import RoutingConfig

UTC = UTC
TOKEN = "xoxb-adapter-test"
T0 = datetime(2026, 3, 1, 0, 0, 5, tzinfo=UTC)


@pytest.fixture
def sinks():
    with FakeSlack(tokens={TOKEN}) as slack, FakeSMTP() as smtp:
        yield slack, smtp


def routing(fake_slack, smtp, **over) -> RoutingConfig:
    d = {
        "slack": {"token_env": "ADAPTER_SLACK_TOKEN", "base_url": fake_slack.api_url, "timeout_s": 1},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "sender": "af@example.com"},
        "routes": [
            {"name": "finance", "match": {"dbt_tag": "finance"}, "slack_channel": "#fin", "emails": ["fin@example.com"]}
        ],
        "default": {"slack_channel": "#alerts", "emails": ["data@example.com"]},
    }
    d.update(over)
    return RoutingConfig.from_dict(d)


def context(dag_id="dbt_finance", task_id="dbt_build", try_number=2, retries=1, exception=None, tags=("dbt",), **extra):
    ti = SimpleNamespace(
        dag_id=dag_id,
        task_id=task_id,
        run_id="scheduled__2026-03-01",
        try_number=try_number,
        start_date=T0,
        end_date=T0 + timedelta(seconds=42),
        state="failed",
        log_url="http://airflow.local/dags/dbt_finance/runs/x/tasks/dbt_build?try_number=2",
    )
    return {
        "ti": ti,
        "task": SimpleNamespace(retries=retries),
        "dag": SimpleNamespace(dag_id=dag_id, tags=list(tags)),
        "exception": exception,
        **extra,
    }


class DbtFailed(RuntimeError):
    def __init__(self):
        super().__init__("dbt build --select tag:finance failed\n  test test.shop.x: fail: Got 1 result")
        self.alert_context = {
            "error": "dbt build: 1 failed (test x)",
            "dbt": {
                "tag": "finance",
                "failures": [
                    {"name": "x", "resource_type": "test", "owners": ["fin@example.com"], "message": "Got 1 result"}
                ],
            },
        }


def test_context_becomes_an_alert_with_the_tasks_own_summary():
    alert = alert_from_context("task_failed", context(exception=DbtFailed()))
    assert (alert.dag_id, alert.task_id, alert.try_number, alert.max_tries, alert.duration_s) == (
        "dbt_finance",
        "dbt_build",
        2,
        2,
        42.0,
    )
    assert alert.error == "dbt build: 1 failed (test x)" and alert.dbt.tag == "finance"
    assert alert.dbt.failures[0].owners == ["fin@example.com"]
    assert alert.log_url.startswith("http://airflow.local/")
    killed = alert_from_context("task_failed", context(exception=None))
    assert killed.error.startswith("The task ended without reporting an error (state failed)")


def test_callbacks_deliver_and_never_raise(sinks, tmp_path, monkeypatch):
    slack, smtp = sinks
    monkeypatch.setenv("ADAPTER_SLACK_TOKEN", TOKEN)
    outbox = Outbox(f"sqlite:///{tmp_path / 'o.db'}")
    alerts = AirflowAlerts(notifier_factory=lambda: Notifier(routing(slack, smtp), outbox))
    alerts.on_task_retry(context(try_number=1, exception=DbtFailed()))  # recorded: no incident yet
    alerts.on_task_failure(context(exception=DbtFailed()))
    alerts.on_dag_failure(context(reason="task_failure"))  # covered by the task alert
    alerts.on_task_success(context(dag_id="dbt_core", try_number=1))  # nothing failed there
    assert [(m["channel"], m["text"].split(":")[0]) for m in slack.posted()] == [("#fin", "🔴 Task failed")]
    alerts.on_task_success(context(try_number=1))  # the recovery, in the thread
    assert slack.posted()[1]["thread_ts"] == slack.ts_of(0)
    alerts.on_dag_failure(
        {
            "dag": SimpleNamespace(dag_id="dbt_finance", tags=["dbt", "dbt_tag:finance"]),
            "run_id": "r1",
            "reason": "timed_out",
        }
    )
    assert slack.posted()[2]["text"].startswith("🔴 DAG failed: dbt_finance (run r1): DAG run failed: timed_out")
    assert slack.posted()[2]["channel"] == "#fin"  # routed by the DAG's dbt_tag
    # a broken notifier (unreadable config) must not raise into Airflow
    broken = AirflowAlerts(config=tmp_path / "missing.yml")
    broken.on_task_failure(context(exception=DbtFailed()))
    broken.on_task_success(context())


def test_slack_token_from_an_airflow_connection_through_the_slack_provider(sinks, tmp_path, monkeypatch):
    slack, smtp = sinks
    # loaded before the alert, as in a task process (Airflow's first import takes longer than the
    # 10 s notify budget on a busy machine, and the budget now holds whatever the time goes to)
    import airflow.providers.slack.hooks.slack  # noqa: F401

    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_E2E",
        json.dumps({"conn_type": "slack", "password": TOKEN, "extra": {"base_url": slack.api_url}}),
    )
    cfg = routing(slack, smtp, slack={"token_env": None, "token_conn_id": "slack_e2e", "timeout_s": 1})
    res = Notifier(cfg, Outbox(f"sqlite:///{tmp_path / 'o.db'}")).notify(
        alert_from_context("task_failed", context(exception=DbtFailed()))
    )
    assert res.delivered and [m["channel"] for m in slack.posted()] == ["#fin"]
    assert slack.messages[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert smtp.received == []


def test_without_any_slack_credentials_alerts_go_by_email(sinks, tmp_path, monkeypatch):
    slack, smtp = sinks
    monkeypatch.delenv("ADAPTER_SLACK_TOKEN", raising=False)
    n = Notifier(routing(slack, smtp), Outbox(f"sqlite:///{tmp_path / 'o.db'}"))
    res = n.notify(alert_from_context("task_failed", context(exception=DbtFailed())))
    assert res.delivered and slack.requests == []
    assert [r.rcpt_tos for r in smtp.received] == [["fin@example.com"]]
    assert {r["kind"] for r in n.outbox.rows()} == {"email"}  # no Slack row left pending forever


def test_mail_sink_keeps_every_message(tmp_path):
    from alerting.delivery.email_sender import EmailSender
    from alerting.mailsink import MailSink
    from alerting.rendering.email_message import render_email
    from alerting.routing.credentials import EmailSettings

    with MailSink(tmp_path / "mail", port=0) as sink:
        EmailSender(EmailSettings(smtp_host="127.0.0.1", smtp_port=sink.port)).send(
            ["a@example.com"], render_email(alert_from_context("task_failed", context(exception=DbtFailed())))
        )
    [eml] = sorted((tmp_path / "mail").glob("*.eml"))
    assert b"Subject: [Airflow] =?utf-8?" in eml.read_bytes() or b"Task failed" in eml.read_bytes()
    assert "to=a@example.com" in (tmp_path / "mail" / "index.txt").read_text()


# ------------------------------------------------------------------ lateness


def _expect(**over) -> Expectation:
    kw = dict(
        dag_id="dbt_marketing",
        upstream=("analytics.fct_orders", "raw_marketing.ad_spend", "raw_marketing.campaigns"),
        outlets=("analytics.marketing_campaign_performance",),
        within=timedelta(hours=4),
        dag_tags=("dbt", "dbt_tag:marketing"),
        dbt_tag="marketing",
    )
    kw.update(over)
    return Expectation(**kw)


def test_late_names_the_assets_that_did_not_arrive():
    events = {"analytics.fct_orders": T0 + timedelta(minutes=20), "raw_marketing.ad_spend": T0 - timedelta(days=1)}
    alerts = late_alerts([_expect()], cycle_start=T0, now=T0 + timedelta(hours=5), last_event=events.get)
    [a] = alerts
    assert a.kind == "late" and a.dag_id == "dbt_marketing" and a.task_id is None
    assert a.extra["missing_assets"] == ["raw_marketing.ad_spend", "raw_marketing.campaigns"]
    assert a.error == (
        "dbt_marketing has not run 4h 0m after the cycle began; waiting for: "
        "raw_marketing.ad_spend, raw_marketing.campaigns"
    )
    assert a.occurred_at == T0 + timedelta(hours=4)  # the deadline: re-checks give the same alert id
    again = late_alerts([_expect()], cycle_start=T0, now=T0 + timedelta(hours=6), last_event=events.get)
    assert again[0].alert_id() == a.alert_id()


def test_not_late_before_the_deadline_or_once_it_ran():
    ran = {"analytics.marketing_campaign_performance": T0 + timedelta(hours=1)}
    assert late_alerts([_expect()], cycle_start=T0, now=T0 + timedelta(hours=3), last_event=lambda a: None) == []
    assert late_alerts([_expect()], cycle_start=T0, now=T0 + timedelta(hours=5), last_event=ran.get) == []
    stale = {"analytics.marketing_campaign_performance": T0 - timedelta(hours=1)}  # last cycle's run
    assert len(late_alerts([_expect()], cycle_start=T0, now=T0 + timedelta(hours=5), last_event=stale.get)) == 1


def test_late_alert_routes_by_tag_and_resolves_on_the_dags_success(sinks, tmp_path, monkeypatch):
    slack, smtp = sinks
    monkeypatch.setenv("ADAPTER_SLACK_TOKEN", TOKEN)
    n = Notifier(
        routing(slack, smtp, routes=[{"name": "mkt", "match": {"dbt_tag": "marketing"}, "slack_channel": "#mkt"}]),
        Outbox(f"sqlite:///{tmp_path / 'o.db'}"),
    )
    [late] = late_alerts([_expect()], cycle_start=T0, now=T0 + timedelta(hours=5), last_event=lambda a: None)
    n.notify(late)
    n.notify(late)  # the next check: same alert, nothing new
    assert [m["channel"] for m in slack.posted()] == ["#mkt"]
    alerts = AirflowAlerts(notifier_factory=lambda: n)
    alerts.on_dag_success(
        {"dag": SimpleNamespace(dag_id="dbt_marketing", tags=[]), "run_id": "r9", "reason": "success"}
    )
    assert slack.posted()[1]["thread_ts"] == slack.ts_of(0)
    assert slack.posted()[1]["text"].startswith("✅ Recovered: dbt_marketing succeeded in run r9; failing since ")
