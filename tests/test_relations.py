"""A relation is its database, schema and name (orchestrator/plan/relations.py): on the real GitLab
manifest (Snowflake: RAW, ANALYTICS, SNAPSHOTS) and on a two-database DuckDB project (a second
file ATTACHed), planned and run with real dbt."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import load_config
from orchestrator.plan import plan_from_config
from orchestrator.plan.dbt_graph import build_graph
from orchestrator.plan.manifest import load_manifest
from orchestrator.plan.relations import loader_database, uri_database, with_database

ROOT = Path(__file__).resolve().parents[1]
GITLAB = next((ROOT / "tests" / "data" / "manifests").glob("gitlab-*.json.gz"))  # vendored
DBT = ROOT / ".venv" / "bin" / "dbt"

SNAPSHOT_SOURCE = "source.gitlab_snowflake.snapshots.customers_db_customers_snapshots"
SNAPSHOT = "snapshot.gitlab_snowflake.customers_db_customers_snapshots"
PAID_DIGITAL = "model.gitlab_snowflake.paid_digital"


def write_project(root: Path, loader_config: dict, extractors: dict[str, tuple[str, list[str]]], uri: str = "") -> Path:
    """A Meltano project (one loader, `extractors`: name -> (load_schema, select)) and an
    orchestration.yml whose profile runs them all; returns the config's path."""
    (root / "meltano").mkdir(parents=True, exist_ok=True)
    meltano = {
        "default_environment": "dev",
        "environments": [{"name": "dev"}],
        "plugins": {
            "loaders": [{"name": "target-wh", "namespace": "target_wh", "config": loader_config}],
            "extractors": [
                {"name": name, "namespace": name.replace("-", "_"), "load_schema": schema, "select": select}
                for name, (schema, select) in extractors.items()
            ],
        },
    }
    (root / "meltano" / "meltano.yml").write_text(json.dumps(meltano))
    profile = {
        "meltano_environment": "dev",
        "loader": "target-wh",
        "dbt_target": "dev",
        "extractors": list(extractors),
        "warehouse_uri": uri,
    }
    config = {"default_profile": "p", "meltano": {"project_dir": "meltano"}, "profiles": {"p": profile}}
    (root / "orchestration.yml").write_text(json.dumps(config))
    return root / "orchestration.yml"


# ------------------------------------------------------------------ the real GitLab manifest

GITLAB_TAPS = {
    "tap-pmg": ("pmg", ["paid_digital.*"]),
    "tap-customers-snapshots": ("snapshots", ["customers_db_customers_snapshots.*"]),
}


@pytest.fixture
def gitlab_plan(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)

    def plan(loader_config: dict, uri: str = ""):
        path = write_project(tmp_path, loader_config, GITLAB_TAPS, uri)
        config = load_config(path).with_overrides(manifest=GITLAB, tags=("product",))
        return plan_from_config(config, cache_dir=None)

    return plan


def test_gitlab_source_in_raw_is_not_wired_to_the_snapshot_of_the_same_schema_table():
    graph = build_graph(load_manifest(GITLAB))
    readers = [u for u, srcs in graph.sources.items() if SNAPSHOT_SOURCE in srcs]
    assert readers, "some model reads RAW.snapshots.customers_db_customers_snapshots"
    assert all(SNAPSHOT not in graph.parents[u] for u in readers)
    assert graph.project.sources[SNAPSHOT_SOURCE].database == "raw"
    assert graph.built[SNAPSHOT].database == "snapshots"


def test_gitlab_plans_with_meltano_loading_raw_no_false_overwrite_and_two_assets(gitlab_plan):
    plan = gitlab_plan({"database": "RAW", "default_target_schema": "$MELTANO_EXTRACT__LOAD_SCHEMA"})
    assert plan.errors == [], [str(e) for e in plan.errors]
    # Meltano loads RAW.pmg.paid_digital; the model builds ANALYTICS.pmg.paid_digital: two relations.
    loaded, built = plan.assets["pmg.paid_digital"], plan.assets["analytics.pmg.paid_digital"]
    assert (loaded.database, loaded.relation) == ("raw", "pmg.paid_digital")
    assert (built.database, built.relation, built.extra["unique_id"]) == ("analytics", "pmg.paid_digital", PAID_DIGITAL)
    # The Meltano table stays `schema.table`; the snapshot in SNAPSHOTS is named with its database.
    snapshot = plan.assets["snapshots.snapshots.customers_db_customers_snapshots"]
    assert snapshot.extra["unique_id"] == SNAPSHOT
    assert plan.assets["snapshots.customers_db_customers_snapshots"].extra["extractor"] == "tap-customers-snapshots"
    # Who reads the RAW source waits for Meltano's table, not for the snapshot.
    readers = {u for u, srcs in build_graph(load_manifest(GITLAB)).sources.items() if SNAPSHOT_SOURCE in srcs}
    for dag in plan.of_kind("dbt"):
        if readers & set(dag.models) and SNAPSHOT not in dag.models:
            assert "snapshots.customers_db_customers_snapshots" in dag.schedule.assets


def test_gitlab_meltano_database_from_the_profile_uri_and_unknown_database_is_refused_with_the_fix(gitlab_plan):
    # No `database` in the loader: the profile's warehouse_uri names it.
    plan = gitlab_plan({"default_target_schema": "$MELTANO_EXTRACT__LOAD_SCHEMA"}, "snowflake://acct/RAW")
    assert plan.errors == []
    assert plan.assets["pmg.paid_digital"].uri == "snowflake://acct/RAW/pmg/paid_digital"
    assert plan.assets["analytics.pmg.paid_digital"].uri == "snowflake://acct/analytics/pmg/paid_digital"
    # Named nowhere: the plan cannot tell RAW.pmg from ANALYTICS.pmg, so it refuses, naming the fix.
    plan = gitlab_plan({"default_target_schema": "$MELTANO_EXTRACT__LOAD_SCHEMA"})
    [error] = [e for e in plan.errors if e.subject == PAID_DIGITAL]
    assert "would overwrite the loaded table" in error.message and "`database`" in error.message
    assert "\n" not in str(error)


# ------------------------------------------------------------------ a two-database DuckDB project

DBT_PROJECT = {
    "dbt_project.yml": """
name: two_dbs
version: "1.0"
profile: two_dbs
models:
  two_dbs:
    +materialized: table
""",
    "profiles.yml": """
two_dbs:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('WH') }}"
      attach:
        - path: "{{ env_var('LAKE') }}"
          alias: lake
      schema: analytics
      threads: 1
""",
    "models/sources.yml": """
version: 2
sources:
  - name: shop
    schema: raw
    tables: [{name: orders}]
  - name: lake_shop
    database: lake
    schema: raw
    tables: [{name: orders}]
""",
    # analytics.orders in each database: two relations, two Assets.
    "models/wh_orders.sql": "{{ config(alias='orders') }} select id, amount from {{ source('shop', 'orders') }}",
    "models/lake_orders.sql": (
        "{{ config(alias='orders', database='lake') }} select id, amount * 10 as amount "
        "from {{ source('lake_shop', 'orders') }}"
    ),
    "models/both.sql": (
        "select (select sum(amount) from {{ ref('wh_orders') }}) as wh, "
        "(select sum(amount) from {{ ref('lake_orders') }}) as lake"
    ),
}


@pytest.fixture
def two_dbs(tmp_path, monkeypatch):
    """warehouse.duckdb (where Meltano loads raw.orders: 3 rows) and lake.duckdb (another raw.orders:
    2 rows), a dbt project reading and building analytics.orders in both; parsed with real dbt."""
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    wh, lake = tmp_path / "warehouse.duckdb", tmp_path / "lake.duckdb"
    for path, rows in ((wh, [(1, 5), (2, 7), (3, 9)]), (lake, [(1, 100), (2, 200)])):
        with duckdb.connect(str(path)) as con:
            con.execute("create schema raw; create table raw.orders (id integer, amount integer)")
            con.executemany("insert into raw.orders values (?, ?)", rows)
    dbt_dir = tmp_path / "dbt"
    for name, text in DBT_PROJECT.items():
        (dbt_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (dbt_dir / name).write_text(text)
    env = {**os.environ, "WH": str(wh), "LAKE": str(lake), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}

    def dbt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DBT), *args, "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    parsed = dbt("parse")
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    path = write_project(
        tmp_path,
        {"filepath": "${WH_PATH}", "default_target_schema": "$MELTANO_EXTRACT__LOAD_SCHEMA"},
        {"tap-shop": ("raw", ["orders.*"])},
        "duckdb://warehouse",
    )
    config = load_config(path).with_overrides(manifest=dbt_dir / "target" / "manifest.json")
    monkeypatch.setenv("WH_PATH", str(wh))
    return plan_from_config(config, cache_dir=None), dbt, wh, lake


@pytest.mark.dbt
def test_two_duckdb_databases_plan_two_relations_and_run_with_real_dbt(two_dbs):
    plan, dbt, wh, lake = two_dbs
    assert plan.errors == [], [str(e) for e in plan.errors]
    # One schema.table, two databases: two relations, two Assets with their own URIs.
    mine, theirs = plan.assets["analytics.orders"], plan.assets["lake.analytics.orders"]
    assert (mine.database, theirs.database) == ("warehouse", "lake")
    assert (mine.uri, theirs.uri) == ("duckdb://warehouse/analytics/orders", "duckdb://lake/analytics/orders")
    # Meltano's raw.orders is warehouse.raw.orders: the source in `lake` is not wired to it.
    [dag] = plan.of_kind("dbt")
    assert dag.schedule.assets == ("raw.orders",)
    assert set(dag.outlets) == {"analytics.orders", "lake.analytics.orders", "analytics.both"}
    [warning] = [w for w in plan.warnings if "source.two_dbs.lake_shop.orders" in w.subject]
    assert "lake.raw.orders" in warning.subject and "into the database warehouse, not lake" in warning.message
    # And real dbt builds both, each from its own database's raw.orders.
    built = dbt("build")
    assert built.returncode == 0, built.stdout + built.stderr
    with duckdb.connect(str(wh)) as con:
        con.execute(f"attach '{lake}' as lake")
        assert con.execute("select sum(amount) from warehouse.analytics.orders").fetchone() == (21,)
        assert con.execute("select sum(amount) from lake.analytics.orders").fetchone() == (3000,)
        assert con.execute("select wh, lake from warehouse.analytics.both").fetchone() == (21, 3000)


@pytest.mark.dbt
def test_a_model_on_the_table_meltano_loads_in_the_same_database_is_still_refused(two_dbs, tmp_path):
    plan, *_ = two_dbs
    manifest = json.loads((tmp_path / "dbt" / "target" / "manifest.json").read_text())
    node = manifest["nodes"]["model.two_dbs.wh_orders"]
    node["schema"] = "raw"  # warehouse.raw.orders: Meltano's table
    (tmp_path / "dbt" / "target" / "manifest.json").write_text(json.dumps(manifest))
    config = load_config(tmp_path / "orchestration.yml").with_overrides(
        manifest=tmp_path / "dbt" / "target" / "manifest.json"
    )
    plan = plan_from_config(config, cache_dir=None)
    [error] = [e for e in plan.errors if e.subject == "model.two_dbs.wh_orders"]
    assert "builds warehouse.raw.orders, which meltano_tap_shop loads" in error.message


# ------------------------------------------------------------------ where a database is named


@pytest.mark.parametrize(
    "config, env, database",
    [
        ({"database": "RAW"}, {}, "raw"),
        ({"dbname": "${DB}"}, {"DB": "Warehouse"}, "warehouse"),
        ({"dbname": "${DB}"}, {}, None),  # a variable the profile does not set: unknown
        ({"project": "cal-itp-data-infra"}, {}, "cal-itp-data-infra"),
        ({"filepath": "${P}"}, {"P": "var/warehouse.duckdb"}, "warehouse"),
        ({"path": "/data/lake.db"}, {}, "lake"),
        ({"filepath": ":memory:"}, {}, None),
        ({"host": "x"}, {}, None),
    ],
)
def test_loader_database(config, env, database):
    from orchestrator.plan.meltano_project import expand

    assert loader_database(config, lambda v: expand(v, env)) == database


@pytest.mark.parametrize(
    "uri, database",
    [
        ("duckdb://warehouse", "warehouse"),
        ("postgres://127.0.0.1:5432/warehouse", "warehouse"),
        ("snowflake://acct/RAW", "raw"),
        ("", None),
    ],
)
def test_uri_database(uri, database):
    assert uri_database(uri) == database


@given(
    st.sampled_from(["duckdb://warehouse", "postgres://h:5432/wh", "snowflake://acct/RAW/"]),
    st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
)
def test_with_database_names_that_database_and_keeps_the_rest(uri, database):
    other = with_database(uri, database)
    assert uri_database(other) == database
    assert other.split("://")[0] == uri.split("://")[0]


# ------------------------------------------------------------------ two extractors, one relation


def test_two_extractors_loading_one_relation_is_an_error_naming_both_and_the_fix(tmp_path, capsys, monkeypatch):
    from orchestrator.cli import main

    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    path = write_project(
        tmp_path,
        {"database": "warehouse", "default_target_schema": "$MELTANO_EXTRACT__LOAD_SCHEMA"},
        {
            "tap-shop": ("raw_shop", ["orders.*", "customers.*"]),
            "tap-shop-mariadb": ("raw_shop", ["demo_shop-orders.*", "demo_shop-payments.*"]),
            "tap-crm": ("raw_crm", ["accounts.*"]),
        },
    )
    (tmp_path / "alerting.yml").write_text("default: {slack_channel: '#alerts'}\n")
    (tmp_path / "manifest.json").write_text(
        json.dumps({"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}})
    )
    plan = plan_from_config(load_config(path).with_overrides(manifest=tmp_path / "manifest.json"), cache_dir=None)
    [error] = plan.errors
    assert error.file == str(path) and error.subject == "profiles.p.extractors"
    assert "tap-shop and tap-shop-mariadb both load raw_shop.orders" in error.message
    assert "keep one of them in profile 'p''s `extractors`" in error.message
    assert error.dags == ("meltano_tap_shop", "meltano_tap_shop_mariadb")  # tap-crm's DAG still renders
    assert main(["--config", str(path), "check", "--manifest", str(tmp_path / "manifest.json")]) == 1
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if "both load" in x]
    assert str(path) in line and "Traceback" not in err


# ------------------------------------------------------------------ Asset names, on any input

DBS = st.sampled_from([None, "raw", "analytics", "snapshots"])
RELS = st.sampled_from(["s.a", "s.b", "t.a"])


@given(
    st.lists(st.tuples(DBS, RELS), max_size=8),
    st.lists(st.tuples(DBS, RELS), max_size=4),
    st.sampled_from([None, "raw"]),
)
def test_asset_names_tell_every_two_relations_apart_and_stay_short_where_unambiguous(built, loaded, home):
    from orchestrator.plan.relations import Loaded, built_asset_names
    from orchestrator.plan.translator import Translator

    names = Translator()
    meltano = Loaded.of(home, [(home, rel, rel, "meltano_x") for _, rel in loaded])  # Meltano: one database
    nodes = {f"n{i}": rel for i, rel in enumerate(dict.fromkeys(built))}  # one builder per relation
    asset_of = built_asset_names(nodes, meltano, names.asset_name)
    for uid, (db, rel) in nodes.items():
        # Meltano's own database, an unknown one, or a schema.table in only one database: `schema.table`.
        dbs = {d for d, r in nodes.values() if r == rel and d} | (
            {home} if home and rel in meltano.by_relation else set()
        )
        short = db is None or db == home or len(dbs) <= 1
        assert asset_of[uid] == (rel if short else f"{db}.{rel}")
    # Two relations that can be told apart (both databases known, and different) never share an Asset,
    # nor does one with Meltano's table unless it is Meltano's relation (the overwrite the plan refuses).
    for (u, (db1, rel1)), (v, (db2, rel2)) in itertools.combinations(nodes.items(), 2):
        if (db1, rel1) != (db2, rel2) and db1 and db2:
            assert asset_of[u] != asset_of[v]
    for uid, (db, rel) in nodes.items():
        if rel in meltano.by_relation and asset_of[uid] == rel:
            assert meltano.find(db, rel) is not None
