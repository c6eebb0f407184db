"""A failed run says why (issue 21, item 4): the root error line of a Meltano or dbt failure, the
same in the runner's summary, in the alert headline and on the console of `orchestrator run`.

- Pure: on real Python tracebacks (raised here, chained either way, relayed in Meltano's console
  format with Meltano's own copy of them: hypothesis) the root line is the exception's, never a
  source line of a frame (`io.open(self, mode, buffering, encoding, errors, newline)`, the issue's
  headline); dbt's two-line messages; Airflow's structured task log.
- Real plugins and real output: a missing file, bad credentials (MariaDB), an unreachable database
  (PostgreSQL), a loader crash, a tap whose discovery prints a traceback through Meltano, and a dbt
  compile error, each through the task callable the DAGs run, its alert and its console line.
- Through a real Airflow: `orchestrator run` on the bike-share fixture with a missing data folder
  and a dbt compile error prints each failed task's root line and its log file, and the Slack
  alerts carry the same lines (tests/test_failure_causes_airflow.py).
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.local.report import FailedTask, RunReport, format_report, log_root
from orchestrator.runners.root_error import dbt_node_root, dbt_root, root_error

# ------------------------------------------------------------------------------ pure


def _read_file(path, errors=None):
    # A frame whose source line mentions "errors", as pathlib's `io.open(self, mode, buffering,
    # encoding, errors, newline)` does: the old extraction took that line for the cause.
    return open(path, encoding="utf-8", errors=errors).read()  # noqa: SIM115


class PluginError(Exception):
    pass


def _raise(kind: str, message: str, chain: str):
    """Raise `kind(message)` from a few frames deep; chained to a FileNotFoundError either way."""
    error = {"ValueError": ValueError, "KeyError": KeyError, "PluginError": PluginError}[kind]

    def inner():
        if chain == "none":
            raise error(message)
        try:
            _read_file("/nonexistent/newuser/orders.csv")
        except FileNotFoundError as exc:
            if chain == "from":
                raise error(message) from exc
            raise error(message)  # noqa: B904 - "during handling": the cause is the first

    def outer():
        inner()

    outer()


def meltano_console(plugin: str, lines: list[str], meltano_copy: bool) -> list[str]:
    """`lines` of a plugin's stderr as Meltano 4 prints them, then Meltano's own error with the
    stderr again (as it does when catalog discovery fails), then its summary lines."""
    out = ["2026-12-07T01:37:54.683991Z [info     ] meltano      Meltano 4.4.1, Python 3.11.7, Linux (x86_64)"]
    out += [f"2026-12-07T01:38:00.4{i:05d}Z [info     ] {plugin:<12} {line}" for i, line in enumerate(lines)]
    if meltano_copy:
        out.append(
            f"2026-12-07T01:38:00.752241Z [error    ] meltano      Cannot start plugin {plugin}: Catalog discovery "
            f"failed: command ['/x/bin/{plugin}', '--discover'] returned 1 with stderr:"
        )
        out += lines  # Meltano's copy: continuation lines, indentation kept
    out += [
        "2026-12-07T01:38:00.753948Z [error    ] meltano      Block run completed",
        "2026-12-07T01:38:00.754254Z [info     ] meltano      Run completed",
    ]
    return out


MESSAGES = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=60).filter(
    lambda s: s.strip() == s and s
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["ValueError", "KeyError", "PluginError"]),
    message=MESSAGES,
    chain=st.sampled_from(["none", "from", "during"]),
    plugin=st.sampled_from(["tap-shop", "target-lakehouse", "tap-bikeshare-csv"]),
    noise=st.lists(
        st.sampled_from(
            [
                'METRIC: {"errors": 0}',
                "Skipping parse of env var settings...",
                "An unhandled error occurred while syncing 'orders'",
                "INFO errors: none",
            ]
        ),
        max_size=3,
    ),
    meltano_copy=st.booleans(),
)
def test_the_root_line_is_the_exception_of_any_real_traceback(kind, message, chain, plugin, noise, meltano_copy):
    try:
        _raise(kind, message, chain)
    except Exception as exc:  # noqa: BLE001
        text = "".join(traceback.format_exception(exc))
        raised = exc
    lines = [*noise, *text.rstrip("\n").splitlines()]
    if chain == "during":  # the error raised while handling the missing file: the file is the cause
        expected = "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/newuser/orders.csv'"
    else:
        expected = traceback.format_exception_only(raised)[-1].rstrip("\n").splitlines()[0]
    assert root_error(meltano_console(plugin, lines, meltano_copy)) == expected


def test_the_issues_headline_is_now_the_exception():
    """The issue's tail: pathlib's frame line mentions `errors`; the root is the FileNotFoundError."""
    tail = meltano_console(
        "tap-jaffle-app",
        [
            "Traceback (most recent call last):",
            '  File "/x/lib/python3.11/pathlib.py", line 1044, in open',
            "    return io.open(self, mode, buffering, encoding, errors, newline)",
            "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "FileNotFoundError: [Errno 2] No such file or directory: '/srv/jaffle/data/app/orders.csv'",
        ],
        meltano_copy=True,
    )
    assert (
        root_error(tail) == "FileNotFoundError: [Errno 2] No such file or directory: '/srv/jaffle/data/app/orders.csv'"
    )
    assert root_error(tail[-40:]) == root_error(tail)


@pytest.mark.parametrize(
    "lines, root",
    [
        # a Singer plugin that logs its fatal error instead of raising (singer-python's CRITICAL)
        (
            ['2026-01-01T00:00:00Z [info     ] tap-mysql    CRITICAL (2003, "Can\'t connect to MySQL server")'],
            '(2003, "Can\'t connect to MySQL server")',
        ),
        # Meltano's own error when the plugin said nothing more
        (
            [
                "2026-01-01T00:00:00Z [error    ] meltano      Cannot start plugin tap-x: Executable 'tap-x' could not "
                "be found.",
                "2026-01-01T00:00:00Z [error    ] meltano      Block run completed",
            ],
            "Cannot start plugin tap-x: Executable 'tap-x' could not be found.",
        ),
        # nothing but Meltano's "failed": no root line (the summary is the exit code)
        (
            [
                "2026-01-01T00:00:00Z [error    ] meltano      Extractor failed",
                "2026-01-01T00:00:00Z [error    ] meltano      Block run completed",
            ],
            "",
        ),
    ],
)
def test_fatal_lines_and_meltanos_own_errors(lines, root):
    assert root_error(lines) == root


@pytest.mark.parametrize(
    "message, root",
    [
        (
            "Compilation Error in model x (models/x.sql)\n  unexpected '}', expected ')'\n    line 2\n      select {{",
            "Compilation Error in model x (models/x.sql): unexpected '}', expected ')'",
        ),
        (
            "Compilation Error\n  Model 'model.p.x' (models/x.sql) depends on a node named 'nope' which was not found",
            "Compilation Error: Model 'model.p.x' (models/x.sql) depends on a node named 'nope' which was not found",
        ),
        (
            "Runtime Error in model x (models/x.sql)\n  Catalog Error: Table with name y does not exist!\n  Did you",
            "Runtime Error in model x (models/x.sql): Catalog Error: Table with name y does not exist!",
        ),
        ("Got 1 result, configured to fail if != 0", "Got 1 result, configured to fail if != 0"),
    ],
)
def test_dbt_messages_as_one_line(message, root):
    assert dbt_root(message) == root


def test_a_failed_test_is_named_in_its_root_line():
    assert dbt_node_root("test", "not_null_x_id", "Got 1 result, configured to fail if != 0") == (
        "test not_null_x_id: Got 1 result, configured to fail if != 0"
    )
    assert dbt_node_root("model", "x", "Compilation Error in model x (models/x.sql)\n  bad") == (
        "Compilation Error in model x (models/x.sql): bad"
    )


def airflow_log(exc: BaseException, path: str = "/h/logs/attempt=1.log") -> list[dict]:
    """A failed try's log as Airflow's REST API returns it: where it was read from, then the task
    runner's `Task failed with exception` event with the exception as error_detail."""
    return [
        {"event": "::group::Log message source details"},
        {"event": path},
        {"event": "::endgroup::"},
        {"timestamp": "2026-12-07T01:22:14Z", "level": "info", "event": "DAG bundles loaded: dags-folder"},
        {
            "timestamp": "2026-12-07T01:23:17Z",
            "level": "error",
            "event": "Task failed with exception",
            "error_detail": [{"exc_type": type(exc).__name__, "exc_value": str(exc), "frames": []}],
        },
    ]


def test_the_console_line_is_the_tasks_first_line_and_its_log():
    from orchestrator.airflow.tasks import TaskFailure

    events = airflow_log(TaskFailure("meltano run x exited with 1: KeyError: 'id'\nlast log lines:\n..."))
    assert log_root(events) == ("meltano run x exited with 1: KeyError: 'id'", "/h/logs/attempt=1.log")
    assert log_root(airflow_log(KeyError("id"))) == ("KeyError: 'id'", "/h/logs/attempt=1.log")  # not ours: typed
    report = RunReport("meltano_tap_x", "r1", "failed", "asset_triggered", None, None)
    report.failures = [FailedTask("meltano_run", 2, "meltano run x exited with 1: KeyError: 'id'", "/h/a.log")]
    assert format_report([report]).splitlines()[2:4] == [
        "    ! meltano_run failed (try 2): meltano run x exited with 1: KeyError: 'id'",
        "      log: /h/a.log",
    ]


def test_a_reconcile_mismatch_is_in_the_run_report():
    report = RunReport("meltano_tap_fleet", "r1", "success", "asset_triggered", None, None)
    note = "1 record(s) lost by the loader (target-duckdb==0.8.0 loses ...)"
    extra = {"records_extracted": 20, "rows_written": 19, "reconcile": "mismatch", "reconcile_note": note}
    report.emitted = [{"name": "raw_fleet.inspections", "extra": extra}]
    assert format_report([report]).splitlines()[2:4] == [
        "    -> raw_fleet.inspections                    records_extracted=20 rows_written=19",
        f"       ! RECONCILE MISMATCH: {note}",
    ]


# ------------------------------------------------------------------------------ real plugins


def _alert_headline(exc) -> str:
    """The Slack headline of the alert Airflow's failure callback sends for this exception."""
    from alerting.airflow import alert_from_context
    from alerting.rendering.slack_message import render_slack

    alert = alert_from_context("task_failed", {"exception": exc, "dag": None, "run_id": "r1"})
    return render_slack(alert).text


def _console(exc) -> str:
    error, log = log_root(airflow_log(exc))
    report = RunReport("a_dag", "r1", "failed", "asset_triggered", None, None)
    report.failures = [FailedTask("a_task", 1, error, log)]
    return format_report([report])


def assert_root_everywhere(exc, summary: str, root: str) -> None:
    """The root line ends the runner's summary, the alert headline, and the console line."""
    from alerting.rendering.slack_message import escape_mrkdwn

    assert summary.endswith(f": {root}"), summary
    assert str(exc).splitlines()[0] == summary
    assert exc.alert_context["error"] == summary
    assert _alert_headline(exc).endswith(f": {escape_mrkdwn(summary)}")
    assert f"    ! a_task failed (try 1): {summary}\n" in _console(exc)


def _meltano_task(config: Path, profile: str, argv: list[str], extractor: str):
    """The Meltano DAGs' task callable, as Airflow calls it; the TaskFailure it raises."""
    from orchestrator.airflow.tasks import TaskFailure, meltano_run

    with pytest.raises(TaskFailure) as failure:
        meltano_run(argv=argv, extractors=[extractor], outlets={}, tables={}, config_path=str(config), profile=profile)
    return failure.value


@pytest.fixture
def demo(tmp_path, monkeypatch, meltano_installed):
    """The demo's config with its state, data and warehouse under tmp (the repo's Meltano project)."""
    from conftest import pipeline_config

    for key in [k for k in os.environ if k.startswith(("MELTANO_", "TAP_", "TARGET_", "SOURCE_", "DBT_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MELTANO_DATABASE_URI", f"sqlite:///{tmp_path / 'meltano.db'}")
    monkeypatch.setenv("DEMO_DATA_DIR", str(tmp_path / "demo_data"))
    monkeypatch.setenv("WAREHOUSE_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    return pipeline_config(tmp_path)


@pytest.mark.meltano
def test_a_missing_file(demo, tmp_path, monkeypatch):
    """The issue's failure: pathlib's frame mentions `errors`; the root is the FileNotFoundError."""
    missing = tmp_path / "streams" / "shop.json"
    monkeypatch.setenv("TAP_SHOP_STREAMS_FILE", str(missing))  # Meltano: the environment overrides meltano.yml
    exc = _meltano_task(demo, "embedded", ["run", "tap-shop", "target-duckdb"], "tap-shop")
    # The tap wraps the FileNotFoundError (`raise ... from exc`): its own exception names the file and why.
    root = (
        f"ValueError: {missing}: cannot read the stream description ([Errno 2] No such file or directory: '{missing}')"
    )
    assert_root_everywhere(exc, f"meltano --environment dev run tap-shop target-duckdb exited with 1: {root}", root)
    assert "io.open(self, mode, buffering, encoding, errors, newline)" in str(exc)  # the line the old rule took


@pytest.mark.meltano
def test_bad_credentials(demo, monkeypatch):
    user = "newuser_no_such_user"
    for k, v in {
        "HOST": "127.0.0.1",
        "PORT": "3306",
        "USER": user,
        "PASSWORD": "wrong",
        "DATABASE": "demo_shop",
    }.items():
        monkeypatch.setenv(f"SOURCE_MARIADB_{k}", v)
    exc = _meltano_task(demo, "embedded", ["run", "tap-shop-mariadb", "target-duckdb"], "tap-shop-mariadb")
    root = (
        f"pymysql.err.OperationalError: (1045, \"Access denied for user '{user}'@'127.0.0.1' (using password: YES)\")"
    )
    summary = f"meltano --environment dev run tap-shop-mariadb target-duckdb exited with 1: {root}"
    assert_root_everywhere(exc, summary, root)


@pytest.mark.meltano
def test_an_unreachable_database(demo, monkeypatch):
    for k, v in {
        "HOST": "127.0.0.1",
        "PORT": "1",
        "USER": "demo_reader",
        "PASSWORD": "x",
        "DATABASE": "demo_sources",
    }.items():
        monkeypatch.setenv(f"SOURCE_PG_{k}", v)
    exc = _meltano_task(demo, "embedded", ["run", "tap-crm-postgres", "target-duckdb"], "tap-crm-postgres")
    root = (
        'sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "127.0.0.1", port 1 '
        "failed: Connection refused"
    )
    summary = f"meltano --environment dev run tap-crm-postgres target-duckdb exited with 1: {root}"
    assert_root_everywhere(exc, summary, root)


@pytest.fixture
def bikeshare(tmp_path, monkeypatch):
    """A copy of the bike-share fixture and a minimal orchestration.yml for it."""
    from fixture_project import DBT_TARGET, copy_fixture

    fx = copy_fixture(tmp_path)
    for key in [k for k in os.environ if k.startswith(("MELTANO_", "DBT_", "BIKESHARE_"))]:
        monkeypatch.delenv(key)
    for k, v in fx.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = fx.root / "orchestration.yml"
    profile = {
        "meltano_environment": "staging",
        "loader": "target-lakehouse",
        "extractors": ["tap-docks", "tap-fleet"],
        "dbt_target": DBT_TARGET,
        "warehouse_uri": "duckdb://lakehouse",
        "warehouse_pool": None,
    }
    config.write_text(
        yaml.safe_dump(
            {
                "default_profile": "staging",
                "dbt": {"project_dir": "dbt", "profiles_dir": "dbt_profiles", "manifest": "dbt/target/manifest.json"},
                "meltano": {"project_dir": "meltano"},
                "profiles": {"staging": profile},
            }
        )
    )
    return fx, config


@pytest.mark.meltano
def test_a_loader_crash(bikeshare, monkeypatch):
    fx, config = bikeshare
    folder = fx.root / "a_folder.duckdb"
    folder.mkdir()
    monkeypatch.setenv("BIKESHARE_LAKEHOUSE_PATH", str(folder))  # the loader cannot open a folder as its file
    exc = _meltano_task(config, "staging", ["run", "tap-fleet", "target-lakehouse"], "tap-fleet")
    [root] = [line for line in str(exc).splitlines() if "IOException" in line][-1:]
    root = root.split("target-lakehouse", 1)[1].strip()
    assert root.startswith(f'duckdb.duckdb.IOException: IO Error: Could not read from file "{folder}"'), root
    summary = f"meltano --environment staging run tap-fleet target-lakehouse exited with 1: {root}"
    assert_root_everywhere(exc, summary, root)


@pytest.mark.meltano
def test_a_traceback_through_meltanos_catalog_discovery(bikeshare):
    fx, config = bikeshare
    meltano_yml = fx.meltano_dir / "meltano.yml"
    data = yaml.safe_load(meltano_yml.read_text())
    [fleet] = [p for p in data["plugins"]["extractors"] if p["name"] == "tap-fleet"]
    fleet["config"]["streams"][0]["columns"]["model"] = "strin"  # a typo the tap refuses in discovery
    meltano_yml.write_text(yaml.safe_dump(data, sort_keys=False))
    exc = _meltano_task(config, "staging", ["run", "tap-fleet", "target-lakehouse"], "tap-fleet")
    root = "ValueError: stream bikes: unknown column types ['strin']"
    summary = f"meltano --environment staging run tap-fleet target-lakehouse exited with 1: {root}"
    assert_root_everywhere(exc, summary, root)
    assert "Catalog discovery failed" in str(exc)  # it came through Meltano's discovery


@pytest.mark.meltano  # (dbt, in this process)
@pytest.mark.parametrize("case", ["parse", "build"])
def test_a_dbt_compile_error(bikeshare, case):
    """At parse time (a Jinja syntax error: dbt cannot run at all) and at build time (a model whose
    compilation raises: it fails, what reads it is skipped)."""
    from orchestrator.airflow.dbt_task import dbt_alert_context
    from orchestrator.airflow.tasks import TaskFailure
    from orchestrator.runners.dbt import DbtError, DbtProjectRef, run_dbt

    fx, _ = bikeshare
    from fixture_project import DBT_TARGET

    ref = DbtProjectRef(fx.dbt_dir, fx.profiles_dir, DBT_TARGET)
    run_dbt(["deps", "--quiet"], env=fx.env, project=ref)
    model = fx.dbt_dir / "models" / "marts" / "quality" / "dq_bike_inspections.sql"
    path = "models/marts/quality/dq_bike_inspections.sql"
    if case == "parse":
        model.write_text(model.read_text().replace("select", "select {{ ref('stg_fleet__inspections' }},", 1))
        root = f"Compilation Error in model dq_bike_inspections ({path}): unexpected '}}', expected ')'"
        args = ["build", "--select", "dq_bike_inspections"]
    else:
        raise_it = "{% if execute %}{{ exceptions.raise_compiler_error('inspections need a bike_code') }}{% endif %}"
        model.write_text(raise_it + "\n" + model.read_text())
        root = f"Compilation Error in model dq_bike_inspections ({path}): inspections need a bike_code"
        args = ["build", "--select", "dq_bike_inspections+"]
    target = fx.root / "dbt_run"
    result = run_dbt(args, env=fx.env, project=ref, target_path=target, raise_on_failure=False)
    assert not result.success and result.root_error() == root
    alert = dbt_alert_context(target / "run_results.json", result, {}, "ingest_quality")
    exc = TaskFailure(str(DbtError(result)), alert)
    if case == "parse":
        summary = f"dbt build could not run: {root}"
    else:
        skipped = sum(1 for n in result.nodes if n.status == "skipped")
        assert skipped > 0
        summary = f"dbt build: 1 failed (model dq_bike_inspections), {skipped} skipped: {root}"
    assert result.summary() == summary
    assert_root_everywhere(exc, summary, root)
    if case == "build":
        rows = json.loads((target / "run_results.json").read_text())["results"]
        assert [r["status"] for r in rows if r["unique_id"].endswith(".dq_bike_inspections")] == ["error"]
