"""The plan cache's msgpack entry (orchestrator/plan/cache.py): a cached plan is the plan a fresh
build gives, owners and all, kind by kind; an entry that is torn or not an entry is rebuilt."""

from __future__ import annotations

import pytest
from test_plan import SOURCES, model, project, write_manifest  # noqa: F401 - project is a fixture

from orchestrator.config import load_config
from orchestrator.plan import plan_from_config
from orchestrator.plan.model import KINDS

NODES = [
    model("orders", ["core"], ["source.p.shop.orders"], owner="core@example.com"),
    model("accounts", ["finance"], ["source.p.crm.accounts"], owner="finance@example.com"),
    model("revenue", ["finance"], ["model.p.orders", "model.p.accounts"]),
    model("ephemeral_step", ["marketing"], ["model.p.orders"], materialized="ephemeral"),
    model("campaigns", ["marketing"], ["model.p.ephemeral_step"], owner="marketing@example.com"),
    {
        **model("not_null_orders_id", ["core"], ["model.p.orders"]),
        "unique_id": "test.p.not_null_orders_id",
        "resource_type": "test",
    },
    {
        **model("revenue_matches", [], ["model.p.revenue", "model.p.orders"]),
        "unique_id": "test.p.revenue_matches",
        "resource_type": "test",
    },
]


@pytest.mark.parametrize("kinds", [KINDS, *((k,) for k in KINDS)])
def test_a_cached_plan_is_the_plan_a_fresh_build_gives(project, tmp_path, kinds):  # noqa: F811
    write_manifest(project.root / "manifest.json", NODES, SOURCES)
    config = load_config(project.root / "orchestration.yml")
    fresh = plan_from_config(config, kinds=kinds, cache_dir=None)
    plan_from_config(config, kinds=kinds, cache_dir=tmp_path / "cache")  # builds and stores
    cached = plan_from_config(config, kinds=kinds, cache_dir=tmp_path / "cache")  # loads
    assert cached.to_dict() == fresh.to_dict()
    assert cached == fresh  # the classes too: DAG kinds, owners, Assets, warnings
    if "dbt" in kinds:
        assert any(d.owners for d in cached.dbt_dags())


def test_a_torn_or_foreign_entry_is_rebuilt(project, tmp_path):  # noqa: F811
    write_manifest(project.root / "manifest.json", NODES, SOURCES)
    config = load_config(project.root / "orchestration.yml")
    cache = tmp_path / "cache"
    first = plan_from_config(config, cache_dir=cache)
    (entry,) = cache.glob("plan-*.msgpack")
    whole = entry.read_bytes()
    for broken in (b"", whole[:3], whole[: len(whole) // 2], b"\0" * 64, whole[:4] + b"\xff" * 32):
        entry.write_bytes(broken)
        assert plan_from_config(config, cache_dir=cache).to_dict() == first.to_dict()
        assert entry.read_bytes() == whole  # stored again
