"""`orchestrator check` tells the truth: it exits 0 if and only if a real Airflow DagBag of dags/,
with the same config, has no import errors, and it names the DAG files that fail.

One small project (tests/test_plan.py's builders) varied one way per case: valid configs, and each
class of bad input that gets past the schema (an Asset URI Airflow refuses, a per-model task id
clash, a forced cycle, DAG ids colliding across and within kinds, a generated DAG or task id too
long for Airflow...), plus a few the schema or a reader refuses. Each case costs one DagBag load.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from test_dag_integrity import DAGS, _dagbag
from test_plan import CONFIG, EXTRACTORS, MELTANO, SOURCES, model, write_manifest

from orchestrator.cli import main

ALERTING = "default: {slack_channel: '#alerts'}\n"
NODES = [
    model("orders_clean", ["core"], ["source.p.shop.orders"]),
    model("revenue", ["finance"], ["model.p.orders_clean"]),
    model("summary", [], ["model.p.revenue"]),  # untagged: the catch-all
]


def small_project(root: Path, *, config: dict | None = None, nodes=None, extractors: str = EXTRACTORS) -> Path:
    """tests/test_plan.py's project: meltano.yml (+ an include), alerting.yml, a manifest, and its
    orchestration.yml updated with `config` (dotted keys: `{"profiles.p.warehouse_uri": ...}`)."""
    (root / "meltano" / "extract").mkdir(parents=True, exist_ok=True)
    (root / "meltano" / "meltano.yml").write_text(MELTANO)
    (root / "meltano" / "extract" / "taps.meltano.yml").write_text(extractors)
    (root / "alerting.yml").write_text(ALERTING)
    write_manifest(root / "manifest.json", NODES if nodes is None else nodes, SOURCES)
    data = yaml.safe_load(CONFIG)
    for key, value in (config or {}).items():
        *parents, last = key.split(".")
        section = data
        for part in parents:
            section = section.setdefault(part, {})
        section[last] = value
    (root / "orchestration.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "orchestration.yml"


LONG = "x" * 251  # longer than Airflow's 250 characters for a DAG or task id
SCHEDULED = (
    EXTRACTORS + "schedules:\n- {name: hourly-shop, extractor: tap-shop, loader: target-wh, interval: '@hourly'}\n"
)

# id -> (orchestration.yml changes, manifest nodes (None: NODES), taps.meltano.yml, the expected exit code)
CASES: dict[str, tuple[dict, list | None, str, int]] = {
    # ---- valid
    "valid": ({}, None, EXTRACTORS, 0),
    "valid: monolith": ({"dbt.mode": "monolith"}, None, EXTRACTORS, 0),
    "valid: one task per model": ({"dbt.task_granularity": "model"}, None, EXTRACTORS, 0),
    "valid: the other profile (no warehouse_uri)": ({"default_profile": "prod"}, None, EXTRACTORS, 0),
    "valid: PostgreSQL Asset URIs": ({"profiles.p.warehouse_uri": "postgres://127.0.0.1:5432/wh"}, None, EXTRACTORS, 0),
    "valid: a Meltano schedule keeps its cron": ({}, None, SCHEDULED, 0),
    # ---- past the schema, refused by Airflow when the DAG files render
    "Asset URI: reserved scheme airflow://": ({"profiles.p.warehouse_uri": "airflow://warehouse"}, None, EXTRACTORS, 1),
    "Asset URI: postgres:// without a database": (
        {"profiles.p.warehouse_uri": "postgres://127.0.0.1:5432"},
        None,
        EXTRACTORS,
        1,
    ),
    "Asset URI: postgres:// without a host": ({"profiles.p.warehouse_uri": "postgres:///wh"}, None, EXTRACTORS, 1),
    "Asset URI: port out of range": ({"profiles.p.warehouse_uri": "postgres://db:99999/wh"}, None, EXTRACTORS, 1),
    "a per-model task id longer than 250": (
        {"dbt.task_granularity": "model"},
        [model("orders_clean", ["core"], ["source.p.shop.orders"]), model(LONG, ["core"])],
        EXTRACTORS,
        1,
    ),
    "a generated DAG id longer than 250": (
        {"dbt.tags": ["core", LONG]},
        [model("orders_clean", ["core"]), model("wide", [LONG])],
        EXTRACTORS,
        1,
    ),
    # ---- plan errors (some DAGs left out: dags/plan_errors.py; or a whole kind)
    "per-model task ids clash": (
        {"dbt.task_granularity": "model"},
        [model("Orders", ["core"], schema="a"), model("orders", ["core"], schema="b")],
        EXTRACTORS,
        1,
    ),
    "a forced cycle, split into stages (the default)": (
        {},
        [
            model("f1", ["finance"]),
            model("m1", ["marketing"], ["model.p.f1"]),
            model("f2", ["finance"], ["model.p.m1"]),
        ],
        EXTRACTORS,
        0,
    ),
    "a forced cycle (dbt.on_forced_cycle: error)": (
        {"dbt.on_forced_cycle": "error"},
        [
            model("f1", ["finance"]),
            model("m1", ["marketing"], ["model.p.f1"]),
            model("f2", ["finance"], ["model.p.m1"]),
        ],
        EXTRACTORS,
        1,
    ),
    "a DAG id across kinds (tick = a dbt DAG)": ({"tick.dag_id": "dbt_core"}, None, EXTRACTORS, 1),
    "a DAG id within a kind (tap-crm, tap_crm)": (
        {"profiles.p.extractors": ["tap-shop", "tap-crm", "tap_crm"]},
        None,
        EXTRACTORS + "  - {name: tap_crm, inherit_from: tap-crm}\n",
        1,
    ),
    "two tags, one DAG id": ({"dbt.tags": ["core", "finance", "Finance"]}, None, EXTRACTORS, 1),
    "the catch-all id is a tag's DAG id": ({"dbt.catch_all.dag_id": "dbt_core"}, None, EXTRACTORS, 1),
    "two nodes build one relation": (
        {},
        [model("a", ["core"], alias="same"), model("b", ["finance"], alias="same")],
        EXTRACTORS,
        1,
    ),
    "a Meltano schedule's interval is no cron": ({}, None, SCHEDULED.replace("'@hourly'", "'every hour'"), 1),
    "a profile extractor meltano.yml lacks": ({"profiles.p.extractors": ["tap-shop", "tap-nope"]}, None, EXTRACTORS, 1),
    # ---- a file that cannot be read or validated
    "schema: an Asset name Airflow forbids": ({"tick.asset": "self"}, None, EXTRACTORS, 2),
    "meltano.yml: an unknown plugin type": ({}, None, EXTRACTORS.replace("extractors:", "extractor:"), 2),
}


def _failing_files(out: str) -> set[str] | None:
    """The DAG files `check` says fail (None: it rendered none)."""
    m = re.search(r"^DAG files: \d+ of \d+ import(?:; failing: (.*))?$", out, re.M)
    if m is None:
        return None
    return {Path(f).name for f in m[1].split(", ")} if m[1] else set()


@pytest.mark.parametrize("case", list(CASES))
def test_check_passes_iff_every_dag_file_imports(tmp_path, monkeypatch, capsys, case):
    changes, nodes, extractors, expected = CASES[case]
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = small_project(tmp_path, config=changes, nodes=nodes, extractors=extractors)

    code = main(["--config", str(config), "check"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(config))
    broken = {Path(f).name: e for f, e in bag.import_errors.items()}

    assert (code == 0) == (broken == {}), f"check exited {code}; DagBag import errors: {broken}\n{out}\n{err}"
    assert code == expected, f"{out}\n{err}"
    failing = _failing_files(out)
    if failing is not None:  # check rendered the DAG files: it names the ones Airflow cannot import
        assert failing == set(broken), f"check: {failing}; DagBag: {sorted(broken)}\n{err}"
    if code == 0:
        assert bag.dag_ids, "a passing check renders DAGs"
    if "split into stages" in case:  # every DAG of the cycle renders, the later stage on what it reads
        assert {"dbt_finance", "dbt_finance_2", "dbt_marketing"} <= set(bag.dag_ids)
        assert "cycle between dbt DAGs" in out and "dbt_finance_2" in out


def test_no_render_is_the_plan_only_check(tmp_path, monkeypatch, capsys):
    """--no-render (or no Airflow) checks the plan only: what only Airflow refuses passes it."""
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = small_project(tmp_path, config={"profiles.p.warehouse_uri": "airflow://warehouse"})
    assert main(["--config", str(config), "check", "--no-render"]) == 0
    assert "DAG files:" not in capsys.readouterr().out
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "airflow" else real(name, *a, **k)
    )
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert "note: Airflow is not installed here: the DAG files were not rendered (a plan-only check)" in out


# ------------------------------------------------------------------ an init'd deployment, the user's DAG files too

USER_DAG = "from airflow.sdk import DAG\n\nwith DAG({dag_id!r}, schedule=None):\n    pass\n"
DEPLOYED: dict[str, tuple[str, str, int]] = {  # case -> (the user's file, its text, check's exit code)
    "a DAG of the user's own": ("reports.py", USER_DAG.format(dag_id="weekly_report"), 0),
    "a user DAG with the id tick": ("tick_user.py", USER_DAG.format(dag_id="tick"), 1),
    "a user file that fails at import": ("broken.py", "# airflow dag\nimport no_such_module_here\n", 1),
}


def _deployment(root: Path, changes: dict | None = None, nodes=None, extractors: str = EXTRACTORS) -> Path:
    """What `orchestrator init` writes: the config (paths.dags recorded) and its two DAG files."""
    from orchestrator.init import texts

    config = small_project(root, config={**(changes or {}), "paths.dags": "dags"}, nodes=nodes, extractors=extractors)
    (root / "dags").mkdir()
    (root / "dags" / texts.DAG_FILE).write_text(texts.dag_file_text("../orchestration.yml", True))
    (root / "dags" / texts.ERRORS_FILE).write_text(texts.errors_file_text("../orchestration.yml", True))
    return config


def _check_and_dagbag(tmp_path, config, monkeypatch, capsys, expected):
    """`check` on the deployment, then Airflow's DagBag on its folder: both agree, and on `expected`."""
    code = main(["--config", str(config), "check"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    bag = _dagbag(tmp_path / "dags", monkeypatch)
    broken = {Path(f).name for f in bag.import_errors}
    assert (code == 0) == (broken == set()), f"check exited {code}; DagBag: {bag.import_errors}\n{out}\n{err}"
    assert code == expected, f"{out}\n{err}"
    return code, out, err, bag, broken


@pytest.mark.subprocess  # check imports the folder through a DagBag in a subprocess
@pytest.mark.parametrize("case", list(DEPLOYED))
def test_check_of_an_initd_deployment_passes_iff_its_dagbag_has_no_import_errors(tmp_path, monkeypatch, capsys, case):
    """`check` imports the folder init recorded (paths.dags), the user's files included, through a
    real DagBag in a subprocess: a duplicate of one of our DAG ids is an error, as in Airflow."""
    file, text, expected = DEPLOYED[case]
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = _deployment(tmp_path)
    (tmp_path / "dags" / file).write_text(text)

    code, out, err, bag, broken = _check_and_dagbag(tmp_path, config, monkeypatch, capsys, expected)
    assert _failing_files(out) == broken, f"{out}\n{err}"
    if code == 0:
        assert "weekly_report" in bag.dag_ids and "tick" in bag.dag_ids


@pytest.mark.subprocess  # check imports the folder through a DagBag in a subprocess
def test_check_names_a_dag_file_that_raises_system_exit(tmp_path, monkeypatch, capsys):
    """Airflow's importer lets SystemExit through: check used to print nothing and exit 0."""
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = _deployment(tmp_path)
    elsewhere = tmp_path / "deployed"
    (tmp_path / "dags").rename(elsewhere)  # --dags-folder wins over paths.dags
    (elsewhere / "quits.py").write_text("# airflow dag\nraise SystemExit(0)\n")
    code = main(["--config", str(config), "check", "--dags-folder", str(elsewhere)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert f"error: {elsewhere / 'quits.py'}: does not import in Airflow's DagBag: " in err and "SystemExit" in err
    assert _failing_files(out) == {"quits.py"}


ON_A_DEPLOYMENT = [
    "valid: monolith",
    "Asset URI: reserved scheme airflow://",
    "a forced cycle, split into stages (the default)",
    "a forced cycle (dbt.on_forced_cycle: error)",
    "a DAG id across kinds (tick = a dbt DAG)",
    "meltano.yml: an unknown plugin type",
]


@pytest.mark.subprocess  # check imports the folder through a DagBag in a subprocess
@pytest.mark.parametrize("case", ON_A_DEPLOYMENT)
def test_the_same_configs_on_an_initd_deployment_with_a_user_dag(tmp_path, monkeypatch, capsys, case):
    """The property of the first test, on init's DAG files and a DAG of the user's own beside them."""
    changes, nodes, extractors, expected = CASES[case]
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    config = _deployment(tmp_path, changes, nodes, extractors)
    (tmp_path / "dags" / "reports.py").write_text(USER_DAG.format(dag_id="weekly_report"))

    code, out, err, bag, broken = _check_and_dagbag(tmp_path, config, monkeypatch, capsys, expected)
    failing = _failing_files(out)
    if failing is not None:
        assert failing == broken, f"check: {failing}; DagBag: {sorted(broken)}\n{err}"
