"""The Translator is the one extension point for names: a subclass named in orchestration.yml
changes the Asset names, groups and DAG ids in the plan and all the way into a real DagBag; and
Meltano's state_id_suffix reaches the state IDs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import pipeline_config

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
    assert finance.tasks[0].op_kwargs["relations"]["model.demo_analytics.fct_payments"] == "lake.analytics.fct_payments"


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
    assert len(list(cache.glob("plan-*.pickle"))) == 1  # one cache entry, rebuilt: only the variable differs
