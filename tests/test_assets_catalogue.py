"""The Assets view as a catalogue: every Asset Airflow registers (task outlets and schedule Assets)
folds into a group (its warehouse schema: raw, staging and marts apart) and carries an `extra`
that says what it is; every DAG's docs link the Assets it waits for and emits. Checked in a real
DagBag of the repo's dags/ folder, for the demo and for the independent bike-share fixture, and at
plan level on the six real manifests vendored in tests/data/manifests (which must be there: no skip)."""

from __future__ import annotations

import pytest
from test_dag_integrity import DAGS, _dagbag
from test_placement import MANIFESTS, REAL_MANIFESTS

from orchestrator.config import REPO_ROOT, load_config
from orchestrator.plan import plan_from_config
from orchestrator.plan.manifest import load_manifest

DBT_KEYS = {"unique_id", "materialized", "resource_type", "dag_id", "tag", "owner", "description"}
MELTANO_KEYS = {"extractor", "stream", "state_id"}
TICK_KEYS = {"cron", "dag_id"}
DEFAULT_GROUP = "asset"  # what Airflow gives an Asset without one


def registered_assets(bag) -> dict[str, list]:
    """Every Asset object the DAGs hand to Airflow, by name: outlets and schedules alike (a name
    seen twice must be the same Asset, or Airflow keeps whichever it parsed last)."""
    seen: dict[str, list] = {}
    for dag in bag.dags.values():
        schedule = dag.schedule if isinstance(dag.schedule, list) else []
        for a in [*schedule, *(o for t in dag.tasks for o in t.outlets)]:
            seen.setdefault(a.name, []).append(a)
    return seen


def kind_of(extra: dict) -> str:
    if "unique_id" in extra:
        return "dbt"
    if "extractor" in extra:
        return "meltano"
    return "tick"


def check_catalogue(bag, plan) -> dict[str, object]:
    """The invariants every deployment keeps; returns one Asset per name for value checks."""
    assert bag.import_errors == {}
    found = registered_assets(bag)
    assert found, "no Assets at all"
    one = {}
    for name, copies in found.items():
        first = copies[0]
        for a in copies:  # the schedule's Asset is the outlet's, group and extra included
            assert (a.uri, a.group, a.extra) == (first.uri, first.group, first.extra), name
        assert first.group and first.group != DEFAULT_GROUP, name
        keys = {"dbt": DBT_KEYS, "meltano": MELTANO_KEYS, "tick": TICK_KEYS}[kind_of(first.extra)]
        assert set(first.extra) == keys, (name, first.extra)
        if kind_of(first.extra) == "tick":
            assert first.group == "orchestration"
        else:  # the warehouse schema of its relation
            assert first.group == name.split(".", 1)[0], name
        if kind_of(first.extra) == "dbt":  # the DAG it names emits it, under that DAG's tag
            assert name in plan.dag(first.extra["dag_id"]).outlets, name
            assert first.extra["tag"] == plan.dag(first.extra["dag_id"]).tag, name
        one[name] = first
    # every DAG's docs link each Asset it waits for and emits to the Assets view
    for spec in plan.dags:
        doc = bag.dags[spec.dag_id].doc_md
        for name in (*spec.schedule.assets, *spec.outlets):
            assert f"[`{name}`](/assets?name_pattern={name})" in doc, (spec.dag_id, name)
    return one


# ------------------------------------------------------------------------------------ the demo


def test_the_demo_assets_are_a_catalogue(monkeypatch, installed):
    bag = _dagbag(DAGS, monkeypatch, PIPELINE_PROFILE="embedded")
    plan = plan_from_config(load_config(REPO_ROOT / "orchestration.yml", "embedded"), cache_dir=None)
    assets = check_catalogue(bag, plan)
    groups = {a.group for a in assets.values()}
    raw = {"raw_shop", "raw_crm", "raw_marketing"}
    assert groups == raw | {"orchestration", "staging", "intermediate", "analytics", "reference", "reporting"}

    assert assets["analytics.fct_orders"].extra == {
        "unique_id": "model.demo_analytics.fct_orders",
        "materialized": "table",
        "resource_type": "model",
        "dag_id": "dbt_core",
        "tag": "core",
        "owner": "core-data@example.com",
        "description": "One row per order. See README.md.",
    }
    assert assets["staging.stg_payments"].extra["owner"] == "finance-data@example.com"
    assert assets["staging.stg_payments"].extra["materialized"] == "view"
    # the catch-all stages: no tag; the seed has no owner, the reporting model has one
    seed = assets["reference.payment_methods"].extra
    assert (seed["dag_id"], seed["tag"], seed["owner"], seed["materialized"]) == ("dbt_untagged", None, None, "seed")
    assert seed["description"].startswith("Reference data: the payment methods the shop accepts")
    summary = assets["reporting.exec_daily_summary"].extra
    assert (summary["dag_id"], summary["tag"], summary["owner"]) == (
        "dbt_untagged_2",
        None,
        "data-platform@example.com",
    )
    # the description's first line only
    manifest = load_manifest(REPO_ROOT / "dbt_project" / "target" / "manifest.json")
    for name, a in assets.items():
        if kind_of(a.extra) == "dbt":
            text = manifest.nodes[a.extra["unique_id"]].description.strip()
            assert a.extra["description"] == (text.splitlines()[0].strip() if text else None), name
    assert assets["raw_shop.orders"].extra == {
        "extractor": "tap-shop",
        "stream": "orders",
        "state_id": "dev:tap-shop-to-target-duckdb",
    }
    assert assets["raw_marketing.ad_spend"].group == "raw_marketing"
    assert assets["tick"].extra == {"cron": "0 0 * * *", "dag_id": "tick"}
    # a dbt DAG's docs: what it waits for, then what it emits, each a link
    doc = bag.dags["dbt_finance"].doc_md
    waits, emits = doc.index("**Triggered by:**"), doc.index("**Emits**")
    assert waits < doc.index("[`analytics.fct_orders`](/assets?name_pattern=analytics.fct_orders)") < emits
    assert doc.index("[`analytics.fct_payments`](/assets?name_pattern=analytics.fct_payments)") > emits


# ------------------------------------------------------------------------------- the fixture


@pytest.fixture(scope="module")
def bikeshare(tmp_path_factory):
    """The bike-share fixture with its manifest, and the config `orchestrator init` writes for it."""
    from fixture_project import DBT_TARGET, copy_fixture

    from orchestrator.runners.dbt import DbtProjectRef, run_dbt

    fx = copy_fixture(tmp_path_factory.mktemp("catalogue"))
    project = DbtProjectRef(fx.dbt_dir, fx.profiles_dir, DBT_TARGET)
    for step in ("deps", "parse"):  # as tests/test_init.py's `parsed`: what a deploy runs
        run_dbt([step, "--quiet"], env=fx.env, project=project)
    return fx


@pytest.mark.meltano
def test_the_fixture_projects_assets_are_a_catalogue(bikeshare, monkeypatch, capsys):
    import test_init
    from fixture_project import EXTRACTOR_SCHEMA

    test_init._use(monkeypatch, bikeshare)
    rc, _, err, config = test_init._init(monkeypatch, capsys, bikeshare, "catalogue")
    assert rc == 0, err
    monkeypatch.chdir(bikeshare.root.parent)
    # the repo's own dags/ folder, pointed at the fixture's config
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(config))
    plan = plan_from_config(load_config(config), cache_dir=None)
    assert sorted(bag.dag_ids) == sorted(d.dag_id for d in plan.dags)
    assets = check_catalogue(bag, plan)
    groups = {a.group for a in assets.values()}
    assert set(EXTRACTOR_SCHEMA.values()) | {"bikeshare_staging", "bikeshare_marts"} <= groups
    trips = assets["raw_docks.trips"].extra
    assert trips["extractor"] == "tap-docks" and trips["stream"].endswith("trips")
    assert trips["state_id"].endswith(":tap-docks-to-target-lakehouse")
    fct = assets["bikeshare_marts.fct_trips"].extra
    assert (fct["unique_id"], fct["resource_type"], fct["dag_id"], fct["tag"]) == (
        "model.bikeshare_analytics.fct_trips",
        "model",
        "dbt_operations",
        "operations",
    )
    snapshot = assets["bikeshare_history.bikes_history"].extra
    assert (snapshot["resource_type"], snapshot["materialized"]) == ("snapshot", "snapshot")
    districts = assets["bikeshare_reference.districts"].extra  # the untagged seed: a catch-all DAG
    assert districts["tag"] is None and districts["dag_id"].startswith("dbt_untagged")


# ------------------------------------------------------------------------ the real manifests


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_real_manifests_every_asset_spec_has_a_group_and_its_keys(name, installed, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    found = sorted(REAL_MANIFESTS.glob(MANIFESTS[name]))
    assert found, f"{REAL_MANIFESTS}/{MANIFESTS[name]} not found (vendored: tests/data/README.md)"
    config = load_config(REPO_ROOT / "orchestration.yml", "embedded").with_overrides(manifest=found[0], tags=())
    plan = plan_from_config(config, cache_dir=None)
    assert plan.errors == []
    manifest = load_manifest(found[0])
    named = {a for d in plan.dags for a in (*d.outlets, *d.schedule.assets)}
    assert named <= set(plan.assets)
    dbt = 0
    for asset, spec in plan.assets.items():
        assert spec.group and spec.group != DEFAULT_GROUP, asset
        keys = {"dbt": DBT_KEYS, "meltano": MELTANO_KEYS, "tick": TICK_KEYS}[kind_of(spec.extra)]
        assert set(spec.extra) == keys, (asset, spec.extra)
        if kind_of(spec.extra) == "dbt":
            dbt += 1
            node = manifest.nodes[spec.extra["unique_id"]]
            assert spec.group == node.relation.split(".", 1)[0] == asset.split(".", 1)[0]
            assert spec.extra["materialized"] == node.materialized and spec.extra["owner"] == node.owner
            dag = plan.dag(spec.extra["dag_id"])
            assert asset in dag.outlets and spec.extra["tag"] == dag.tag, asset
    assert dbt == len({n.relation for n in manifest.buildable if n.relation})
    print(f"{name}: {len(plan.assets)} Assets, {dbt} dbt, groups {len({s.group for s in plan.assets.values()})}")


def test_the_vendored_manifests_folder_is_there():
    assert len(list(REAL_MANIFESTS.glob("*.json.gz"))) == 6, f"{REAL_MANIFESTS}: expected the six vendored manifests"
