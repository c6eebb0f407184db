"""alerting: the routing file's typed schema. Every bad shape is refused at load time with a
message naming the file and the key path (several at once, never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.routing import RoutingConfig
from alerting.routing.checks import RoutingConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
GOOD_ROUTE = "  - name: finance\n    match: {dbt_tag: finance}\n    slack_channel: '#finance'\n"


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for name in ("ALERTING_QUIET", "ALERTING_SLACK_BASE_URL", "ALERTING_SMTP_HOST", "ALERTING_SMTP_PORT"):
        monkeypatch.delenv(name, raising=False)


def load_error(tmp_path: Path, text: str | bytes) -> RoutingConfigError:
    path = tmp_path / "alerting.yml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(RoutingConfigError) as info:
        RoutingConfig.load(path)
    err = info.value
    assert isinstance(err, ValueError)
    # no chained exception: nothing but the message is shown
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert "Traceback" not in str(err)
    for line in str(err).splitlines():
        assert line.startswith(f"{path}: "), line  # every line names the file
    return err


BAD_SHAPES = [
    # (what, file text, key path, message)
    ("quoted boolean", "quiet: 'false'\n", "quiet", "expected true or false, got 'false' (a string)"),
    ("boolean as number", "thread_replies: 1\n", "thread_replies", "expected true or false, got 1"),
    (
        "unknown top-level key",
        "quite: true\n",
        "quite",
        "unknown key (did you mean quiet? expected one of quiet, suppression_window_s, thread_replies, storm, "
        "notify_budget_s, retention_days, slack, email, owners, routes, default)",
    ),
    ("zero window", "suppression_window_s: 0\n", "suppression_window_s", "must be greater than 0, got 0"),
    ("negative window", "suppression_window_s: -5\n", "suppression_window_s", "must be greater than 0, got -5"),
    ("string number", "suppression_window_s: '3600'\n", "suppression_window_s", "expected a number, got '3600'"),
    ("infinite window", "suppression_window_s: .inf\n", "suppression_window_s", "expected a finite number"),
    ("storm threshold zero", "storm: {threshold: 0}\n", "storm.threshold", "must be at least 1, got 0"),
    ("storm threshold float", "storm: {threshold: 2.5}\n", "storm.threshold", "expected a whole number, got 2.5"),
    ("storm window negative", "storm: {window_s: -1}\n", "storm.window_s", "must be greater than 0"),
    (
        "storm unknown key",
        "storm: {treshold: 3}\n",
        "storm.treshold",
        "unknown key (did you mean threshold? expected one of threshold, window_s)",
    ),
    ("storm not a mapping", "storm: 5\n", "storm", "expected a mapping (key: value), got 5"),
    ("slack timeout zero", "slack: {timeout_s: 0}\n", "slack.timeout_s", "must be greater than 0"),
    ("slack unknown key", "slack: {channel: '#x'}\n", "slack.channel", "unknown key (expected one of token_env, "),
    ("slack token", "slack: {token: xoxb-123456789}\n", "slack.token", "secrets do not belong in the routing config"),
    ("slack url", "slack: {url: 'https://hooks.slack.com/x'}\n", "slack.url", "secrets do not belong"),
    ("slack webhook_url", "slack: {webhook_url: 'https://h/x'}\n", "slack.webhook_url", "name webhook_env"),
    ("email password", "email: {password: hunter2hunter2}\n", "email.password", "name password_env"),
    ("token pasted as env name", "slack: {token_env: xoxb-1234-abcd}\n", "slack.token_env", "an environment variable"),
    ("base_url not a URL", "slack: {base_url: localhost:9}\n", "slack.base_url", "expected an http(s):// URL"),
    ("smtp port range", "email: {smtp_port: 70000}\n", "email.smtp_port", "must be at most 65535"),
    ("smtp port zero", "email: {smtp_port: 0}\n", "email.smtp_port", "must be at least 1"),
    ("smtp port string", "email: {smtp_port: '25'}\n", "email.smtp_port", "expected a whole number"),
    ("email timeout negative", "email: {timeout_s: -3}\n", "email.timeout_s", "must be greater than 0"),
    ("starttls string", "email: {starttls: 'yes'}\n", "email.starttls", "expected true or false"),
    ("email unknown key", "email: {smtp_server: x}\n", "email.smtp_server", "unknown key ("),
    ("retention zero", "retention_days: 0\n", "retention_days", "must be greater than 0"),
    ("budget negative", "notify_budget_s: -1\n", "notify_budget_s", "must be greater than 0"),
    ("owners value mapping", "owners: {a@example.com: {slack: U1}}\n", "owners.a@example.com", "a Slack user id"),
    ("owners value not an id", "owners: {a@example.com: alice}\n", "owners.a@example.com", "a Slack user id"),
    ("owners key not an e-mail", "owners: {alice: U0ALICE}\n", "owners.alice (the key)", "an e-mail address"),
    (
        "match key typo",
        "routes:\n" + GOOD_ROUTE + "  - name: b\n    match: {dbt_tags: x}\n    slack_channel: '#b'\n",
        "routes[1].match.dbt_tags",
        "unknown key (did you mean dbt_tag? expected one of dbt_tag, dag_tag, dag_id)",
    ),
    ("route without match", "routes:\n  - name: a\n    slack_channel: '#a'\n", "routes[0].match", "required"),
    ("empty match", "routes:\n  - {name: a, match: {}, slack_channel: '#a'}\n", "routes[0].match", "at least one of"),
    (
        "empty pattern list",
        "routes:\n  - {name: a, match: {dag_id: []}, slack_channel: '#a'}\n",
        "routes[0].match.dag_id",
        "must not be empty",
    ),
    ("route nowhere", "routes:\n  - {name: a, match: {dag_id: x}}\n", "routes[0]", "needs slack_channel or emails"),
    (
        "route unknown key",
        "routes:\n  - {name: a, match: {dag_id: x}, channel: '#a'}\n",
        "routes[0].channel",
        "unknown key (did you mean slack_channel? expected one of slack_channel, emails, email_mode, name, match)",
    ),
    (
        "email_mode",
        "routes:\n  - {name: a, match: {dag_id: x}, emails: [a@x.io], email_mode: sometimes}\n",
        "routes[0].email_mode",
        "expected fallback or always, got 'sometimes'",
    ),
    ("comma in address", "default: {emails: ['a@x.io,b@x.io']}\n", "default.emails[0]", "expected an e-mail address"),
    ("address not a string", "default: {emails: [42]}\n", "default.emails[0]", "expected a string, got 42"),
    ("channel not a string", "default: {slack_channel: 123}\n", "default.slack_channel", "expected a string"),
    ("default with match", "default: {match: {dag_id: x}, slack_channel: '#a'}\n", "default.match", "unknown key"),
    (
        "duplicate route names",
        "routes:\n" + GOOD_ROUTE + GOOD_ROUTE,
        "routes[1].name",
        "duplicate route name 'finance' (also routes[0])",
    ),
    (
        "reserved route name",
        "routes:\n  - {name: default, match: {dag_id: x}, slack_channel: '#a'}\n",
        "routes[0].name",
        "'default' is reserved",
    ),
    ("routes not a list", "routes: {name: a}\n", "routes", "expected a list"),
]


@pytest.mark.parametrize("what, text, key, message", BAD_SHAPES, ids=[b[0] for b in BAD_SHAPES])
def test_bad_shape_is_refused_naming_file_and_key(tmp_path, what, text, key, message):
    err = load_error(tmp_path, text)
    prefix = f"{tmp_path / 'alerting.yml'}: {key}: "
    assert any(line.startswith(prefix) and message in line for line in str(err).splitlines()), str(err)
    assert any(k == key and message in m for k, m in err.problems)


def test_secrets_are_never_echoed(tmp_path):
    err = load_error(
        tmp_path,
        "slack: {token: xoxb-secret-1111, token_env: xoxb-secret-2222}\nemail: {password: hunter2-secret-3333}\n",
    )
    assert len(err.problems) == 3
    for secret in ("xoxb-secret-1111", "xoxb-secret-2222", "hunter2-secret-3333"):
        assert secret not in str(err)


def test_every_problem_is_reported_at_once(tmp_path):
    err = load_error(
        tmp_path,
        "quiet: 'false'\nstorm: {threshold: 0}\nslack: {timeout_s: -1}\nroutes:\n"
        + GOOD_ROUTE
        + GOOD_ROUTE.replace("dbt_tag", "dbt_tags"),
    )
    assert [k for k, _ in err.problems] == [
        "quiet",
        "storm.threshold",
        "slack.timeout_s",
        "routes[1].match.dbt_tags",
        "routes[1].name",
    ]
    assert len(str(err).splitlines()) == 5


@pytest.mark.parametrize(
    "data, message",
    [
        # the wording of the one YAML loader (alerting/routing/yaml_file.py), as for orchestration.yml
        (
            b"quiet: true\nowners: {a@example.com: U0A\xff}\n",
            "line 2: owners.a@example.com: not UTF-8 (byte 0xff at offset 39): save the file as UTF-8",
        ),
        ("routes: [\n", "line 2, column 1: not valid YAML:"),
        ("quiet: true\n  bad: indent\n", "line 2, column 6: not valid YAML:"),
        ("quiet: true\nquiet: false\n", "line 2, column 1: quiet: key appears twice (first on line 1)"),
        ("- just\n- a list\n", "expected a mapping of settings at the top level, got a list"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, data, message):
    err = load_error(tmp_path, data)
    assert str(err) == f"{tmp_path / 'alerting.yml'}: {message}" or str(err).startswith(
        f"{tmp_path / 'alerting.yml'}: {message}"
    )


def test_missing_file(tmp_path):
    with pytest.raises(RoutingConfigError, match=r"missing\.yml: file not found$"):
        RoutingConfig.load(tmp_path / "missing.yml")
    with pytest.raises(RoutingConfigError, match=r"missing\.yml: file not found$"):
        RoutingConfig.load(str(tmp_path / "missing.yml"))


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("ALERTING_QUIET", "maybe", "expected 1/0, true/false, yes/no or on/off, got 'maybe'"),
        ("ALERTING_SMTP_PORT", "abc", "expected a port number 1-65535, got 'abc'"),
        ("ALERTING_SMTP_PORT", "99999", "expected a port number 1-65535, got '99999'"),
        ("ALERTING_SMTP_HOST", "mail host", "expected a host name or address, got 'mail host'"),
        ("ALERTING_SLACK_BASE_URL", "127.0.0.1:9/api", "expected an http(s):// URL"),
    ],
)
def test_invalid_env_override_names_the_variable(tmp_path, monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    err = load_error(tmp_path, "quiet: false\n")
    assert str(err) == f"{tmp_path / 'alerting.yml'}: {var} (environment): {message}"


def test_env_overrides_still_apply(tmp_path, monkeypatch):
    (tmp_path / "alerting.yml").write_text("quiet: true\nemail: {smtp_host: mail.example.com, smtp_port: 25}\n")
    monkeypatch.setenv("ALERTING_QUIET", "0")
    monkeypatch.setenv("ALERTING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ALERTING_SMTP_PORT", "2525")
    monkeypatch.setenv("ALERTING_SLACK_BASE_URL", "http://127.0.0.1:9/api/")
    cfg = RoutingConfig.load(tmp_path / "alerting.yml")
    assert (cfg.quiet, cfg.email.smtp_host, cfg.email.smtp_port, cfg.slack.base_url) == (
        False,
        "127.0.0.1",
        2525,
        "http://127.0.0.1:9/api/",
    )
    monkeypatch.setenv("ALERTING_QUIET", "yes")
    assert RoutingConfig.load(tmp_path / "alerting.yml").quiet


def test_the_repository_file_and_its_defaults(tmp_path):
    cfg = RoutingConfig.load(REPO_ROOT / "alerting.yml")
    assert [r.name for r in cfg.routes] == ["finance", "marketing", "ingestion"]
    assert cfg.routes[2].email_mode == "always" and cfg.routes[0].match == {"dbt_tag": ["finance"]}
    assert (cfg.notify_budget_s, cfg.retention_days) == (10.0, 30.0)
    # empty sections (YAML null) are empty, as before; one string is a list of one
    (tmp_path / "a.yml").write_text(
        "slack:\nowners:\nroutes:\n  - {match: {dag_tag: meltano}, emails: a@example.com}\n"
    )
    cfg = RoutingConfig.load(tmp_path / "a.yml")
    assert (cfg.routes[0].name, cfg.routes[0].emails, cfg.routes[0].match) == (
        "route0",
        ["a@example.com"],
        {"dag_tag": ["meltano"]},
    )
    assert cfg.slack.token_env == "SLACK_BOT_TOKEN" and cfg.owners == {}


def test_from_dict_names_its_source():
    with pytest.raises(RoutingConfigError) as info:
        RoutingConfig.from_dict({"quiet": "false"}, source="orchestration test")
    assert str(info.value) == "orchestration test: quiet: expected true or false, got 'false' (a string)"
    with pytest.raises(RoutingConfigError, match=r"^routing config: slack.token: secrets do not belong"):
        RoutingConfig.from_dict({"slack": {"token": "xoxb-nope"}})
