"""No silent configuration, and hostile input refused cleanly (issue 18, items 2 and 6, the alerting
parts; issue 19 item 6's one YAML loader).

Silent ones, each now said: a route pattern written as a regex (a warning naming the file and the
key, also in `orchestrator check`), owners that differ only in case (an error naming both keys),
a routing file with nowhere to send anything (a warning), an e-mail address with NUL, CR/LF or
header syntax (refused at load naming the file and the key, and never sent if one is in the
outbox already).

Probes of the kinds an adversarial review tried, in alerting.yml and in orchestration.yml (the
same YAML loader and message wording): each is refused with one line naming the file and the key,
within 5 s and 300 MB."""

from __future__ import annotations

import json
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
from alerting_fakes import FakeSlack, FakeSMTP

from alerting.delivery import Notifier
from alerting.events import Alert
from alerting.outbox import Outbox
from alerting.routing.checks import RoutingConfigError
from alerting.routing.config import RoutingConfig

ROUTE = {"name": "finance", "match": {"dbt_tag": "finance"}, "slack_channel": "#finance"}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for name in ("ALERTING_QUIET", "ALERTING_SLACK_BASE_URL", "ALERTING_SMTP_HOST", "ALERTING_SMTP_PORT"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, content: str | bytes | dict, name: str = "alerting.yml") -> Path:
    path = tmp_path / name
    if isinstance(content, dict):
        content = json.dumps(content)  # JSON is YAML; its escapes carry NUL and line breaks
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def load_error(path: Path) -> str:
    with pytest.raises(RoutingConfigError) as exc:
        RoutingConfig.load(path)
    return str(exc.value)


# ------------------------------------------------------------------ silent ones, now said


@pytest.mark.parametrize(
    "pattern, hint",
    [("^fin.*$", "; write 'fin*'"), ("fin.+", "; write 'fin?*'"), ("^finance$", "; write 'finance'"), ("fin|mkt", "")],
)
def test_a_match_pattern_written_as_a_regex_is_a_warning_naming_the_file_and_key(tmp_path, pattern, hint):
    path = write(tmp_path, {"routes": [{**ROUTE, "match": {"dag_id": "x", "dbt_tag": ["core", pattern]}}]})
    config = RoutingConfig.load(path)
    assert config.warnings == [
        f"{path}: routes[0].match.dbt_tag[1]: {pattern!r} looks like a regular expression, but match patterns are "
        "globs (* any characters, ? one, [abc] one of them): it matches only a value spelled exactly so" + hint
    ]


def test_globs_and_plain_names_are_not_warned_about(tmp_path):
    match = {"dbt_tag": ["fin*", "dbt_tag:fin?", "[fm]*", "core"], "dag_id": "dbt_finance", "dag_tag": "meltano"}
    assert RoutingConfig.load(write(tmp_path, {"routes": [{**ROUTE, "match": match}]})).warnings == []


def test_check_prints_the_routing_warnings(tmp_path, capsys):
    from test_check_matches_dagbag import small_project

    from orchestrator.cli import main

    config = small_project(tmp_path)
    routing = tmp_path / "alerting.yml"
    routing.write_text(json.dumps({"routes": [{**ROUTE, "match": {"dbt_tag": "^fin.*$"}}]}))
    assert main(["--config", str(config), "check", "--no-render"]) == 0
    out = capsys.readouterr()
    assert f"{routing}: routes[0].match.dbt_tag: '^fin.*$' looks like a regular expression" in out.out + out.err


def test_owners_that_differ_only_in_case_are_an_error_naming_both_keys(tmp_path):
    path = write(tmp_path, "owners:\n  Alice@Example.com: U0A\n  bob@example.com: U0B\n  alice@example.com: U0C\n")
    assert load_error(path) == (
        f"{path}: owners.alice@example.com: the same owner as owners.Alice@Example.com (owners are matched "
        "without case): keep one"
    )


@pytest.mark.parametrize("content", ["", "# nothing yet\n", "{}\n", "default: {}\n", "slack: {timeout_s: 2}\n"])
def test_a_routing_file_with_nowhere_to_send_warns_that_alerts_are_only_recorded(tmp_path, content):
    path = write(tmp_path, content)
    assert RoutingConfig.load(path).warnings == [
        f"{path}: no route and no default destination (slack_channel or emails): alerts will be recorded in the "
        "outbox and sent nowhere. Name one under default:, or set quiet: true to say so"
    ]


@pytest.mark.parametrize(
    "content", ["quiet: true\n", "default: {emails: [a@x.io]}\n", "default: {slack_channel: '#a'}\n"]
)
def test_quiet_or_a_destination_is_no_warning(tmp_path, content):
    assert RoutingConfig.load(write(tmp_path, content)).warnings == []


HOSTILE_ADDRESSES = {
    "NUL": "data\x00@example.com",
    "CR/LF and a header": "data@example.com\r\nBcc: evil@y.com",
    "LF": "data@example.com\nX-Injected: 1",
    "header syntax": "x:Bcc:evil@y.com",
    "two addresses": "a@x.com, evil@y.com",
    "angle brackets": "<evil@y.com>",
    "quoted local part": '"a b"@x.com',
    "space": "data @example.com",
}


@pytest.mark.parametrize("address", list(HOSTILE_ADDRESSES.values()), ids=list(HOSTILE_ADDRESSES))
@pytest.mark.parametrize(
    "where, key",
    [
        (lambda a: {"routes": [{**ROUTE, "emails": ["ok@x.io", a]}]}, "routes[0].emails[1]"),
        (lambda a: {"default": {"emails": a}}, "default.emails[0]"),
        (lambda a: {"owners": {a: "U0A"}}, "owners.{a} (the key)"),
        (lambda a: {"email": {"sender": a}}, "email.sender"),
    ],
    ids=["route", "default", "owner", "sender"],
)
def test_an_address_with_nul_crlf_or_header_syntax_is_refused_naming_the_file_and_key(tmp_path, address, where, key):
    path = write(tmp_path, where(address))
    message = load_error(path)
    assert message.count("\n") == 0 and "\r" not in message and "\x00" not in message
    key = key.format(a="".join(repr(c)[1:-1] if ord(c) < 32 else c for c in address))  # escaped, as said
    assert message.startswith(f"{path}: {key}: expected an e-mail address"), message


def test_an_address_already_in_the_outbox_is_never_sent(tmp_path, monkeypatch):
    """A row recorded under an older, laxer routing file: the sender refuses it, for good."""
    monkeypatch.setenv("PROBES_SLACK_TOKEN", "xoxb-probes")
    with FakeSlack(tokens={"xoxb-probes"}) as slack, FakeSMTP() as smtp:
        config = RoutingConfig.from_dict(
            {
                "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "sender": "af@example.com"},
                "slack": {"token_env": "PROBES_SLACK_TOKEN", "base_url": slack.api_url},
                "default": {"emails": ["data@example.com"]},
            }
        )
        config.default.emails = ["data@example.com\r\nBcc: evil@y.com"]  # as if read before the check
        n = Notifier(config, Outbox(f"sqlite:///{tmp_path / 'o.db'}"))
        res = n.notify(Alert("task_failed", "dbt_finance", "dbt_build", error="boom"))
    assert smtp.received == [] and not res.delivered
    [row] = n.outbox.rows()
    assert row["status"] == "failed" and row["last_error"].startswith("refused: not an e-mail address:")


# ------------------------------------------------------------------ one loader, one way


def test_a_byte_order_mark_is_read_one_way_by_every_loader(tmp_path, capsys):
    """alerting.yml and orchestration.yml go through the same loader: a leading BOM is dropped
    (lines and columns as without it), and a key given twice reads the same in both."""
    from orchestrator.cli import main

    bom = "\ufeff".encode()
    routing = write(tmp_path, bom + b"default:\n  emails: [a@x.io]\n")
    assert RoutingConfig.load(routing).default.emails == ["a@x.io"]
    twice = "quiet: true\ndefault: {}\nquiet: false\n"
    for name, content in (("plain", twice.encode()), ("bom", bom + twice.encode())):
        routing = write(tmp_path, content, f"{name}-alerting.yml")
        orchestration = write(tmp_path, content.replace(b"quiet", b"dbt"), f"{name}-orchestration.yml")
        assert load_error(routing) == f"{routing}: line 3, column 1: quiet: key appears twice (first on line 1)"
        assert main(["--config", str(orchestration), "plan"]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: {orchestration}: line 3, column 1: dbt: key appears twice (first on line 1)"
        )


# ------------------------------------------------------------------ probes: refused, one line, 5 s, 300 MB


def bomb(key: str, width: int, depth: int) -> str:
    """The "billion laughs": each level `width` aliases to the one before."""
    lines = [f"{key}:", "  a: &a [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, depth):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Probe:
    content: str | bytes
    key: str  # what the one line names (besides the file)
    gist: str


def probes(top: str, scalar: str, base: str = "") -> dict[str, Probe]:
    """`top`: a key of the file that holds a mapping; `scalar`: the key path of one that holds a
    string; `base`: what makes the rest of the file valid."""
    *parents, last = scalar.split(".")
    scalar_yaml = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parents)) + "  " * len(parents) + last + ": "
    merges = ["m0: &m0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k9: 9}"]
    merges += [f"m{i}: &m{i}\n  <<: [*m{i - 1}, *m{i - 1}]" for i in range(1, 30)]
    found = {
        "alias bomb (352 bytes)": Probe(bomb(top, 9, 9), f"{top}.e", "a YAML alias bomb"),
        "wide alias bomb": Probe(bomb(top, 2000, 3), f"{top}.b", "a YAML alias bomb"),
        "merge-key bomb": Probe("\n".join(merges) + "\n", "m9.<<", "a YAML alias bomb"),
        "recursive alias": Probe(f"{top}: &x\n  self: *x\n", f"{top}.self", "inside the value it names"),
        "100,000 levels of [": Probe(f"{top}: " + "[" * 100_000 + "]" * 100_000, f"{top}[0][0]", "levels deep"),
        "a key twice, nested": Probe(f"{top}:\n  x: {{y: 1, y: 2}}\n", f"{top}.x.y", "key appears twice"),
        "a 10 MB value": Probe(f"{scalar_yaml}{'x' * 10_000_000}\n", scalar, "xxx' (a string)"),
        "a 1 MB key": Probe(f"? {'k' * 1_000_000}\n: 1\n", "kkkkkkkk...: unknown key", "expected one of"),
        "a 5000-digit integer": Probe(f"{top}: {'9' * 5000}\n", top, "an integer too long to read"),
        "50,000 values": Probe(f"{top}: [" + ", ".join(["1"] * 50_000) + "]\n", f"{top}: more than", "20,000 values"),
        "not UTF-8": Probe(f"{top}:\n  x: caf\xe9\n".encode("latin-1"), f"{top}.x", "not UTF-8"),
        "30 MB file": Probe(b"#" * 30_000_000, "", "larger than a configuration file can be"),
    }
    return {
        name: Probe(base.encode() + p.content if isinstance(p.content, bytes) else base + p.content, p.key, p.gist)
        for name, p in found.items()
    }


def measured(run) -> tuple[str, float, int]:
    """What `run()` said, how long it took (untraced), and its peak of traced memory (a second run)."""
    t0 = time.monotonic()
    message = run()
    elapsed = time.monotonic() - t0
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return message, elapsed, peak


def assert_refused(message: str, elapsed: float, peak: int, path: Path, probe: Probe) -> None:
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert peak < 300_000_000, f"peaked at {peak / 1e6:.0f} MB"
    lines = [line for line in message.splitlines() if line.strip()]
    assert len(lines) == 1, message[:2000]
    assert len(lines[0]) < 400, lines[0]
    assert str(path) in lines[0] and probe.key in lines[0] and probe.gist in lines[0], lines[0]


ALERTING_PROBES = probes("routes", "default.slack_channel")


@pytest.mark.parametrize("probe", list(ALERTING_PROBES.values()), ids=list(ALERTING_PROBES))
def test_a_hostile_alerting_yml_is_refused_in_one_line(tmp_path, probe):
    path = write(tmp_path, probe.content)
    assert_refused(*measured(lambda: load_error(path)), path, probe)


ORCHESTRATION_PROBES = probes(
    "dbt",
    "dbt.mode",
    "profiles:\n  p: {meltano_environment: dev, loader: target-wh, extractors: [tap-shop]}\n",
)


@pytest.mark.parametrize("probe", list(ORCHESTRATION_PROBES.values()), ids=list(ORCHESTRATION_PROBES))
def test_a_hostile_orchestration_yml_is_refused_in_one_line(tmp_path, capsys, probe):
    from orchestrator.cli import main

    path = write(tmp_path, probe.content, "orchestration.yml")
    main(["--config", str(tmp_path / "missing.yml"), "plan"])  # warm: imports are not the probe's
    capsys.readouterr()

    def run() -> str:
        assert main(["--config", str(path), "plan"]) == 2
        out = capsys.readouterr()
        return out.out + out.err

    assert_refused(*measured(run), path, probe)
