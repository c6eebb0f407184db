"""Secrets never leave (issue 18, item 1): a corpus of the secret shapes real error messages carry,
each sent through `Notifier.notify()` to the local Slack-compatible server and the real SMTP
server (tests/alerting_fakes.py) and checked in the exact Slack request body, the e-mail and the
outbox row; a corpus of non-secrets (UUIDs, git SHAs, run ids, paths, dbt unique_ids, Asset
URIs) that must survive unmasked in all three; properties that hold on any such input; and
Airflow's own secrets masker, when Airflow is loaded."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest
from alerting_fakes import FakeSlack, FakeSMTP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.delivery import Notifier
from alerting.events import Alert, DbtContext, DbtFailure, MeltanoContext
from alerting.outbox import Outbox
from alerting.redaction import redact
from alerting.routing.config import RoutingConfig

TOKEN = "xoxb-redaction-bot-token-77"


@dataclass(frozen=True)
class Shape:
    text: str  # a line of an error message, as a tool would print it
    secrets: tuple[str, ...]  # what must not be anywhere in what leaves
    env: dict[str, str] = field(default_factory=dict)  # the environment that makes it a secret


# Made-up credentials in the shapes real ones have (none of them works anywhere).
SECRETS: dict[str, Shape] = {
    "slack bot token": Shape(
        "chat.postMessage with xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx: invalid_auth",
        ("123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",),
    ),
    "slack user token": Shape(
        "token=xoxp-2233445566-7788990011-1122334455-aabbccddeeff00112233445566778899",
        ("2233445566-7788990011-1122334455-aabbccddeeff00112233445566778899",),
    ),
    "slack app token": Shape(
        "socket mode refused xapp-1-A01BCDE2FGH-1234567890123-0123456789abcdef0123456789abcdef",
        ("1-A01BCDE2FGH-1234567890123-0123456789abcdef0123456789abcdef",),
    ),
    "slack refresh token": Shape(
        "rotation failed for xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAtMTIzNDU2Nzg5MA", ("1-Mi0yLTEyMzQ1Njc4OTAtMTIzNDU2Nzg5MA",)
    ),
    "slack webhook url": Shape(
        "POST https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/abcdefghijklmnopqrstuvwx returned 404",
        ("T0A1B2C3D/B4E5F6G7H/abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
    ),
    "url password with @": Shape(
        "could not connect to postgresql://u:p@ss-word@db.internal/x", ("p@ss-word", "ss-word@db")
    ),
    "url password with /": Shape(
        "could not connect to postgresql://etl:pa/ss-w0rd@db.internal:5432/wh", ("pa/ss-w0rd", "ss-w0rd@")
    ),
    "url password plain": Shape("mysql://root:hunter2-maria-9@127.0.0.1:3306/shop refused", ("hunter2-maria-9",)),
    "dsn password=": Shape(
        "connection to server failed: host=db port=5432 user=etl password=Sup3rS3cret-dsn dbname=wh",
        ("Sup3rS3cret-dsn",),
    ),
    "dsn password quoted": Shape("dsn host=db password='with a space 42' user=etl", ("with a space 42",)),
    "aws access key id": Shape("The AWS Access Key Id AKIAIOSFODNN7EXAMPLE does not exist", ("AKIAIOSFODNN7EXAMPLE",)),
    "aws secret access key": Shape(
        'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",),
    ),
    "jwt": Shape(
        "Authorization failed for eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ("eyJzdWIiOiIxMjM0NTY3ODkwIn0", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ),
    "json password": Shape('request body {"user": "etl", "password": "hunter2-json"} rejected', ("hunter2-json",)),
    "json token": Shape('{"token": "tok-5d1e8f0a77", "expires": 3600}', ("tok-5d1e8f0a77",)),
    "python dict api_key": Shape("config {'api_key': 'k3y-val-98765', 'region': 'eu'}", ("k3y-val-98765",)),
    "bearer token": Shape(
        "HTTP 401 with header Authorization: Bearer 9f8e7d6c5b4a39281706abcdef", ("9f8e7d6c5b4a39281706abcdef",)
    ),
    "basic auth header": Shape(
        "sent Authorization: Basic ZXRsOnMzY3IzdC1iYXNpYw== and got 403", ("ZXRsOnMzY3IzdC1iYXNpYw==",)
    ),
    "github classic token": Shape(
        "git clone https://ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789@github.com/o/r failed",
        ("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ),
    "github fine-grained token": Shape(
        "GITHUB auth github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNO rejected",
        ("11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNO",),
    ),
    "gitlab token": Shape("remote: glpat-xY7zA1bC2dE3fG4hI5jK rejected", ("xY7zA1bC2dE3fG4hI5jK",)),
    "stripe live key": Shape("stripe: sk_live_4eC39HqLyjWDarjtT1zdp7dc invalid", ("4eC39HqLyjWDarjtT1zdp7dc",)),
    "sendgrid key": Shape(
        "mail via 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 failed",
        ("ngeVfQFYQlKU0ufo8x5d1A", "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr"),
    ),
    "npm token": Shape(
        "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
        ("npm_abcdefghijklmnopqrstuvwxyz0123456789",),
    ),
    "private key block": Shape(
        "key file: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAq7BFUpkGp3+nZdD\nQUZpOKhPrAe5x2M\n"
        "-----END RSA PRIVATE KEY-----",
        ("MIIEpAIBAAKCAQEAq7BFUpkGp3+nZdD", "QUZpOKhPrAe5x2M"),
    ),
    "twilio api key": Shape(
        "twilio SK0123456789abcdef0123456789abcdef refused", ("SK0123456789abcdef0123456789abcdef",)
    ),
    "azure storage key": Shape(
        "DefaultEndpointsProtocol=https;AccountName=wh;AccountKey=" + "A" * 86 + "==;EndpointSuffix=core.windows.net",
        ("A" * 86,),
    ),
    "mailchimp key": Shape(
        "mailchimp 0123456789abcdef0123456789abcdef-us12 bad", ("0123456789abcdef0123456789abcdef",)
    ),
    "*_PASS variable": Shape(
        "login failed after sending kX9-warehouse-pw", ("kX9-warehouse-pw",), {"WAREHOUSE_PASS": "kX9-warehouse-pw"}
    ),
    "*_PASSPHRASE variable": Shape(
        "unlocking with correct horse battery staple failed",
        ("correct horse battery staple",),
        {"SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "correct horse battery staple"},
    ),
    "*_APIKEY variable": Shape(
        "vendor said: key 0a1b2c3d4e-apikey unknown", ("0a1b2c3d4e-apikey",), {"VENDOR_APIKEY": "0a1b2c3d4e-apikey"}
    ),
    "*_TOKEN variable": Shape(
        "upload with dbt-cloud-tok-31337 failed", ("dbt-cloud-tok-31337",), {"DBT_CLOUD_TOKEN": "dbt-cloud-tok-31337"}
    ),
    "airflow connection password": Shape(
        "auth for user etl with conn-pw-from-airflow-7 failed",
        ("conn-pw-from-airflow-7",),
        {"AIRFLOW_CONN_WAREHOUSE": '{"conn_type": "postgres", "login": "etl", "password": "conn-pw-from-airflow-7"}'},
    ),
}

NON_SECRETS = {
    "uuid": "run 123e4567-e89b-12d3-a456-426614174000 failed",
    "uuid upper": "request id 9F8E7D6C-5B4A-4392-8170-6ABCDEF01234",
    "git sha": "at commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "short git sha": "dbt_project@5fb22c2 built",
    "scheduled run id": "scheduled__2026-01-01T00:00:00+00:00",
    "manual run id": "manual__2026-03-04T05:06:07.123456+00:00",
    "asset-triggered run id": "asset_triggered__2026-03-04T05:06:07.654321+00:00",
    "dag file path": "/opt/airflow/dags/dbt_finance.py",
    "model path": "dbt_project/models/marts/finance/fct_payments.sql",
    "dbt model unique_id": "model.shop.fct_orders",
    "dbt test unique_id": "test.shop.not_null_orders_order_id.5fb22c2710",
    "dbt source unique_id": "source.shop.raw_shop.orders",
    "duckdb asset uri": "duckdb:///var/warehouse.duckdb/analytics/fct_orders",
    "postgres asset uri": "postgres://db.internal:5432/warehouse/raw_shop/orders",
    "url with a user, no password": "postgresql://etl@db.internal/wh",
    "meltano state id": "dev:tap-shop-to-target-duckdb",
    "e-mail address": "owner alice@example.com",
    "timestamp": "2026-01-01T00:04:59.123+00:00",
    "dbt summary": "Done. PASS=5 WARN=0 ERROR=1 SKIP=0 TOTAL=6",
    "postgres auth failure": 'FATAL: password authentication failed for user "etl"',
    "bearer in prose": "the Bearer token expired",
    "log url": "http://localhost:8080/dags/dbt_finance/runs/manual__1/tasks/dbt_build?try_number=2",
    "sql": "select order_id, amount from raw_shop.orders where amount > 100",
    "asset name": "raw_shop.orders",
}


@pytest.fixture
def sinks():
    with FakeSlack(tokens={TOKEN}) as slack, FakeSMTP() as smtp:
        yield slack, smtp


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("REDACTION_SLACK_TOKEN", TOKEN)
    for name in ("ALERTING_QUIET", "ALERTING_SLACK_BASE_URL", "ALERTING_SMTP_HOST", "ALERTING_SMTP_PORT"):
        monkeypatch.delenv(name, raising=False)


def notifier(slack: FakeSlack, smtp: FakeSMTP, url: str) -> Notifier:
    config = {
        "slack": {"token_env": "REDACTION_SLACK_TOKEN", "base_url": slack.api_url, "timeout_s": 2},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "sender": "af@example.com", "timeout_s": 3},
        "default": {"slack_channel": "#data-alerts", "emails": ["data@example.com"], "email_mode": "always"},
    }
    return Notifier(RoutingConfig.from_dict(config), Outbox(url))


def alert_carrying(text: str) -> Alert:
    """An alert with the text where tasks put what they print: the error, a Meltano log line, a dbt
    failure's message and `extra`."""
    return Alert(
        kind="task_failed",
        dag_id="meltano_tap_shop",
        task_id="run",
        run_id="manual__1",
        try_number=1,
        error=f"the task failed:\n{text}\n(see the log)",
        meltano=MeltanoContext("tap-shop", "dev:tap-shop-to-target-duckdb", ["starting", text, "exit 1"]),
        dbt=DbtContext(failures=[DbtFailure("model.shop.fct_orders", message=text)]),
        extra={"detail": text},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def what_left(slack: FakeSlack, smtp: FakeSMTP, outbox: Outbox) -> dict[str, str]:
    """Everything that left, per destination: the exact Slack request bodies (and as decoded), the
    e-mail as sent (and its decoded parts), every outbox row (payload and error included)."""
    raw = "\n".join(r.raw.decode() for r in slack.requests)
    decoded = "\n".join(s for r in slack.requests for s in strings(r.body))
    mails = []
    for m in smtp.received:
        msg = BytesParser(policy=policy.default).parsebytes(m.content)
        parts = [msg.get_body((kind,)).get_content() for kind in ("plain", "html")]
        mails += [m.content.decode(errors="replace"), msg["Subject"], *parts]
    stored = []
    for row in outbox.rows():
        stored += [str(v) for v in row.values()]  # as stored (the payload is JSON text)
        stored += strings(json.loads(row["payload"]))  # and what that JSON holds
    return {
        "slack": raw + "\n" + decoded,
        "e-mail": "\n".join(mails).replace("\r\n", "\n"),
        "outbox": "\n".join(stored),
    }


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [str(value)]


@pytest.mark.parametrize("shape", list(SECRETS.values()), ids=list(SECRETS))
def test_no_secret_shape_reaches_slack_email_or_the_outbox(sinks, tmp_path, monkeypatch, shape):
    slack, smtp = sinks
    for name, value in shape.env.items():
        monkeypatch.setenv(name, value)
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    res = n.notify(alert_carrying(shape.text))
    assert res.delivered and len(slack.posted()) == 1 and len(smtp.received) == 1
    left = what_left(slack, smtp, n.outbox)
    assert "***" in left["slack"] and "***" in left["e-mail"] and "***" in left["outbox"]
    for where, text in left.items():
        for secret in shape.secrets:
            assert secret not in text, f"{secret!r} reached the {where}"


@pytest.mark.parametrize("text", list(NON_SECRETS.values()), ids=list(NON_SECRETS))
def test_what_is_not_a_secret_survives_unmasked(sinks, tmp_path, text):
    slack, smtp = sinks
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    res = n.notify(alert_carrying(text))
    assert res.delivered
    left = what_left(slack, smtp, n.outbox)
    for where in ("e-mail", "outbox"):
        assert text in left[where], f"{text!r} was changed in the {where}"
    # Slack's copy is mrkdwn-escaped (& < > become entities): compare it so
    assert text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in left["slack"]
    assert "***" not in json.dumps(slack.posted(), ensure_ascii=False)


def test_the_corpus_is_as_large_as_promised():
    assert len(SECRETS) >= 25 and len(NON_SECRETS) >= 20


# ------------------------------------------------------------------ properties


_HEX = "0123456789abcdef"
_ALNUM = string.ascii_letters + string.digits
_PROSE = st.text(alphabet=string.digits + " .,()", max_size=40)  # no word of its own that a rule reads


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.uuids(),
    st.text(alphabet=_HEX, min_size=40, max_size=40),
    st.text(alphabet=_HEX, min_size=7, max_size=12),
    st.datetimes(),
    st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
)
def test_ids_paths_and_uris_are_never_masked(uuid, sha, short_sha, when, name):
    for text in (
        str(uuid),
        str(uuid).upper(),
        sha,
        f"commit {short_sha}",
        f"scheduled__{when.isoformat()}+00:00",
        f"model.shop.{name}",
        f"/opt/airflow/dags/{name}.py",
        f"duckdb:///var/warehouse.duckdb/analytics/{name}",
        f"postgres://db:5432/warehouse/raw_shop/{name}",
    ):
        assert redact(text, []) == text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _PROSE,
    _PROSE,
    st.text(alphabet=_ALNUM, min_size=36, max_size=36),
    st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16, max_size=16),
    st.text(alphabet=_ALNUM + "@/!$%", min_size=4, max_size=24).filter(lambda p: p[0] not in "@/" and p[-1] != "@"),
    st.lists(st.text(alphabet=string.digits, min_size=8, max_size=13), min_size=2, max_size=3),
)
def test_secret_shapes_are_masked_in_any_surrounding_text(before, after, gh, aws, password, slack_parts):
    for text, masked in (
        (f"ghp_{gh}", "***"),
        (f"AKIA{aws}", "***"),
        (f"postgresql://etl:{password}@db.internal:5432/wh", "postgresql://etl:***@db.internal:5432/wh"),
        ("xoxb-" + "-".join(slack_parts), "xoxb-***"),
    ):
        assert redact(f"{before} {text} {after}", []) == f"{before} {masked} {after}"


# ------------------------------------------------------------------ Airflow's own masker


def test_airflows_masker_masks_what_airflow_was_told_about(tmp_path):
    """In a task process Airflow's masker knows the connection passwords it handed out
    (mask_secret) and the field names configured as sensitive: alerts mask them too."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker, mask_secret

    mask_secret("pw-only-airflow-knew-42")
    try:
        assert redact("login with pw-only-airflow-knew-42 failed", []) == "login with *** failed"
        cleaned = redact(json.dumps({"keyfile_dict": "{...}", "note": "ok"}), [])
        assert cleaned == '{"keyfile_dict": "***", "note": "ok"}'
    finally:
        _secrets_masker().reset_masker()
    assert redact("login with pw-only-airflow-knew-42 failed", []) == "login with pw-only-airflow-knew-42 failed"


def test_a_field_named_like_a_secret_is_masked_whatever_it_holds(sinks, tmp_path):
    slack, smtp = sinks
    n = notifier(slack, smtp, f"sqlite:///{tmp_path / 'o.db'}")
    alert = alert_carrying("nothing secret here")
    alert.extra = {"connection": {"host": "db", "password": "plain", "api_key": ["a1", "b2"]}, "rows": 5}
    assert n.notify(alert).delivered
    payload = json.loads(n.outbox.rows()[0]["payload"])
    assert payload["extra"]["connection"] == {"host": "db", "password": "***", "api_key": ["***", "***"]}
    assert payload["extra"]["rows"] == 5
