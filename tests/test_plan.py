"""The plan, fast and without Airflow: wiring, precedence, catch-all, ephemeral, cycles, monolith,
Meltano conventions, malformed inputs, and the real manifests of public projects."""

from __future__ import annotations

import glob
import json
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config
from orchestrator.plan import ManifestError, MeltanoProjectError, plan_from_config
from orchestrator.plan.meltano_project import stream_tables

V12 = "https://schemas.getdbt.com/dbt/manifest/v12.json"


# --------------------------------------------------------------------------- builders


def model(name, tags=(), deps=(), schema="analytics", alias=None, materialized="table", owner=None):
    return {
        "unique_id": f"model.p.{name}",
        "resource_type": "model",
        "name": name,
        "package_name": "p",
        "schema": schema,
        "alias": alias or name,
        "tags": list(tags),
        "meta": {"owner": owner} if owner else {},
        "config": {"materialized": materialized},
        "depends_on": {"nodes": list(deps)},
        "original_file_path": f"models/{name}.sql",
        "fqn": ["p", name],
    }


def source(name, table, schema):
    return {
        "unique_id": f"source.p.{name}.{table}",
        "name": table,
        "source_name": name,
        "schema": schema,
        "identifier": table,
        "original_file_path": "models/sources.yml",
    }


def dbt_test(name, deps):
    return {
        "unique_id": f"test.p.{name}",
        "resource_type": "test",
        "name": name,
        "package_name": "p",
        "depends_on": {"nodes": list(deps)},
        "config": {"materialized": "test"},
        "tags": [],
        "original_file_path": "models/schema.yml",
    }


def write_manifest(path: Path, nodes, sources=(), version=V12) -> Path:
    path.write_text(
        json.dumps(
            {
                "metadata": {"dbt_schema_version": version},
                "nodes": {n["unique_id"]: n for n in nodes},
                "sources": {s["unique_id"]: s for s in sources},
            }
        )
    )
    return path


MELTANO = """
default_environment: dev
include_paths: ['./extract/*.meltano.yml']
environments:
- name: dev
- name: prod
  config:
    plugins:
      loaders:
      - name: target-wh
        config: {default_target_schema: prod_$MELTANO_EXTRACT__LOAD_SCHEMA}
plugins:
  loaders:
  - name: target-wh
    namespace: target_wh
    config: {default_target_schema: $MELTANO_EXTRACT__LOAD_SCHEMA}
"""
EXTRACTORS = """
plugins:
  extractors:
  - name: tap-base
    namespace: tap_base
    select: ['ignored.*']
  - name: tap-shop
    inherit_from: tap-base
    load_schema: raw_shop
    select: [orders.*, 'shopdb-customers.*', '!orders.secret']
  - name: tap-crm
    namespace: tap_crm
    select: [accounts.*]
"""
CONFIG = """
default_profile: p
tick: {dag_id: tick, cron: "0 0 * * *", asset: tick}
dbt: {manifest: manifest.json, tags: [core, finance, marketing]}
meltano: {project_dir: meltano}
profiles:
  p: {meltano_environment: dev, loader: target-wh, dbt_target: duckdb, extractors: [tap-shop, tap-crm],
      warehouse_uri: "duckdb://warehouse"}
  prod: {meltano_environment: prod, loader: target-wh, dbt_target: postgres, extractors: [tap-shop]}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tiny project: meltano.yml (+ an include), a config, and a manifest the test writes."""
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    (tmp_path / "meltano" / "extract").mkdir(parents=True)
    (tmp_path / "meltano" / "meltano.yml").write_text(MELTANO)
    (tmp_path / "meltano" / "extract" / "taps.meltano.yml").write_text(EXTRACTORS)
    (tmp_path / "orchestration.yml").write_text(CONFIG)

    def plan(nodes, sources=(), profile=None, **overrides):
        write_manifest(tmp_path / "manifest.json", nodes, sources)
        config = load_config(tmp_path / "orchestration.yml", profile)
        return plan_from_config(config.with_overrides(**overrides) if overrides else config, cache_dir=None)

    plan.root = tmp_path
    return plan


SOURCES = [
    source("shop", "orders", "raw_shop"),
    source("shop", "customers", "raw_shop"),
    source("crm", "accounts", "tap_crm"),
    source("legacy", "ledger", "raw_legacy"),
]


# ------------------------------------------------------------------------- meltano


def test_meltano_tables_follow_meltano_conventions(project):
    plan = project([], SOURCES)
    shop = plan.dag("meltano_tap_shop")
    assert shop.outlets == ("raw_shop.orders", "raw_shop.customers")  # load_schema; `db-table` -> table
    assert plan.dag("meltano_tap_crm").outlets == ("tap_crm.accounts",)  # load_schema defaults to namespace
    assert shop.schedule.assets == ("tick",) and shop.schedule.cron is None
    assert shop.tasks[0].args == ("run", "tap-shop", "target-wh")
    assert shop.state_ids == ("dev:tap-shop-to-target-wh",)
    assert shop.max_active_runs == 1
    assert plan.assets["raw_shop.orders"].uri == "duckdb://warehouse/raw_shop/orders"
    assert plan.assets["raw_shop.orders"].group == "raw_shop"
    assert plan.assets["raw_shop.orders"].extra == {
        "extractor": "tap-shop",
        "stream": "orders",
        "state_id": "dev:tap-shop-to-target-wh",
    }


def test_environment_overrides_the_loader_schema(project):
    plan = project([], SOURCES, profile="prod")
    assert plan.dag("meltano_tap_shop").outlets == ("prod_raw_shop.orders", "prod_raw_shop.customers")
    assert plan.dag("meltano_tap_shop").state_ids == ("prod:tap-shop-to-target-wh",)


@pytest.mark.parametrize(
    "rules, tables, problem",
    [
        (["orders.*", "orders.id"], ("orders",), None),
        (["db-Orders.*"], ("orders",), None),
        (["*-orders.*"], ("orders",), None),
        (["*.*"], (), "wildcard"),
        (["db-*.*"], (), "wildcard"),
        ([], (), "no `select` rules"),
        (["!secret.*"], (), "no `select` rules"),
    ],
)
def test_stream_tables(rules, tables, problem):
    got, why = stream_tables(tuple(rules))
    assert got == tables
    assert (why is None) if problem is None else (problem in why)


def test_wildcard_select_warns_and_the_config_names_the_tables(project):
    extract = project.root / "meltano" / "extract" / "taps.meltano.yml"
    extract.write_text(EXTRACTORS.replace("select: [accounts.*]", "select: ['*.*']"))
    plan = project([], SOURCES)
    assert plan.dag("meltano_tap_crm").outlets == ()
    assert any("tap-crm" in str(w) and "wildcard" in str(w) for w in plan.warnings)
    config = project.root / "orchestration.yml"
    config.write_text(
        CONFIG.replace(
            "meltano: {project_dir: meltano}",
            "meltano: {project_dir: meltano, tables: {tap-crm: [accounts, other.notes]}}",
        )
    )
    plan = project([], SOURCES)
    assert plan.dag("meltano_tap_crm").outlets == ("tap_crm.accounts", "other.notes")
    assert not any("tap-crm" in str(w) for w in plan.warnings)


@pytest.mark.parametrize(
    "select, why",
    [
        ("", "no `select` rules: every stream is extracted"),
        ("select: ['*.*']", "select rule '*.*' is a wildcard"),
    ],
)
def test_an_extractor_without_nameable_tables_warns_with_the_key_and_the_line_to_add(project, select, why):
    """Issue 21, item 3: the warning names `meltano.tables` and the exact line for that extractor,
    listing the tables dbt reads from its schema; the line, added, silences it."""
    extract = project.root / "meltano" / "extract" / "taps.meltano.yml"
    extract.write_text(EXTRACTORS.replace("select: [accounts.*]", select))
    sources = [*SOURCES, source("crm", "contacts", "tap_crm")]
    plan = project([], sources)
    [warning] = [str(w) for w in plan.warnings if w.subject == "tap-crm"]
    assert warning == (
        f"{extract}: tap-crm: {why}, so the tables it loads cannot be named; name them under `meltano.tables` "
        "in orchestration.yml: add the line `tap-crm: [accounts, contacts]` under `tables:` in `meltano:` "
        "(the tables dbt reads from tap_crm)"
    )
    config = project.root / "orchestration.yml"
    config.write_text(
        CONFIG.replace("meltano: {project_dir: meltano}", "meltano:\n  tables:\n    tap-crm: [accounts, contacts]")
    )
    plan = project([], sources)
    assert plan.dag("meltano_tap_crm").outlets == ("tap_crm.accounts", "tap_crm.contacts")
    assert not any(w.subject == "tap-crm" for w in plan.warnings)
    # No dbt source in its schema: the line has a placeholder in the extractor's schema.
    config.write_text(CONFIG)
    plan = project([], [s for s in sources if "tap_crm" not in str(s)])
    [warning] = [str(w) for w in plan.warnings if w.subject == "tap-crm"]
    assert warning.endswith("add the line `tap-crm: [tap_crm.<table>, ...]` under `tables:` in `meltano:`")


def test_meltano_schedules_keep_their_interval_and_jobs_run_by_name(project):
    (project.root / "meltano" / "extract" / "schedules.meltano.yml").write_text(
        textwrap.dedent("""
        jobs:
        - name: crm-job
          tasks: ['tap-crm target-wh']
        schedules:
        - {name: shop-hourly, extractor: tap-shop, loader: target-wh, interval: '@hourly'}
        - {name: crm-nightly, job: crm-job, interval: '@once'}
        - {name: other-profile, extractor: tap-shop, loader: target-elsewhere, interval: '@daily'}
    """)
    )
    plan = project([], SOURCES)
    ids = [d.dag_id for d in plan.of_kind("meltano")]
    assert ids == ["meltano_shop_hourly", "meltano_crm_nightly"]
    assert plan.dag("meltano_shop_hourly").schedule.cron == "@hourly"
    crm = plan.dag("meltano_crm_nightly")
    assert crm.schedule.assets == ("tick",) and crm.tasks[0].args == ("run", "crm-job")
    assert crm.outlets == ("tap_crm.accounts",)


def test_profile_extractor_missing_from_meltano_is_an_error(project):
    config = project.root / "orchestration.yml"
    config.write_text(CONFIG.replace("extractors: [tap-shop, tap-crm]", "extractors: [tap-shop, tap-nope]"))
    plan = project([], SOURCES)
    assert any("tap-nope" in str(e) and "meltano.yml" in e.file for e in plan.errors)


# ----------------------------------------------------------------------------- dbt


def test_schedules_are_the_and_of_what_models_read_from_outside(project):
    nodes = [
        model("stg_orders", ["core"], ["source.p.shop.orders"], schema="staging"),
        model("fct_orders", ["core"], ["model.p.stg_orders", "source.p.shop.customers"], owner="core@x"),
        model("revenue", ["finance"], ["model.p.fct_orders"], owner="fin@x"),
        model("crm_accounts", ["marketing"], ["source.p.crm.accounts", "model.p.fct_orders"]),
    ]
    plan = project(nodes, SOURCES)
    core, finance, marketing = plan.dag("dbt_core"), plan.dag("dbt_finance"), plan.dag("dbt_marketing")
    assert core.schedule.assets == ("raw_shop.customers", "raw_shop.orders")
    assert finance.schedule.assets == ("analytics.fct_orders",)
    assert "Upstream DAGs: `dbt_core`." in finance.doc_md and "`meltano_tap_shop`" in core.doc_md
    assert marketing.schedule.assets == ("analytics.fct_orders", "tap_crm.accounts")
    assert core.outlets == ("analytics.fct_orders", "staging.stg_orders")
    assert core.models == ("model.p.fct_orders", "model.p.stg_orders") and core.tag == "core"
    assert core.owners == {"model.p.fct_orders": "core@x"} and core.owner == "core@x"
    assert core.tasks[0].args == ("build", "--select", "tag:core", "--indirect-selection", "cautious")
    assert plan.errors == [] and plan.warnings == []


def test_precedence_first_configured_tag_wins_and_check_warns(project):
    nodes = [model("a", ["finance", "core"], ["source.p.shop.orders"]), model("b", ["finance"], ["model.p.a"])]
    plan = project(nodes, SOURCES)
    assert plan.dag("dbt_core").models == ("model.p.a",)
    assert plan.dag("dbt_finance").schedule.assets == ("analytics.a",)
    # the tag no longer selects exactly the DAG's models: explicit names
    assert plan.dag("dbt_finance").tasks[0].args == ("build", "--select", "b", "--indirect-selection", "cautious")
    [warning] = [w for w in plan.warnings if w.subject.startswith("model.")]
    assert [w.subject for w in plan.warnings if w is not warning] == ["tag marketing"]
    assert warning.subject == "model.p.a" and warning.file == "models/a.sql"
    assert "core, finance" in warning.message and "dbt_core" in warning.message
    flipped = project(nodes, SOURCES, tags=("finance", "core"))
    assert flipped.dag("dbt_finance").models == ("model.p.a", "model.p.b")


def test_tag_prefix_and_unconfigured_tags(project):
    config = project.root / "orchestration.yml"
    config.write_text(CONFIG.replace("tags: [core, finance, marketing]", "tags: [core], tag_prefix: 'domain:'"))
    nodes = [
        model("a", ["core", "nightly"], ["source.p.shop.orders"]),
        model("b", ["domain:sales", "pii"]),
        model("c", ["domain:ads", "domain:sales"]),
    ]
    plan = project(nodes, SOURCES)
    assert {d.dag_id: d.models for d in plan.of_kind("dbt")} == {
        "dbt_core": ("model.p.a",),
        "dbt_ads": ("model.p.c",),
        "dbt_sales": ("model.p.b",),
    }
    assert any("domain:ads, domain:sales" in w.message for w in plan.warnings)


def test_untagged_models_go_to_the_catch_all_or_are_reported(project):
    nodes = [model("a", ["core"], ["source.p.shop.orders"]), model("loose", [], ["model.p.a"])]
    plan = project(nodes, SOURCES)
    catch_all = plan.dag("dbt_untagged")  # after dbt_core, which reads no untagged node: stage 1
    assert catch_all.models == ("model.p.loose",) and catch_all.tag is None
    assert catch_all.schedule.assets == ("analytics.a",)
    assert catch_all.tasks[0].args == ("build", "--select", "loose", "--indirect-selection", "cautious")
    assert plan.placement["model.p.loose"]["rule"] == "catch_all"
    config = project.root / "orchestration.yml"
    config.write_text(
        CONFIG.replace(
            "tags: [core, finance, marketing]}", "tags: [core, finance, marketing], catch_all: {enabled: false}}"
        )
    )
    plan = project(nodes, SOURCES)
    assert not [d for d in plan.dags if d.dag_id.startswith("dbt_untagged")]
    assert any(w.subject == "model.p.loose" and "no DAG builds it" in w.message for w in plan.warnings)


def test_ephemeral_models_build_nothing_and_pass_their_reads_on(project):
    nodes = [
        model("core_a", ["core"], ["source.p.shop.orders"]),
        model("eph", ["core"], ["model.p.core_a", "source.p.crm.accounts"], materialized="ephemeral"),
        model("fin", ["finance"], ["model.p.eph"]),
    ]
    plan = project(nodes, SOURCES)
    assert plan.dag("dbt_core").outlets == ("analytics.core_a",)  # no relation for the ephemeral
    assert plan.dag("dbt_finance").schedule.assets == ("analytics.core_a", "tap_crm.accounts")


def test_a_dag_with_no_produced_upstream_runs_on_the_tick_and_unloaded_sources_warn(project):
    nodes = [model("ledger", ["finance"], ["source.p.legacy.ledger"]), model("consts", ["marketing"])]
    plan = project(nodes, SOURCES)
    assert plan.dag("dbt_finance").schedule.assets == ("tick",)
    assert plan.dag("dbt_marketing").schedule.assets == ("tick",)
    [warning] = [w for w in plan.warnings if "legacy" in w.subject]
    assert warning.file == "models/sources.yml" and "raw_legacy.ledger" in warning.subject
    assert "dbt_finance" in warning.message


def test_forced_cycles_between_dags_split_the_tag_or_with_error_are_errors_naming_the_models(project):
    nodes = [
        model("f1", ["finance"], ["source.p.shop.orders"]),
        model("m1", ["marketing"], ["model.p.f1"]),
        model("f2", ["finance"], ["model.p.m1"]),
    ]
    plan = project(nodes, SOURCES)  # dbt.on_forced_cycle: split (the default)
    assert plan.errors == []
    assert plan.dag("dbt_finance").schedule.assets == ("raw_shop.orders",)
    assert plan.dag("dbt_finance_2").schedule.assets == ("analytics.m1",)
    [warning] = [w for w in plan.warnings if "cycle" in w.message]
    assert warning.subject == "dbt_finance -> dbt_marketing -> dbt_finance" and "dbt_finance_2" in warning.message
    config = project.root / "orchestration.yml"
    config.write_text(CONFIG.replace("marketing]}", "marketing], on_forced_cycle: error}"))
    plan = project(nodes, SOURCES)
    [error] = plan.errors
    assert error.subject == "dbt_finance -> dbt_marketing -> dbt_finance"
    assert "model.p.f1 (dbt_finance) -> model.p.m1 (dbt_marketing) -> model.p.f2 (dbt_finance)" in error.message
    assert "on model.p.m1: add the tag `finance` (or remove `marketing`)" in error.message
    assert error.dags == ("dbt_finance", "dbt_marketing")


def test_tags_mapping_to_one_dag_id_are_an_error(project):
    nodes = [model("a", ["finance"]), model("b", ["Finance"])]
    plan = project(nodes, SOURCES, tags=("finance", "Finance"))
    assert any("dbt_finance" in e.message and e.subject == "Finance, finance" for e in plan.errors)


def test_monolith_is_one_dag_on_every_produced_source(project):
    nodes = [
        model("a", ["core"], ["source.p.shop.orders"]),
        model("b", ["finance"], ["model.p.a"]),
        model("c", [], ["source.p.crm.accounts", "source.p.legacy.ledger"]),
    ]
    plan = project(nodes, SOURCES, mode="monolith")
    [dbt] = plan.of_kind("dbt")
    assert dbt.dag_id == "dbt_all" and dbt.tag is None
    assert dbt.models == ("model.p.a", "model.p.b", "model.p.c")
    assert dbt.schedule.assets == ("raw_shop.orders", "tap_crm.accounts")
    assert dbt.tasks[0].args == ("build", "--indirect-selection", "cautious")


def test_tests_run_in_the_dag_that_builds_their_last_parent(project):
    nodes = [
        model("a", ["core"], ["source.p.shop.orders"]),
        model("b", ["finance"], ["model.p.a"]),
        model("c", ["marketing"], ["model.p.a"]),
        dbt_test("unique_a", ["model.p.a"]),
        dbt_test("rel_b_a", ["model.p.b", "model.p.a"]),
        dbt_test("rel_b_c", ["model.p.b", "model.p.c"]),
    ]
    plan = project(nodes, SOURCES)
    assert plan.dag("dbt_core").tests == ("test.p.unique_a",)
    assert plan.dag("dbt_finance").tests == ("test.p.rel_b_a",)
    # b and c depend on each other in no way: their test gets a DAG of its own, after both
    tests = plan.dag("dbt_tests_finance_and_marketing")
    assert tests.tests == ("test.p.rel_b_c",) and tests.schedule.assets == ("analytics.b", "analytics.c")
    assert tests.tasks[0].args == ("test", "--select", "rel_b_c")


def test_per_model_tasks(project):
    config = project.root / "orchestration.yml"
    config.write_text(
        CONFIG.replace(
            "tags: [core, finance, marketing]}", "tags: [core, finance, marketing], task_granularity: model}"
        )
    )
    nodes = [
        model("a", ["core"], ["source.p.shop.orders"]),
        model("e", ["core"], ["model.p.a"], materialized="ephemeral"),
        model("b", ["core"], ["model.p.e"]),
        dbt_test("rel_b_a", ["model.p.b", "model.p.a"]),
        dbt_test("nn_b", ["model.p.b"]),
    ]
    core = project(nodes, SOURCES).dag("dbt_core")
    tasks = {t.task_id: t for t in core.tasks}
    assert set(tasks) == {"a", "b", "dbt_test_relationships"}
    assert tasks["b"].upstream == ("a",) and tasks["b"].outlets == ("analytics.b",)
    assert tasks["b"].args == ("build", "--select", "b", "--indirect-selection", "cautious")
    assert tasks["dbt_test_relationships"].args == ("test", "--select", "rel_b_a")


def test_aliases_name_the_relation(project):
    plan = project([model("fct_orders_v2", ["core"], alias="FCT_Orders", schema="Analytics")], SOURCES)
    assert plan.dag("dbt_core").outlets == ("analytics.fct_orders",)


def test_json_shape(project):
    plan = project([model("a", ["core"], ["source.p.shop.orders"])], SOURCES)
    data = json.loads(json.dumps(plan.to_dict()))
    assert set(data) >= {"dags", "warnings", "errors"}
    by_kind = {d["kind"]: d for d in data["dags"]}
    assert set(by_kind) == {"tick", "meltano", "dbt", "meltano_state", "alerting"}
    assert "lateness" in by_kind["alerting"] and "lateness" not in by_kind["dbt"]
    for d in data["dags"]:
        assert {"dag_id", "kind", "schedule", "outlets"} <= set(d) and set(d["schedule"]) == {"cron", "assets"}
    assert by_kind["dbt"]["tag"] == "core" and by_kind["dbt"]["models"] == ["model.p.a"]
    assert "extractor" in by_kind["meltano"] and "extractor" not in by_kind["dbt"]
    assert by_kind["tick"]["schedule"] == {"cron": "0 0 * * *", "assets": []}


def test_alerting_dag_expects_each_dbt_dag_after_the_tick(project):
    plan = project([model("a", ["core"], ["source.p.shop.orders"]), model("b", ["finance"], ["model.p.a"])], SOURCES)
    alerting = plan.dag("alerting")
    assert alerting.schedule.cron == "*/5 * * * *"
    assert [t.task_id for t in alerting.tasks] == ["redeliver", "check_lateness"]
    assert {e["dag_id"]: (e["upstream"], e["outlets"], e["within_s"]) for e in alerting.lateness} == {
        "dbt_core": (["raw_shop.orders"], ["analytics.a"], 240 * 60),
        "dbt_finance": (["analytics.a"], ["analytics.b"], 240 * 60),
    }
    assert set(alerting.tasks[1].inlets) == {"tick", "raw_shop.orders", "analytics.a", "analytics.b"}
    assert alerting.tasks[1].args == ("tick",)


def test_alerting_dag_survives_a_broken_manifest(project):
    config = load_config(project.root / "orchestration.yml")  # no manifest written: it is missing
    plan = plan_from_config(config, kinds=("alerting",), cache_dir=None)
    assert [t.task_id for t in plan.dag("alerting").tasks] == ["redeliver"] and not plan.errors


def test_test_owners_are_the_owners_of_the_models_they_test(project):
    a = model("a", ["core"], ["source.p.shop.orders"], owner="core@example.com")
    b = model("b", ["core"], ["model.p.a"], owner="fin@example.com")
    plan = project([a, b, dbt_test("rel_b_a", ["model.p.a", "model.p.b"])], SOURCES)
    assert plan.dag("dbt_core").owners == {
        "model.p.a": "core@example.com",
        "model.p.b": "fin@example.com",
        "test.p.rel_b_a": "core@example.com, fin@example.com",
    }


# ----------------------------------------------------------------- malformed inputs


def test_missing_truncated_and_wrong_version_manifests(project, tmp_path):
    config = load_config(project.root / "orchestration.yml")
    with pytest.raises(ManifestError, match="manifest.json: manifest not found"):
        plan_from_config(config, cache_dir=None)
    bad = project.root / "manifest.json"
    bad.write_text('{"metadata": {"dbt_schema_version": "' + V12 + '"}, "nodes": {')
    with pytest.raises(ManifestError, match="manifest.json: truncated or not valid JSON"):
        plan_from_config(config, cache_dir=None)
    write_manifest(bad, [], version="https://schemas.getdbt.com/dbt/manifest/v3.json")
    with pytest.raises(ManifestError, match="v3 is too old"):
        plan_from_config(config, cache_dir=None)
    write_manifest(bad, [], version="https://schemas.getdbt.com/dbt/catalog/v1.json")
    with pytest.raises(ManifestError, match="not a dbt manifest"):
        plan_from_config(config, cache_dir=None)
    bad.write_text('{"metadata": {"dbt_schema_version": "' + V12 + '"}, "nodes": [1, 2]}')
    with pytest.raises(ManifestError, match="does not look like a dbt manifest"):
        plan_from_config(config, cache_dir=None)
    bad.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(ManifestError, match="not a readable gzip file"):
        plan_from_config(config, cache_dir=None)


def test_empty_project_plans_no_dbt_dag(project):
    plan = project([], [])
    assert plan.of_kind("dbt") == [] and plan.errors == []
    assert [w.subject for w in plan.warnings] == ["tag core", "tag finance", "tag marketing"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("plugins: [unclosed", "not valid YAML"),
        ("plugins:\n  extractors:\n  - namespace: x\n", r"plugins.extractors\[0\].name: required"),
        (
            "plugins:\n  extractors:\n  - {name: tap-crm, select: 'a.*'}\n",
            r"plugins.extractors\[0\].select: expected a list, got 'a.\*'",
        ),
        ("plugins: [a]\n", "plugins: expected a mapping"),
        ("include_paths: ./extract\n", "include_paths: expected a list"),
    ],
)
def test_broken_meltano_yml_names_the_file(project, text, message):
    (project.root / "meltano" / "meltano.yml").write_text(text)
    config = load_config(project.root / "orchestration.yml")
    with pytest.raises(MeltanoProjectError, match=message) as err:
        plan_from_config(config, kinds=("meltano",), cache_dir=None)
    assert "meltano.yml" in str(err.value)


def test_duplicate_plugin_across_included_files(project):
    (project.root / "meltano" / "extract" / "more.meltano.yml").write_text(
        "plugins:\n  extractors:\n  - {name: tap-crm, namespace: x}\n"
    )
    config = load_config(project.root / "orchestration.yml")
    with pytest.raises(MeltanoProjectError, match="defined twice"):
        plan_from_config(config, kinds=("meltano",), cache_dir=None)


def test_bad_config_values_name_the_file(project):
    config = project.root / "orchestration.yml"
    config.write_text(CONFIG.replace("tags: [core, finance, marketing]", "tags: core, mode: galaxy"))
    with pytest.raises(ConfigError, match="orchestration.yml: dbt.tags: ") as err:
        load_config(config)
    assert f"{config}: dbt.tags: expected a list, got 'core'" in str(err.value)
    assert f"{config}: dbt.mode: expected 'multi' or 'monolith', got 'galaxy'" in str(err.value)


@pytest.mark.subprocess
def test_the_plan_imports_no_airflow(tmp_path):
    import subprocess

    code = (
        "import sys; from orchestrator.plan import build_plan; build_plan(cache_dir=None); "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.') or m.startswith('dbt.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- cache


def test_cache_hits_while_inputs_are_unchanged_and_misses_after_a_change(project, tmp_path):
    write_manifest(project.root / "manifest.json", [model("a", ["core"], ["source.p.shop.orders"])], SOURCES)
    config = load_config(project.root / "orchestration.yml")
    cache = tmp_path / "cache"
    first = plan_from_config(config, cache_dir=cache)
    assert len(list(cache.glob("plan-*.msgpack"))) == 1
    again = plan_from_config(config, cache_dir=cache)
    assert [d.to_dict() for d in again.dags] == [d.to_dict() for d in first.dags]
    write_manifest(project.root / "manifest.json", [model("a", ["core"]), model("b", ["core"])], SOURCES)
    changed = plan_from_config(config, cache_dir=cache)
    assert changed.dag("dbt_core").models == ("model.p.a", "model.p.b")
    (project.root / "meltano" / "extract" / "new.meltano.yml").write_text(
        "plugins:\n  extractors:\n  - {name: tap-new, namespace: n, select: [x.*]}\n"
    )
    config2 = project.root / "orchestration.yml"
    config2.write_text(CONFIG.replace("extractors: [tap-shop, tap-crm]", "extractors: [tap-shop, tap-crm, tap-new]"))
    plan = plan_from_config(load_config(config2), cache_dir=cache)
    assert "meltano_tap_new" in [d.dag_id for d in plan.dags]


# ------------------------------------------------------------------- real manifests
# (the placement invariants on every real manifest are in test_placement.py)

REAL = sorted(glob.glob(str(Path(__file__).resolve().parent / "data" / "manifests" / "*.json.gz")))  # vendored


@pytest.mark.parametrize("path", REAL, ids=lambda p: Path(p).name[:30])
def test_real_manifests_plan_through_the_config_and_report_unloaded_sources(path):
    from collections import Counter

    from orchestrator.plan.manifest import load_manifest

    dbt = load_manifest(path)
    top = tuple(t for t, _ in Counter(t for n in dbt.buildable for t in n.tags).most_common(3))
    config = load_config().with_overrides(manifest=Path(path), tags=top)
    plan = plan_from_config(config, cache_dir=None)
    assert plan.errors == []
    built = [m for d in plan.of_kind("dbt") for m in d.models]
    assert len(built) == len(set(built)) == sum(1 for n in dbt.buildable if n.materialized != "ephemeral")
    for w in plan.warnings:
        assert w.file and w.subject and w.message
    # None of this project's sources is loaded by our Meltano project: every one read is reported.
    unloaded = {w.subject.split(" ")[0] for w in plan.warnings if "no Meltano extractor" in w.message}
    built_relations = {n.relation for n in dbt.buildable}
    read = {
        d
        for n in dbt.buildable
        if n.materialized != "ephemeral"
        for d in n.depends_on
        if d in dbt.sources and dbt.sources[d].relation not in built_relations
    }
    assert read <= unloaded


def test_real_manifests_are_present():
    """Vendored in tests/data/manifests: without them the real-manifest tests would vanish."""
    assert len(REAL) == 6, f"expected the six manifests of tests/data/manifests, found {len(REAL)}"


def test_per_model_mode_skips_a_tag_of_only_ephemeral_models(project):
    nodes = [
        model("a", ["core"], ["source.p.shop.orders"]),
        model("e", ["helpers"], ["model.p.a"], materialized="ephemeral"),
        model("b", ["finance"], ["model.p.e"]),
    ]
    project(nodes, SOURCES)  # writes the manifest
    config = load_config(project.root / "orchestration.yml").with_overrides(tags=("core", "helpers", "finance"))
    config = config.model_copy(update={"dbt": config.dbt.model_copy(update={"task_granularity": "model"})})
    plan = plan_from_config(config, cache_dir=None)
    assert "dbt_helpers" not in [d.dag_id for d in plan.dags] and not plan.errors
    assert any(w.subject == "tag helpers" and "only by ephemeral models" in w.message for w in plan.warnings)
    assert plan.dag("dbt_finance").schedule.assets == ("analytics.a",)  # sees through e to a
