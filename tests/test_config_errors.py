"""Bad configuration is refused with a clear message, through the public CLI.

A table of bad shapes of orchestration.yml, meltano.yml (the keys the plan reads) and alerting.yml,
each run as `orchestrator --config F check` and `plan` on a small project (tests/test_plan.py's).
Each row asserts the exit code (2: a file cannot be read or validated; 1: the plan or a DAG file
has errors), that the message names the file and the key path, and that nothing prints a
traceback. Then: `orchestrator env` refuses what `eval` could not take safely, a gzipped manifest
cannot expand without limit, and the real entry point behaves as main() does.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from test_check_matches_dagbag import SCHEDULED, small_project
from test_plan import SOURCES, model, write_manifest

from orchestrator.cli import main
from orchestrator.config import REPO_ROOT, Profile
from orchestrator.config.schema import ProfileSchema

Edit = Callable[[Path], None]


@dataclass(frozen=True)
class Bad:
    file: str  # the file the message must name
    key: str | None  # the key path it must name (None: the file as a whole, e.g. not YAML at all)
    exit: int  # 2: the file cannot be read or validated; 1: the plan (or a DAG file) has errors
    edit: Edit
    gist: str = ""  # a further piece of the message
    commands: tuple[str, ...] = ("check", "plan")  # `plan` reads neither alerting.yml nor Airflow


# ------------------------------------------------------------------ edits


def _set(data, path: str, value) -> None:
    """Set `a.b[0].c` in a YAML tree; `~` deletes the key."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    for part in parts[:-1]:
        data = data[part] if isinstance(part, int) or part in data else data.setdefault(part, {})
    if value == "~":
        del data[parts[-1]]
    else:
        data[parts[-1]] = value


def yml(file: str, changes: dict) -> Edit:
    def edit(root: Path) -> None:
        path = _path(root, file)
        data = yaml.safe_load(path.read_text()) or {}
        for key, value in changes.items():
            _set(data, key, value)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    return edit


def orch(key: str, value) -> Edit:
    return yml("orchestration.yml", {key: value})


def text(file: str, transform: Callable[[str], str | bytes]) -> Edit:
    def edit(root: Path) -> None:
        path = _path(root, file)
        out = transform(path.read_text() if path.exists() else "")
        path.write_bytes(out if isinstance(out, bytes) else out.encode())

    return edit


def nodes(*items: dict, config: dict | None = None) -> Edit:
    def edit(root: Path) -> None:
        write_manifest(root / "manifest.json", list(items), SOURCES)
        for key, value in (config or {}).items():
            orch(key, value)(root)

    return edit


def both(*edits: Edit) -> Edit:
    def edit(root: Path) -> None:
        for e in edits:
            e(root)

    return edit


def _path(root: Path, file: str) -> Path:
    return {
        "meltano.yml": root / "meltano" / "meltano.yml",
        "taps.meltano.yml": root / "meltano" / "extract" / "taps.meltano.yml",
    }.get(file, root / file)


TAPS = "taps.meltano.yml"
LONG = "x" * 251

# ------------------------------------------------------------------ the table

ORCH, M, A = "orchestration.yml", "meltano.yml", "alerting.yml"
CASES: dict[str, Bad] = {
    # ---- orchestration.yml: unknown keys, at every level
    "unknown top-level key": Bad(ORCH, "schedule", 2, orch("schedule", "0 0 * * *"), "unknown key"),
    "unknown key in tick": Bad(ORCH, "tick.crn", 2, orch("tick.crn", "0 0 * * *"), "did you mean cron?"),
    "unknown key in dbt.catch_all": Bad(ORCH, "dbt.catch_all.id", 2, orch("dbt.catch_all.id", "x"), "expected one of"),
    "unknown key in a profile": Bad(ORCH, "profiles.p.extractor", 2, orch("profiles.p.extractor", "x"), "extractors?"),
    "unknown key in profile.airflow": Bad(
        ORCH, "profiles.p.airflow.worker", 2, orch("profiles.p.airflow.worker", 2), "did you mean workers?"
    ),
    "unknown key in alerting.lateness": Bad(
        ORCH, "alerting.lateness.after", 2, orch("alerting.lateness.after", 5), "did you mean after_minutes?"
    ),
    "unknown key in defaults": Bad(ORCH, "defaults.retry", 2, orch("defaults.retry", 2), "did you mean retries?"),
    # ---- wrong types
    "profiles: [embedded]": Bad(ORCH, "profiles", 2, orch("profiles", ["embedded"]), "expected a mapping"),
    "tags: core": Bad(ORCH, "dbt.tags", 2, orch("dbt.tags", "core"), "expected a list, got 'core' (a string)"),
    "env: [a]": Bad(ORCH, "profiles.p.env", 2, orch("profiles.p.env", ["a"]), "expected a mapping"),
    "extractors: tap-shop": Bad(ORCH, "profiles.p.extractors", 2, orch("profiles.p.extractors", "tap-shop"), "a list"),
    "tables: {tap: orders}": Bad(ORCH, "meltano.tables.tap-shop", 2, orch("meltano.tables", {"tap-shop": "orders"})),
    "tick: daily": Bad(ORCH, "tick", 2, orch("tick", "daily"), "expected a mapping"),
    "manifest: 5": Bad(ORCH, "dbt.manifest", 2, orch("dbt.manifest", 5), "expected a string"),
    "env value: a list": Bad(ORCH, "profiles.p.env.X", 2, orch("profiles.p.env", {"X": [1]}), "a string, a number"),
    # ---- quoted booleans and numbers
    "retries: '2'": Bad(ORCH, "defaults.retries", 2, orch("defaults.retries", "2"), "(unquoted"),
    "catch_all.enabled: 'false'": Bad(ORCH, "dbt.catch_all.enabled", 2, orch("dbt.catch_all.enabled", "false"), "true"),
    "retry_from_failure: 'yes'": Bad(ORCH, "dbt.retry_from_failure", 2, orch("dbt.retry_from_failure", "yes")),
    "workers: '2'": Bad(ORCH, "profiles.p.airflow.workers", 2, orch("profiles.p.airflow.workers", "2"), "(unquoted"),
    # ---- negative, zero, impossible values
    "retries: -1": Bad(ORCH, "defaults.retries", 2, orch("defaults.retries", -1), "must be at least 0"),
    "retries: 1000": Bad(ORCH, "defaults.retries", 2, orch("defaults.retries", 1000), "must be at most 100"),
    "workers: -1": Bad(ORCH, "profiles.p.airflow.workers", 2, orch("profiles.p.airflow.workers", -1), "at least 0"),
    "lateness minutes: -5": Bad(
        ORCH, "alerting.lateness.after_minutes", 2, orch("alerting.lateness.after_minutes", -5)
    ),
    "lateness of a DAG: -5": Bad(
        ORCH, "alerting.lateness.dags.dbt_core", 2, orch("alerting.lateness.dags", {"dbt_core": -5}), "at least 0"
    ),
    "retry delay: 1.5": Bad(ORCH, "defaults.retry_delay_seconds", 2, orch("defaults.retry_delay_seconds", 1.5)),
    "extractors: []": Bad(ORCH, "profiles.p.extractors", 2, orch("profiles.p.extractors", []), "must not be empty"),
    "profiles: {}": Bad(ORCH, "profiles", 2, orch("profiles", {}), "must not be empty"),
    "project_dir: ''": Bad(ORCH, "dbt.project_dir", 2, orch("dbt.project_dir", ""), "must not be empty"),
    "mode: galaxy": Bad(ORCH, "dbt.mode", 2, orch("dbt.mode", "galaxy"), "expected 'multi' or 'monolith'"),
    "task_granularity: task": Bad(ORCH, "dbt.task_granularity", 2, orch("dbt.task_granularity", "task")),
    "cycle_wait.timeout_minutes: 0": Bad(
        ORCH, "dbt.cycle_wait.timeout_minutes", 2, orch("dbt.cycle_wait.timeout_minutes", 0), "must be at least 1"
    ),
    "cycle_wait unknown key": Bad(ORCH, "dbt.cycle_wait.timeout", 2, orch("dbt.cycle_wait.timeout", 5), "unknown key"),
    "on_forced_cycle: ignore": Bad(
        ORCH, "dbt.on_forced_cycle", 2, orch("dbt.on_forced_cycle", "ignore"), "expected 'split' or 'error'"
    ),
    "tags listed twice": Bad(ORCH, "dbt.tags", 2, orch("dbt.tags", ["core", "core"]), "listed twice: core"),
    "Celery without PostgreSQL": Bad(
        ORCH, "profiles.p.airflow.metadata_db_url", 2, orch("profiles.p.airflow.executor", "CeleryExecutor")
    ),
    "a variable in paths and env": Bad(
        ORCH,
        "profiles.p.env.X",
        2,
        yml(ORCH, {"profiles.p.paths": {"X": "a"}, "profiles.p.env": {"X": "b"}}),
        "keep one",
    ),
    "translator: not a path": Bad(ORCH, "translator", 2, orch("translator", "not a path!"), "dotted path"),
    "an Asset name Airflow forbids": Bad(
        ORCH, "tick.asset", 2, orch("tick.asset", "self"), "not a valid Airflow Asset"
    ),
    # ---- invalid crons
    "tick cron: 61 minutes": Bad(ORCH, "tick.cron", 2, orch("tick.cron", "61 * * * *"), "not a valid cron expression"),
    "alerting cron: words": Bad(ORCH, "alerting.cron", 2, orch("alerting.cron", "every 5 minutes"), "not a valid cron"),
    "a Meltano schedule's interval": Bad(
        TAPS, "schedule hourly-shop: interval", 1, text(TAPS, lambda _: SCHEDULED.replace("'@hourly'", "'@hour'"))
    ),
    # ---- DAG ids, prefixes
    "dag_id_prefix with a space": Bad(ORCH, "dbt.dag_id_prefix", 2, orch("dbt.dag_id_prefix", "dbt "), "DAG id prefix"),
    "dag_id_prefix with a slash": Bad(ORCH, "meltano.dag_id_prefix", 2, orch("meltano.dag_id_prefix", "meltano/")),
    "tick DAG id: tick!": Bad(ORCH, "tick.dag_id", 2, orch("tick.dag_id", "tick!"), "not a valid Airflow DAG id"),
    "catch-all DAG id with a space": Bad(ORCH, "dbt.catch_all.dag_id", 2, orch("dbt.catch_all.dag_id", "dbt untagged")),
    "state DAG id with a slash": Bad(ORCH, "meltano.state_dag_id", 2, orch("meltano.state_dag_id", "state/dag")),
    "monolith DAG id empty": Bad(ORCH, "dbt.monolith_dag_id", 2, orch("dbt.monolith_dag_id", "")),
    "two fixed DAG ids equal": Bad(ORCH, "alerting.dag_id", 2, orch("alerting.dag_id", "tick"), "DAG ids must differ"),
    # ---- profile variables: names a shell can take (`eval "$(orchestrator env)"`), values it can hold
    "env name with a dash": Bad(ORCH, "profiles.p.env.A-B", 2, orch("profiles.p.env", {"A-B": "1"}), "shell variable"),
    "env name starting with a digit": Bad(ORCH, "profiles.p.env.1ST", 2, orch("profiles.p.env", {"1ST": "1"})),
    "env name smuggling a command": Bad(
        ORCH, "profiles.p.env.X;touch pwned", 2, orch("profiles.p.env", {"X;touch pwned": "1"}), "not a shell variable"
    ),
    "paths name with a space": Bad(ORCH, "profiles.p.paths.BAD NAME", 2, orch("profiles.p.paths", {"BAD NAME": "x"})),
    "env value with a NUL byte": Bad(ORCH, "profiles.p.env.X", 2, orch("profiles.p.env", {"X": "a\0b"}), "NUL byte"),
    # ---- the file itself
    "duplicate YAML key": Bad(ORCH, "tick", 2, text(ORCH, lambda t: t + "tick: {dag_id: t2}\n"), "appears twice"),
    "duplicate nested YAML key": Bad(
        ORCH, "dbt.mode", 2, text(ORCH, lambda t: t.replace("dbt:\n", "dbt:\n  mode: multi\n  mode: monolith\n", 1))
    ),
    "a non-UTF-8 byte": Bad(
        ORCH,
        "profiles.p.loader",
        2,
        text(ORCH, lambda t: t.replace("loader: target-wh", "loader: target-wh\xe9", 1).encode("latin-1")),
        "not UTF-8",
    ),
    "not YAML": Bad(ORCH, None, 2, text(ORCH, lambda t: "dbt: {tags: [core\n"), "not valid YAML"),
    "a list at the top": Bad(ORCH, None, 2, text(ORCH, lambda t: "- p\n"), "expected a mapping at the top level"),
    "an empty file": Bad(ORCH, "profiles", 2, text(ORCH, lambda t: ""), "required"),
    "a missing file": Bad(ORCH, None, 2, lambda root: (root / ORCH).unlink(), "file not found"),
    "default_profile naming no profile": Bad(ORCH, "default_profile", 2, orch("default_profile", "nope"), "names no"),
    # ---- plan errors: the file and what it concerns
    "two tags, one DAG id": Bad(
        ORCH, "Finance, finance", 1, orch("dbt.tags", ["core", "finance", "Finance"]), "map to the DAG id 'dbt_finance'"
    ),
    "catch-all id = a tag DAG id": Bad(ORCH, "dbt.catch_all.dag_id", 1, orch("dbt.catch_all.dag_id", "dbt_core")),
    "a tag named untagged": Bad(
        ORCH,
        "dbt.catch_all.dag_id",
        1,
        nodes(model("a", ["core"]), model("b", ["untagged"]), model("c"), config={"dbt.tags": ["core", "untagged"]}),
        "also the DAG id of the tag untagged",
    ),
    "per-model task ids clash": Bad(
        "manifest.json",
        "dbt_core",
        1,
        nodes(
            model("Orders", ["core"], schema="a"),
            model("orders", ["core"], schema="b"),
            config={"dbt.task_granularity": "model"},
        ),
        "all make the task id 'orders'",
    ),
    "a DAG id across kinds": Bad(ORCH, "dbt_core", 1, orch("tick.dag_id", "dbt_core"), "two DAGs have this id"),
    "a profile extractor meltano.yml lacks": Bad(
        M, "tap-nope", 1, orch("profiles.p.extractors", ["tap-shop", "tap-nope"]), "no extractor of that name"
    ),
    "a DAG id too long for Airflow": Bad(
        ORCH, "DAG id", 1, nodes(model("a", [LONG]), config={"dbt.tags": [LONG]}), "Airflow allows", ("check",)
    ),
    "an Asset URI Airflow refuses": Bad(
        ORCH, "profiles.p.warehouse_uri", 1, orch("profiles.p.warehouse_uri", "airflow://wh"), "reserved", ("check",)
    ),
    # ---- meltano.yml, as the plan reads it
    "plugins: [a]": Bad(M, "plugins", 2, yml(M, {"plugins": ["a"]}), "expected a mapping"),
    "include_paths: a string": Bad(M, "include_paths", 2, yml(M, {"include_paths": "./extract/*.meltano.yml"})),
    "extractors: tap-x": Bad(TAPS, "plugins.extractors", 2, yml(TAPS, {"plugins.extractors": "tap-x"}), "a list"),
    "a plugin without a name": Bad(
        TAPS, "plugins.extractors[0].name", 2, yml(TAPS, {"plugins.extractors[0].name": "~"})
    ),
    "select: a string": Bad(
        TAPS, "plugins.extractors[1].select", 2, yml(TAPS, {"plugins.extractors[1].select": "a.*"})
    ),
    "load_schema: 5": Bad(
        TAPS, "plugins.extractors[1].load_schema", 2, yml(TAPS, {"plugins.extractors[1].load_schema": 5})
    ),
    "an unknown plugin type": Bad(
        TAPS, "plugins.extractor", 2, text(TAPS, lambda t: t.replace("extractors:", "extractor:")), "extractors?"
    ),
    "a typo of a key the plan reads": Bad(
        TAPS,
        "plugins.extractors[1].load-schema",
        2,
        text(TAPS, lambda t: t.replace("load_schema:", "load-schema:")),
        "did you mean load_schema?",
    ),
    "schedule: (not schedules)": Bad(M, "schedule", 2, yml(M, {"schedule": []}), "did you mean schedules?"),
    "schedules: a mapping": Bad(M, "schedules", 2, yml(M, {"schedules": {"a": 1}}), "expected a list"),
    "an unknown schedule key": Bad(
        TAPS,
        "schedules[0].intervall",
        2,
        text(TAPS, lambda _: SCHEDULED.replace("interval:", "intervall:")),
        "did you mean interval?",
    ),
    "job tasks: 5": Bad(M, "jobs[0].tasks", 2, yml(M, {"jobs": [{"name": "j", "tasks": 5}]}), "a string or a list"),
    "an environment without a name": Bad(M, "environments[0].name", 2, yml(M, {"environments": [{"config": {}}]})),
    "duplicate key in meltano.yml": Bad(
        M, "default_environment", 2, text(M, lambda t: t + "default_environment: prod\n"), "appears twice"
    ),
    "non-UTF-8 in an included file": Bad(
        TAPS,
        "plugins.extractors[2].name",
        2,
        text(TAPS, lambda t: t.replace("tap-crm\n", "tap-cr\xe9\n").encode("latin-1")),
    ),
    "meltano.yml missing": Bad(M, None, 2, orch("meltano.project_dir", "nowhere"), "file not found"),
    "a plugin defined in two files": Bad(
        M, "extractor 'tap-crm'", 2, yml(M, {"plugins.extractors": [{"name": "tap-crm"}]}), "defined twice"
    ),
    # ---- alerting.yml (read by `check` and the alerting DAG file, not by `plan`)
    "storm: 5": Bad(A, "storm", 2, yml(A, {"storm": 5}), "expected a mapping", ("check",)),
    "quiet: 'false'": Bad(A, "quiet", 2, yml(A, {"quiet": "false"}), "expected true or false", ("check",)),
    "storm threshold: 0": Bad(A, "storm.threshold", 2, yml(A, {"storm": {"threshold": 0}}), "at least 1", ("check",)),
    "suppression window: -5": Bad(A, "suppression_window_s", 2, yml(A, {"suppression_window_s": -5}), "", ("check",)),
    "unknown top-level key (alerting)": Bad(A, "slak", 2, yml(A, {"slak": {}}), "unknown key", ("check",)),
    "unknown route match key": Bad(
        A,
        "routes[0].match.dbt_tags",
        2,
        yml(A, {"routes": [{"name": "f", "match": {"dbt_tags": "finance"}, "slack_channel": "#f"}]}),
        "expected one of dbt_tag, dag_tag, dag_id",
        ("check",),
    ),
    "duplicate route names": Bad(
        A,
        "routes[1].name",
        2,
        yml(A, {"routes": [{"name": "f", "match": {"dbt_tag": t}, "slack_channel": "#f"} for t in ("a", "b")]}),
        "duplicate route name 'f'",
        ("check",),
    ),
    "a secret in alerting.yml": Bad(A, "slack.token", 2, yml(A, {"slack": {"token": "xoxb-1"}}), "secrets", ("check",)),
    "smtp_port: 70000": Bad(A, "email.smtp_port", 2, yml(A, {"email": {"smtp_port": 70000}}), "at most", ("check",)),
    "an owner with no Slack id": Bad(
        A, "owners.alice@example.com", 2, yml(A, {"owners": {"alice@example.com": "alice"}}), "Slack", ("check",)
    ),
    "duplicate key in alerting.yml": Bad(
        A, "quiet", 2, text(A, lambda t: t + "quiet: true\nquiet: false\n"), "", ("check",)
    ),
    "alerting.yml missing": Bad(
        "nowhere.yml", "alerting.config", 2, orch("alerting.config", "nowhere.yml"), "", ("check",)
    ),
}


def _project(root: Path) -> Path:
    config = small_project(root, config={"profiles.p.description": "tests/test_config_errors.py"})
    write_manifest(root / "manifest.json", [model("a", ["core"], ["source.p.shop.orders"])], SOURCES)
    return config


def test_the_table_covers_every_file_and_both_exit_codes(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = _project(tmp_path)  # each row breaks this project, which passes
    assert main(["--config", str(config), "check"]) == 0 and main(["--config", str(config), "plan"]) == 0
    files = {c.file for c in CASES.values()}
    assert {"orchestration.yml", "meltano.yml", "alerting.yml"} <= files and len(CASES) >= 40
    assert {c.exit for c in CASES.values()} == {1, 2}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_is_refused_naming_the_file_and_the_key(tmp_path, monkeypatch, capsys, case):
    bad = CASES[case]
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = _project(tmp_path)
    bad.edit(tmp_path)
    for command in bad.commands:
        try:
            code = main(["--config", str(config), command])
        except BaseException as exc:  # what would reach the user as a traceback
            pytest.fail(f"{command}: {type(exc).__name__} escaped main(): {exc}")
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert code == bad.exit, f"{command} exited {code}, not {bad.exit}:\n{out}{err}"
        if command == "plan" and code == 1:  # the plan's table counts its errors; `check` lists them
            assert re.search(r"[1-9]\d* error\(s\): `orchestrator check` lists them", out), out
            continue
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert lines, f"{command}: no error line:\n{out}{err}"
        naming = [line for line in lines if bad.file in line and (bad.key is None or bad.key in line)]
        assert naming, f"{command}: no error line names both {bad.file} and {bad.key!r}:\n{err}"
        assert bad.gist in " ".join(naming) or bad.gist in err, f"{command}: {bad.gist!r} not in:\n{err}"


# ------------------------------------------------------------------ orchestrator env: eval-safe


HOSTILE = {
    "SUBST": "$(touch PWNED)",
    "TICKS": "`touch PWNED`",
    "QUOTES": 'it\'s "quoted" \\ and $HOME',
    "NEWLINE": "line one\nline two; touch PWNED",
    "GLOB": "* ? [a]",
    "EMPTY": "",
}


@pytest.mark.subprocess
def test_env_exports_hostile_values_that_eval_reads_back_unchanged(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = small_project(tmp_path, config={"profiles.p.env": HOSTILE})
    env = {**os.environ, "FROM_SHELL": "x", "SUBST2": "$(touch PWNED2)"}
    printed = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--config", str(config), "env"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert printed.startswith("export ")
    names = " ".join(HOSTILE)
    script = 'eval "$1"; for n in ' + names + '; do printf "%s=%s\\0" "$n" "${!n}"; done'
    read = subprocess.run(["bash", "-c", script, "_", printed], capture_output=True, cwd=tmp_path, check=True).stdout
    back = dict(item.split("=", 1) for item in read.decode().split("\0") if item)
    assert back == HOSTILE
    assert not list(tmp_path.glob("PWNED*")), "eval ran a command from a value"


def test_env_refuses_a_name_that_is_not_a_shell_identifier_and_prints_nothing(tmp_path, monkeypatch, capsys):
    """The schema refuses it first; env refuses it too, whatever built the profile."""
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = small_project(tmp_path, config={"profiles.p.env": {"OK": "1", "X;touch pwned": "1"}})
    assert main(["--config", str(config), "env"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "profiles.p.env.X;touch pwned (the key)" in err and "orchestration.yml" in err

    section = ProfileSchema(meltano_environment="dev", loader="target-wh", extractors=["tap-shop"])
    profile = Profile.of(section, "p", {"OK": "1", "$(id)": "1", "Z": "a\0"})
    monkeypatch.setattr("orchestrator.cli.load_config", lambda *a: SimpleNamespace(path=config, profile=profile))
    assert main(["--config", str(config), "env"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "orchestration.yml: profiles.p.env.$(id): '$(id)' is not a shell variable name: nothing exported" in err
    assert "profiles.p.env.Z: the value holds a NUL byte" in err


# ------------------------------------------------------------------ a .gz manifest cannot expand without limit


def _gz_config(tmp_path: Path, payload: bytes) -> Path:
    config = small_project(tmp_path)
    (tmp_path / "manifest.json.gz").write_bytes(gzip.compress(payload))
    orch("dbt.manifest", "manifest.json.gz")(tmp_path)
    return config


def test_a_gzip_bomb_is_refused_naming_the_file_and_the_setting(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_MANIFEST_MAX_BYTES", str(1 << 20))  # 1 MiB
    config = _gz_config(tmp_path, b" " * (64 << 20))  # 64 MiB of spaces: about 64 KiB compressed
    assert (tmp_path / "manifest.json.gz").stat().st_size < 100_000
    assert main(["--config", str(config), "plan"]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'manifest.json.gz'}: expands to more than 1,048,576 bytes when decompressed" in err
    assert "ORCHESTRATOR_MANIFEST_MAX_BYTES" in err and "Traceback" not in err


def test_the_cap_is_on_the_decompressed_size_and_can_be_raised(tmp_path, monkeypatch, capsys):
    from orchestrator.plan.manifest import GUNZIP_CHUNK, load_manifest

    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = small_project(tmp_path)
    raw = (tmp_path / "manifest.json").read_bytes()
    raw = raw + b" " * (3 * GUNZIP_CHUNK)  # more than one chunk (JSON allows trailing spaces)
    gz = tmp_path / "manifest.json.gz"
    gz.write_bytes(gzip.compress(raw[:100]) + gzip.compress(raw[100:]))  # two gzip members, as `cat a.gz b.gz`
    monkeypatch.setenv("ORCHESTRATOR_MANIFEST_MAX_BYTES", str(len(raw)))
    assert load_manifest(gz).nodes == load_manifest(tmp_path / "manifest.json").nodes  # exactly at the cap
    monkeypatch.setenv("ORCHESTRATOR_MANIFEST_MAX_BYTES", str(len(raw) - 1))
    with pytest.raises(ValueError, match="expands to more than"):
        load_manifest(gz)
    monkeypatch.setenv("ORCHESTRATOR_MANIFEST_MAX_BYTES", "2GiB")
    orch("dbt.manifest", "manifest.json.gz")(tmp_path)
    assert main(["--config", str(config), "plan"]) == 2
    assert (
        "ORCHESTRATOR_MANIFEST_MAX_BYTES='2GiB': expected a positive whole number of bytes" in capsys.readouterr().err
    )
    monkeypatch.delenv("ORCHESTRATOR_MANIFEST_MAX_BYTES")  # the default: its plausible size
    assert main(["--config", str(config), "plan"]) == 0


# ------------------------------------------------------------------ the real entry point


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "edit, args, code, message",
    [
        (lambda root: (root / ORCH).unlink(), ["plan"], 2, "orchestration.yml: file not found"),
        (
            text(ORCH, lambda t: t.replace("loader: target-wh", "loader: target-wh\xff", 1).encode("latin-1")),
            ["check", "--no-render"],
            2,
            "profiles.p.loader: not UTF-8",
        ),
        (orch("dbt.tags", ["core", "finance", "Finance"]), ["check", "--no-render"], 1, "map to the DAG id"),
    ],
)
def test_the_installed_command_exits_without_a_traceback(tmp_path, monkeypatch, edit, args, code, message):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = _project(tmp_path)
    edit(tmp_path)
    exe = shutil.which("orchestrator", path=str(Path(sys.executable).parent))
    assert exe, "the orchestrator command is not installed beside this Python"
    run = subprocess.run([exe, "--config", str(config), *args], capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == code, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
