"""The Translator is the one extension point for names: a subclass named in orchestration.yml
changes the Asset names, groups and DAG ids in the plan and all the way into a real DagBag; and
Meltano's state_id_suffix reaches the state IDs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import pipeline_config, run_kwargs

from orchestrator.config import REPO_ROOT, ConfigError, load_config
from orchestrator.plan import plan_from_config
from orchestrator.plan.translator import Translator

SUPPORT = Path(__file__).parent / "support"


def _config(tmp_path: Path, **top) -> Path:
    path = pipeline_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data.update(top)
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_subclass_renames_everything_in_the_plan(tmp_path, monkeypatch, installed):
    monkeypatch.syspath_prepend(str(SUPPORT))
    config = load_config(_config(tmp_path, translator="custom_naming.WarehouseNaming"), "embedded")
    plan = plan_from_config(config, cache_dir=None)
    ids = {d.dag_id for d in plan.dags}
    assert {
        "team_core",
        "team_finance",
        "team_marketing",
        "team_leftovers_1",
        "team_leftovers_2",
        "ingest__tap_shop",
        "ingest__tap_crm",
        "ingest__tap_marketing",
    } <= ids
    finance = plan.dag("team_finance")
    assert (
        "lake.analytics.fct_orders" in finance.schedule.assets and "lake.raw_shop.payments" in finance.schedule.assets
    )
    assert plan.dag("ingest__tap_shop").outlets == (
        "lake.raw_shop.customers",
        "lake.raw_shop.orders",
        "lake.raw_shop.payments",
    )
    assert {a.group for n, a in plan.assets.items() if n != "tick"} == {"lake"}
    assert plan.errors == []


def test_the_subclass_names_reach_a_dagbag(tmp_path, monkeypatch, installed):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.setenv("PYTHONPATH", f"{SUPPORT}:{REPO_ROOT}")
    monkeypatch.setenv("ORCHESTRATION_CONFIG", str(_config(tmp_path, translator="custom_naming.WarehouseNaming")))
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "")
    monkeypatch.setenv("PIPELINE_PROFILE", "embedded")
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    assert {"team_core", "team_finance", "ingest__tap_shop", "team_leftovers_2"} <= set(bag.dag_ids)
    finance = bag.dags["team_finance"]
    assert {a.name for a in finance.schedule} >= {"lake.analytics.fct_orders", "lake.raw_shop.payments"}
    outlets = {a.name: a for t in finance.tasks for a in t.outlets}
    assert outlets["lake.analytics.fct_payments"].group == "lake"
    assert outlets["lake.analytics.fct_payments"].uri == "duckdb://warehouse/analytics/fct_payments"
    # the dbt task maps each node to the renamed Asset it emits
    relations = run_kwargs(finance.tasks[0])["relations"]  # read from the plan when it runs
    assert relations["model.demo_analytics.fct_payments"] == "lake.analytics.fct_payments"


def test_a_translator_that_cannot_be_imported_is_an_error_naming_the_key(tmp_path):
    config = load_config(_config(tmp_path, translator="no_such_module.Naming"), "embedded")
    with pytest.raises(ConfigError, match=r"orchestration.yml: translator: cannot import 'no_such_module.Naming'"):
        plan_from_config(config, cache_dir=None)
    config = load_config(_config(tmp_path, translator="pathlib.Path"), "embedded")
    with pytest.raises(ConfigError, match="is not a subclass of orchestrator.plan.translator.Translator"):
        plan_from_config(config, cache_dir=None)


def test_meltanos_state_id_suffix_reaches_the_state_ids(tmp_path, monkeypatch, installed):
    """Meltano appends the environment's `state_id_suffix` (with ${VAR}s expanded) to every state ID
    `meltano run` writes: the Meltano DAGs, the state DAG and its busy guard must use the same."""
    import shutil

    project = tmp_path / "meltano"
    shutil.copytree(REPO_ROOT / "meltano", project, ignore=shutil.ignore_patterns(".meltano", "data", "tap-jsonl-dir"))
    main = yaml.safe_load((project / "meltano.yml").read_text())
    main["environments"] = [{"name": "dev", "state_id_suffix": "${BACKFILL_LABEL}"}, {"name": "prod"}]
    (project / "meltano.yml").write_text(yaml.safe_dump(main))
    path = _config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["meltano"]["project_dir"] = str(project)
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("BACKFILL_LABEL", "q3")
    plan = plan_from_config(load_config(path, "embedded"), cache_dir=tmp_path / "cache")
    assert plan.dag("meltano_tap_shop").state_ids == ("dev:tap-shop-to-target-duckdb:q3",)
    state = plan.dag("meltano_state")
    assert state.state_dags["dev:tap-shop-to-target-duckdb:q3"] == "meltano_tap_shop"
    assert Translator().parse_state_id("dev:tap-shop-to-target-duckdb:q3").suffix == "q3"
    # the cache keys on the variables the plan read: a new value is a new plan, not a stale one
    monkeypatch.setenv("BACKFILL_LABEL", "q4")
    again = plan_from_config(load_config(path, "embedded"), cache_dir=tmp_path / "cache")
    assert again.dag("meltano_tap_shop").state_ids == ("dev:tap-shop-to-target-duckdb:q4",)


def test_the_plan_cache_follows_the_variables_of_a_load_schema(tmp_path, monkeypatch, installed):
    """A loader schema `${VAR}` names the Assets: changing the variable changes the plan at once."""
    import shutil

    project = tmp_path / "meltano"
    shutil.copytree(REPO_ROOT / "meltano", project, ignore=shutil.ignore_patterns(".meltano", "data", "tap-jsonl-dir"))
    loaders = project / "load" / "loaders.meltano.yml"
    loaders.write_text(
        loaders.read_text().replace(
            "default_target_schema: $MELTANO_EXTRACT__LOAD_SCHEMA", "default_target_schema: ${LANDING_SCHEMA}", 1
        )
    )
    path = _config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["meltano"]["project_dir"] = str(project)
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("LANDING_SCHEMA", "landing_a")
    cache = tmp_path / "cache"
    first = plan_from_config(load_config(path, "embedded"), kinds=("meltano",), cache_dir=cache)
    assert first.dag("meltano_tap_shop").outlets[0].startswith("landing_a.")
    monkeypatch.setenv("LANDING_SCHEMA", "landing_b")
    second = plan_from_config(load_config(path, "embedded"), kinds=("meltano",), cache_dir=cache)
    assert second.dag("meltano_tap_shop").outlets[0].startswith("landing_b.")
    assert len(list(cache.glob("plan-*.msgpack"))) == 1  # one cache entry, rebuilt: only the variable differs


# ------------------------------------------------------------------ every name, from the translator

NAMING = {  # Translator methods that make a name (every one must be overridable and reach everything)
    "asset_name",
    "asset_group",
    "tick_asset",
    "tick_dag_id",
    "state_dag_id",
    "alerting_dag_id",
    "tag_dag_id",
    "tag_stage_dag_id",
    "monolith_dag_id",
    "catch_all_dag_id",
    "tests_dag_id",
    "meltano_dag_id",
    "model_task_id",
    "task_id",
    "state_id",
}
NOT_NAMING = {  # what a node or an Asset is, or reading a name back: no id is made here
    "asset_uri",
    "asset_link",
    "dbt_asset_extra",
    "meltano_asset_extra",
    "owner",
    "stream_table",
    "parse_state_id",
}


def test_every_naming_method_is_known_and_the_support_subclass_overrides_each(monkeypatch):
    """A new method on Translator is either a name (then EveryNameRenamed overrides it, and the
    tests below check it reaches everything) or listed as none."""
    import inspect

    monkeypatch.syspath_prepend(str(SUPPORT))  # not left to an earlier test (alone, or on another xdist worker)

    from custom_naming import EveryNameRenamed

    public = {n for n, v in inspect.getmembers(Translator, inspect.isfunction) if not n.startswith("_")}
    assert public == NAMING | NOT_NAMING
    assert set(vars(EveryNameRenamed)) >= NAMING


def _names(plan) -> dict[str, set[str]]:
    """Every DAG id, task id, Asset name and state ID a plan makes."""
    dags = plan.dags
    return {
        "dag ids": {d.dag_id for d in dags},
        "task ids": {t.task_id for d in dags for t in d.tasks},
        "assets": set(plan.assets) | {a for d in dags for a in (*d.outlets, *d.schedule.assets)},
        "state ids": {s for d in dags for s in getattr(d, "state_ids", ())},
    }


def _default_names(config_path: Path, **dbt) -> dict[str, set[str]]:
    data = yaml.safe_load(config_path.read_text())
    data.pop("translator", None)
    data["dbt"].update(dbt)
    plain = config_path.with_name("default_naming.yml")
    plain.write_text(yaml.safe_dump(data))
    return _names(plan_from_config(load_config(plain, "embedded"), cache_dir=None))


def test_no_default_name_survives_in_a_dagbag(tmp_path, monkeypatch, installed):
    """With every naming method overridden, not one DAG id, task id, Asset name or state ID of the
    DAGs Airflow parses is a default one: per-model tasks, the tests task, the tick, the state and
    alerting DAGs included, and every name a task is handed (outlets, tables, relations, state IDs,
    lateness expectations)."""
    from airflow.dag_processing.dagbag import DagBag

    path = _config(tmp_path, translator="custom_naming.EveryNameRenamed")
    data = yaml.safe_load(path.read_text())
    data["dbt"]["task_granularity"] = "model"
    path.write_text(yaml.safe_dump(data))
    default = _default_names(path)
    assert all(default.values()), "the default plan has names of every kind"
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.setenv("PYTHONPATH", f"{SUPPORT}:{REPO_ROOT}")
    monkeypatch.setenv("ORCHESTRATION_CONFIG", str(path))
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "")
    monkeypatch.setenv("PIPELINE_PROFILE", "embedded")
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}

    seen: dict[str, set[str]] = {"dag ids": set(bag.dag_ids), "task ids": set(), "assets": set(), "state ids": set()}
    for dag in bag.dags.values():
        seen["assets"] |= {a.name for a in dag.schedule} if isinstance(dag.schedule, list) else set()
        for task in dag.tasks:
            seen["task ids"].add(task.task_id)
            seen["assets"] |= {a.name for a in (*task.outlets, *task.inlets)}
            kwargs = run_kwargs(task) if hasattr(task, "op_kwargs") else {}  # the cycle wait: a sensor (its inputs)
            seen["assets"] |= set(getattr(task, "inputs", {}))
            seen["assets"] |= {*kwargs.get("outlets", {}), *kwargs.get("tables", {}), *kwargs.get("tick", {})}
            seen["assets"] |= set(kwargs.get("relations", {}).values())
            seen["state ids"] |= {*kwargs.get("state_ids", []), *kwargs.get("state_dags", {})}
            for e in kwargs.get("expectations", []):
                seen["dag ids"].add(e["dag_id"])
                seen["assets"] |= {*e["upstream"], *e["outlets"]}
        if "state_id" in dag.params:
            seen["state ids"] |= set(dag.params.get_param("state_id").schema["enum"])
    assert {kind: names & default[kind] for kind, names in seen.items()} == dict.fromkeys(seen, set())
    assert "renamed_dbt_test_relationships" in seen["task ids"] and "renamed_tick" in seen["assets"]
    # the Meltano task counts records by table, whatever the Assets are called
    tables = bag.dags["renamed_load_tap_shop"].tasks[0].op_kwargs["tables"]
    assert tables == {f"renamed.raw_shop.{t}": t for t in ("customers", "orders", "payments")}


def test_no_default_name_survives_in_a_monolith_or_a_tests_only_dag(tmp_path, monkeypatch):
    """The names the demo does not make: the monolith DAG, and a tests-only DAG and its task."""
    from test_plan import CONFIG, EXTRACTORS, MELTANO, SOURCES, dbt_test, model, write_manifest

    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    (tmp_path / "meltano" / "extract").mkdir(parents=True)
    (tmp_path / "meltano" / "meltano.yml").write_text(MELTANO)
    (tmp_path / "meltano" / "extract" / "taps.meltano.yml").write_text(EXTRACTORS)
    nodes = [
        model("a", ["core"], ["source.p.shop.orders"]),
        model("b", ["finance"], ["model.p.a"]),
        model("c", ["marketing"], ["model.p.a"]),
        dbt_test("rel_b_c", ["model.p.b", "model.p.c"]),
    ]
    write_manifest(tmp_path / "manifest.json", nodes, SOURCES)
    for mode, made in (
        ("multi", "renamed_tests_renamed_tag_finance_renamed_tag_marketing"),
        ("monolith", "renamed_everything"),
    ):
        path = tmp_path / f"{mode}.yml"
        path.write_text(CONFIG + "translator: custom_naming.EveryNameRenamed\n")
        config = load_config(path, "p").with_overrides(mode=mode)
        renamed = _names(plan_from_config(config, cache_dir=None))
        plain = load_config(path, "p").model_copy(update={"translator": None}).with_overrides(mode=mode)
        default = _names(plan_from_config(plain, cache_dir=None))
        assert made in renamed["dag ids"]
        assert {kind: names & default[kind] for kind, names in renamed.items()} == dict.fromkeys(renamed, set())


@pytest.mark.subprocess
def test_the_meltano_task_reports_record_counts_on_renamed_assets(tmp_path, monkeypatch, installed):
    """The record counts Meltano logs per stream reach the Asset events by the plan's table mapping,
    not by reading the table back out of the Asset name (a renamed Asset kept no table in it)."""
    import stat
    from collections import defaultdict
    from types import SimpleNamespace

    from airflow.sdk import Asset

    from orchestrator.airflow.tasks import meltano_run

    fake = tmp_path / "fake-meltano"
    metric = '{"type":"counter","metric":"record_count","value":7,"tags":{"stream":"orders"}}'
    fake.write_text(f"#!/bin/sh\necho '2026-01-01T00:00:00Z [info     ] tap-shop METRIC: {metric}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    path = _config(tmp_path, translator="custom_naming.OpaqueAssets")
    data = yaml.safe_load(path.read_text())
    data["meltano"]["executable"] = str(fake)
    path.write_text(yaml.safe_dump(data))
    monkeypatch.syspath_prepend(str(SUPPORT))
    plan = plan_from_config(load_config(path, "embedded"), kinds=("meltano",), cache_dir=None)
    task = plan.dag("meltano_tap_shop").tasks[0]
    outlets = {a: plan.uri(a) for a in task.outlets}
    events: dict = defaultdict(SimpleNamespace)
    meltano_run(
        argv=list(task.args),
        extractors=["tap-shop"],
        outlets=outlets,
        tables={asset: table for table, asset in task.relations},
        config_path=str(path),
        profile="embedded",
        outlet_events=events,
    )
    orders = next(a for a in task.outlets if plan.assets[a].relation == "raw_shop.orders")
    assert "orders" not in orders
    assert events[Asset(name=orders, uri=outlets[orders])].extra["records_extracted"] == 7
