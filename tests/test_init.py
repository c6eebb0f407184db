"""`orchestrator init` on projects it has never seen: the bike-share fixture (a copy in pytest's
tmp dir, its profile outside the dbt project, a custom target, env_var()s without defaults) and
this repo's demo projects. Real tools: dbt parses the fixture, the written config goes through
`orchestrator check`, the written DAG file through a real Airflow DagBag."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fixture_project import (
    BIN,
    DATA_DIR_VAR,
    DBT_TARGET,
    EXTRACTORS,
    LOADER,
    MELTANO_ENVIRONMENT,
    ORCHESTRATION_TAGS,
    WAREHOUSE_VAR,
    FixtureCopy,
    copy_fixture,
)
from test_dag_integrity import _dagbag

from orchestrator.cli import main
from orchestrator.config import REPO_ROOT, load_config
from orchestrator.init.projects import inspect_meltano, warehouse_uri
from orchestrator.plan import build_plan

pytestmark = pytest.mark.meltano
TAGS = ("operations", "ingest_quality", "planning")  # the fixture's tags, most frequent first
ENV_VARS = {DATA_DIR_VAR, WAREHOUSE_VAR}  # what meltano.yml and profiles.yml read without a default


def _fixture_env(fx: FixtureCopy) -> dict[str, str]:
    keep = (DATA_DIR_VAR, WAREHOUSE_VAR, "MELTANO_DATABASE_URI", "DBT_LOG_PATH", "DBT_SEND_ANONYMOUS_USAGE_STATS")
    return {k: fx.env[k] for k in keep}


def _use(monkeypatch, fx: FixtureCopy) -> None:
    for k, v in _fixture_env(fx).items():
        monkeypatch.setenv(k, v)
    for k in ("PIPELINE_PROFILE", "DBT_PROFILES_DIR", "ORCHESTRATOR_VAR_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ORCHESTRATION_CONFIG", "")  # the DAG files set it: restored after the test


def _args(fx: FixtureCopy, *extra: str) -> list[str]:
    """As a user writes them, from a deploy folder beside the projects: relative paths."""
    return [
        "init",
        "--dbt-project",
        "../bikeshare/dbt",
        "--meltano-project",
        "../bikeshare/meltano",
        "--dbt-profiles-dir",
        "../bikeshare/dbt_profiles",
        "--target",
        DBT_TARGET,
        *extra,
    ]


def _init(monkeypatch, capsys, fx: FixtureCopy, folder: str, *extra: str) -> tuple[int, str, str, Path]:
    deploy = fx.root.parent / folder
    deploy.mkdir(exist_ok=True)
    monkeypatch.chdir(deploy)
    rc = main(_args(fx, *extra))
    out = capsys.readouterr()
    return rc, out.out, out.err, deploy / "orchestration.yml"


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> FixtureCopy:
    """A copy of the fixture with its manifest (`dbt deps` + `dbt parse`, what a deploy runs)."""
    from orchestrator.runners.dbt import DbtProjectRef, run_dbt

    fx = copy_fixture(tmp_path_factory.mktemp("init"))
    project = DbtProjectRef(fx.dbt_dir, fx.profiles_dir, DBT_TARGET)
    for step in ("deps", "parse"):  # in-process: a dbt subprocess takes seconds more to start
        run_dbt([step, "--quiet"], env=fx.env, project=project)
    return fx


# ---------------------------------------------------------------------------------------- the fixture


def test_init_writes_a_config_that_checks_clean(parsed, monkeypatch, capsys):
    _use(monkeypatch, parsed)
    started = time.monotonic()
    rc, out, err, config = _init(monkeypatch, capsys, parsed, "deploy")
    print(f"init with an existing manifest: {time.monotonic() - started:.2f} s", file=sys.stderr)
    assert rc == 0, err
    assert "tags [operations, ingest_quality, planning]: 6 dbt DAGs, 0 error(s)  kept" in out
    assert "chosen: [operations, ingest_quality, planning]" in out

    data = yaml.safe_load(config.read_text())
    assert data["dbt"] == {
        "project_dir": "../bikeshare/dbt",
        "profiles_dir": "../bikeshare/dbt_profiles",
        "manifest": "../bikeshare/dbt/target/manifest.json",
        "tags": list(TAGS),
    }
    assert data["meltano"] == {"project_dir": "../bikeshare/meltano"}
    assert data["default_profile"] == MELTANO_ENVIRONMENT
    assert data["profiles"][MELTANO_ENVIRONMENT] == {
        "meltano_environment": MELTANO_ENVIRONMENT,
        "loader": LOADER,
        "extractors": list(EXTRACTORS),
        "dbt_target": DBT_TARGET,
        "warehouse_uri": "duckdb://lakehouse",  # the stem of $BIKESHARE_LAKEHOUSE_PATH
        "warehouse_pool": None,
        "env": {
            "ALERTING_OUTBOX_URL": "sqlite:///var/alerting/outbox.sqlite",  # beside the config, not the cwd
            **dict.fromkeys(sorted(ENV_VARS), "CHANGE-ME"),
        },
    }
    written = "".join(p.read_text() for p in config.parent.rglob("*") if p.is_file())
    for var in (WAREHOUSE_VAR, "MELTANO_DATABASE_URI", "DBT_LOG_PATH"):  # nothing is copied from the environment
        assert parsed.env[var] not in written

    env = load_config(config).profile.environment()
    assert env["ALERTING_OUTBOX_URL"] == f"sqlite:///{config.parent}/var/alerting/outbox.sqlite"
    assert main(["--config", str(config), "check"]) == 0
    assert "0 error(s)" in capsys.readouterr().out
    plan = build_plan(config, cache_dir=None)
    assert {d.dag_id for d in plan.meltano_dags()} == {"meltano_tap_docks", "meltano_tap_fleet"}
    assert {d.tag for d in plan.dbt_dags() if d.tag} == set(ORCHESTRATION_TAGS)
    assert {f"dbt_{t}" for t in TAGS} <= {d.dag_id for d in plan.dbt_dags()}
    assert f"check: {len(plan.dags)} DAGs (6 dbt), 1 warning(s), 0 error(s)" in out
    assert "orchestrator --config orchestration.yml check" in out  # the next steps


def test_init_again_changes_nothing_and_a_change_needs_force(parsed, monkeypatch, capsys):
    _use(monkeypatch, parsed)
    rc, _, err, config = _init(monkeypatch, capsys, parsed, "again")
    assert rc == 0, err
    files = [config, config.parent / "alerting.yml", *sorted((config.parent / "dags").iterdir())]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}

    rc, out, _, _ = _init(monkeypatch, capsys, parsed, "again")
    assert rc == 0 and "nothing changed" in out and out.count(": unchanged") == 4
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before

    rc, out, err, _ = _init(monkeypatch, capsys, parsed, "again", "--tags", "planning,operations")
    assert rc == 1
    assert f"error: {config}: exists and differs from what init would write; --force overwrites it" in err
    assert "nothing written" in err
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before

    rc, out, err, _ = _init(monkeypatch, capsys, parsed, "again", "--tags", "planning,operations", "--force")
    assert rc == 0, err
    assert "orchestration.yml: overwritten (the previous one is orchestration.yml.bak)" in out
    assert config.with_name("orchestration.yml.bak").read_bytes() == before[config][0]
    assert yaml.safe_load(config.read_text())["dbt"]["tags"] == ["planning", "operations"]
    assert "Other tags in the manifest (nodes carrying them): ingest_quality (3)" in config.read_text()
    assert not (config.parent / "dags" / "orchestrator_dags.py.bak").exists()  # unchanged: no backup


def test_the_dag_file_renders_the_plan_in_a_dagbag(parsed, monkeypatch, capsys):
    _use(monkeypatch, parsed)
    rc, _, err, config = _init(monkeypatch, capsys, parsed, "bag")
    assert rc == 0, err
    dags = config.parent / "dags"
    assert sorted(p.name for p in dags.iterdir()) == ["orchestrator_dags.py", "orchestrator_plan_errors.py"]
    text = (dags / "orchestrator_dags.py").read_text()
    assert "airflow" in text and "dag" in text and "globals().update(render_dags(config_path=CONFIG))" in text
    assert '.joinpath("../orchestration.yml")' in text  # dags/ beside the config: relative

    monkeypatch.chdir(parsed.root.parent)  # the DAG file finds its config from its own location
    bag = _dagbag(dags, monkeypatch, ORCHESTRATOR_CACHE_DIR="")
    assert bag.import_errors == {}
    plan = build_plan(config, cache_dir=None)
    assert sorted(bag.dag_ids) == sorted(d.dag_id for d in plan.dags)
    for spec in plan.dags:
        outlets = sorted(a.name for t in bag.dags[spec.dag_id].tasks for a in t.outlets)
        assert outlets == sorted(spec.outlets), spec.dag_id
    assert bag.dags["dbt_operations"].tasks[0].outlets[0].uri.startswith("duckdb://lakehouse/")
    # tasks load the config by ORCHESTRATION_CONFIG: the DAG file pins it in the process that parses it
    assert os.environ["ORCHESTRATION_CONFIG"] == str(config)


def test_a_broken_manifest_leaves_out_only_the_dbt_dags_and_says_why(parsed, monkeypatch, capsys, tmp_path):
    _use(monkeypatch, parsed)
    rc, _, err, config = _init(monkeypatch, capsys, parsed, "broken")
    assert rc == 0, err
    broken = tmp_path / "manifest.json"
    broken.write_text((parsed.dbt_dir / "target" / "manifest.json").read_text()[:4000])
    config.write_text(config.read_text().replace("../bikeshare/dbt/target/manifest.json", str(broken)))
    bag = _dagbag(config.parent / "dags", monkeypatch, ORCHESTRATOR_CACHE_DIR="")
    errors = {Path(f).name: e for f, e in bag.import_errors.items()}
    assert set(errors) == {"orchestrator_plan_errors.py"}
    assert f"the dbt DAGs are left out: {broken}: truncated or not valid JSON" in errors["orchestrator_plan_errors.py"]
    assert set(bag.dag_ids) == {"tick", "meltano_tap_docks", "meltano_tap_fleet", "meltano_state", "alerting"}


def test_without_a_manifest_no_tags_then_parse_proposes_them(monkeypatch, capsys, tmp_path):
    fx = copy_fixture(tmp_path)
    _use(monkeypatch, fx)
    started = time.monotonic()
    rc, out, err, config = _init(monkeypatch, capsys, fx, "deploy")
    print(f"init without a manifest: {time.monotonic() - started:.2f} s", file=sys.stderr)
    assert rc == 1, err  # written, but check's verdict has an error: the exit code says so
    assert "no dbt manifest at " in out and "or pass --parse" in out
    assert yaml.safe_load(config.read_text())["dbt"]["tags"] == []
    assert "manifest not found (run `dbt parse` to produce it)" in err  # check's verdict, printed
    assert not (fx.dbt_dir / "target").exists()  # init never parses unless asked

    # the real command line, as a user runs it: --parse writes the project's own target/
    env = {**os.environ, **_fixture_env(fx)}
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "orchestrator"), *_args(fx, "--parse", "--force")],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    print(f"init --parse without a manifest: {time.monotonic() - started:.2f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ran dbt deps" in proc.stdout and "ran dbt parse" in proc.stdout
    assert (fx.dbt_dir / "target" / "manifest.json").exists()
    assert yaml.safe_load(config.read_text())["dbt"]["tags"] == list(TAGS)
    assert main(["--config", str(config), "check"]) == 0


def test_the_dag_file_names_an_outside_config_by_its_absolute_path(parsed, monkeypatch, capsys, tmp_path):
    _use(monkeypatch, parsed)
    airflow_dags = tmp_path / "airflow" / "dags"
    rc, _, err, config = _init(monkeypatch, capsys, parsed, "outside", "--dags-folder", str(airflow_dags))
    assert rc == 0, err
    assert f'CONFIG = Path("{config}")' in (airflow_dags / "orchestrator_dags.py").read_text()
    assert not (config.parent / "dags").exists()


# ---------------------------------------------------------------------------------------- the demo


def test_init_on_the_demo_projects_checks_clean(installed, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    args = ["init", "--dbt-project", str(REPO_ROOT / "dbt_project"), "--meltano-project", str(REPO_ROOT / "meltano")]
    args += ["--loader", "target-duckdb", "--extractors", "tap-shop,tap-crm,tap-marketing"]
    assert main(args) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load((tmp_path / "orchestration.yml").read_text())
    profile = data["profiles"]["dev"]
    assert profile["warehouse_uri"] == "duckdb://warehouse"
    # MELTANO_PROJECT_ROOT is Meltano's own
    assert set(profile["env"]) == {"ALERTING_OUTBOX_URL", "DEMO_DATA_DIR", "WAREHOUSE_DUCKDB_PATH"}
    assert data["dbt"]["project_dir"] == str(REPO_ROOT / "dbt_project")  # given absolute: written absolute
    # The demo's domains; its cadence and privacy labels are left out, saying why (issue 21, item 2).
    assert "chosen: [core, finance, marketing]" in out
    assert "  pii           3  left out: its name marks a data classification label (like pii, sensitive, gdpr)" in out
    assert main(["--config", str(tmp_path / "orchestration.yml"), "check"]) == 0


# ---------------------------------------------------------------------------------------- bad inputs


def _meltano_without_loaders(root: Path) -> Path:
    data = yaml.safe_load((root / "meltano" / "meltano.yml").read_text())
    del data["plugins"]["loaders"]
    (root / "meltano" / "meltano.yml").write_text(yaml.safe_dump(data))
    return root / "meltano" / "meltano.yml"


def _meltano_with_two_loaders(root: Path) -> Path:
    data = yaml.safe_load((root / "meltano" / "meltano.yml").read_text())
    data["plugins"]["loaders"].append({**data["plugins"]["loaders"][0], "name": "target-other"})
    (root / "meltano" / "meltano.yml").write_text(yaml.safe_dump(data))
    return root / "meltano" / "meltano.yml"


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing dbt_project.yml", "dbt_project.yml: file not found: --dbt-project must be a dbt project"),
        ("missing meltano.yml", "meltano.yml: file not found: --meltano-project must be a Meltano project"),
        ("meltano.yml without loaders", "meltano.yml: defines no loaders (plugins.loaders)"),
        (
            "two loaders and no --loader",
            "meltano.yml: 2 loaders (target-lakehouse, target-other) and no schedule or job says which one runs: "
            "pass --loader NAME",
        ),
        ("unreadable profiles.yml", "profiles.yml: line 2, column 1: not valid YAML"),
    ],
)
def test_a_bad_input_is_a_message_naming_the_file(tmp_path, case, message):
    root = tmp_path / "bikeshare"
    shutil.copytree(
        REPO_ROOT / "tests" / "fixtures" / "bikeshare", root, ignore=shutil.ignore_patterns(".meltano", "target")
    )
    culprit = {
        "missing dbt_project.yml": root / "dbt" / "dbt_project.yml",
        "missing meltano.yml": root / "meltano" / "meltano.yml",
        "unreadable profiles.yml": root / "dbt_profiles" / "profiles.yml",
    }.get(case)
    if case.startswith("missing"):
        culprit.unlink()
    elif case == "unreadable profiles.yml":
        culprit.write_text("bikeshare_lakehouse: [unclosed\n")
    elif case == "meltano.yml without loaders":
        culprit = _meltano_without_loaders(root)
    else:
        culprit = _meltano_with_two_loaders(root)
    (tmp_path / "deploy").mkdir()
    proc = subprocess.run(
        [str(BIN / "orchestrator"), *_args(FixtureCopy(root, {}))],
        cwd=tmp_path / "deploy",
        env={k: v for k, v in os.environ.items() if k != "DBT_PROFILES_DIR"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"error: {culprit}") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert list((tmp_path / "deploy").iterdir()) == []  # nothing written


# ---------------------------------------------------------------------------------------- the rules


MELTANO_TWO_LOADERS = """
default_environment: prod
environments: [{name: dev}, {name: prod}]
env: {SHARED_ROOT: /srv}
plugins:
  extractors:
  - {name: tap-base, namespace: tap_base, config: {token: "${BASE_TOKEN}"}}
  - {name: tap-a, inherit_from: tap-base, config: {path: "$A_PATH/x", root: "${SHARED_ROOT}", esc: "\\\\${NOT_A_VAR}"}}
  - {name: tap-b, inherit_from: tap-base, config: {schema: "${MELTANO_EXTRACT__LOAD_SCHEMA}"}}
  - {name: tap-lone}
  loaders:
  - {name: target-x, config: {host: "${X_HOST}"}}
  - {name: target-y, config: {host: "${Y_HOST}"}}
schedules:
- {name: a-daily, extractor: tap-a, loader: target-y, interval: "@daily"}
- {name: lone-daily, extractor: tap-lone, loader: target-y, interval: "@daily"}
- {name: b-daily, job: b-job, interval: "@daily"}
jobs:
- {name: b-job, tasks: ["tap-b target-x"]}
"""


def test_the_loader_schedules_use_most_and_the_extractors_that_are_not_only_bases(tmp_path):
    (tmp_path / "meltano.yml").write_text(MELTANO_TWO_LOADERS)
    side = inspect_meltano(tmp_path, None, None, None)
    assert (side.environment, side.environment_note) == ("prod", "default_environment of meltano.yml")
    assert (side.loader, side.loader_note) == ("target-y", "the loader most schedules and jobs use (2)")
    assert side.extractors == ("tap-a", "tap-b", "tap-lone")  # tap-base: only a base
    # inherited config counts; Meltano's own, `env:`-defined and escaped variables do not
    assert side.env_vars.where == {
        "BASE_TOKEN": ["meltano.yml: tap-a.token", "meltano.yml: tap-b.token"],
        "A_PATH": ["meltano.yml: tap-a.path"],
        "Y_HOST": ["meltano.yml: target-y.host"],
    }
    side = inspect_meltano(tmp_path, "dev", "target-x", ("tap-b",))
    assert (side.environment, side.loader, side.extractors) == ("dev", "target-x", ("tap-b",))


@pytest.mark.parametrize(
    "adapter, settings, uri",
    [
        ("duckdb", {"path": "/data/lake/warehouse.duckdb"}, "duckdb://warehouse"),
        ("duckdb", {"path": "md:analytics"}, "duckdb://analytics"),
        ("duckdb", {"path": ":memory:"}, "duckdb://p"),
        ("postgres", {"host": "db.internal", "port": 5433, "dbname": "dwh"}, "postgres://db.internal:5433/dwh"),
        ("postgres", {"host": "db.internal", "database": "dwh"}, "postgres://db.internal:5432/dwh"),
        (
            "snowflake",
            {"account": "xy12345.eu-west-1", "database": "ANALYTICS"},
            "snowflake://xy12345.eu-west-1/ANALYTICS",
        ),
        ("redshift", {"host": "rs.example.com", "dbname": "dev"}, "redshift://rs.example.com/dev"),
        ("bigquery", {"project": "my-gcp-project", "dataset": "raw"}, "bigquery://my-gcp-project"),
    ],
)
def test_the_warehouse_uri_follows_the_adapter(adapter, settings, uri):
    assert warehouse_uri(adapter, settings, "p")[0] == uri
