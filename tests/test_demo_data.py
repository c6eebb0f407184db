"""The demo business is deterministic and internally consistent."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal

import pytest

from demo_data.generator import TABLES, changes_for_day, changes_through, day_date, final_state
from demo_data.writers import FileDestination, advance
from orchestrator.config import REPO_ROOT


def test_same_seed_same_data_other_seed_other_data():
    assert changes_through(4) == changes_through(4)
    assert changes_through(4, seed=1) != changes_through(4)
    # A day does not depend on how many days follow it.
    assert changes_for_day(3) == changes_through(6)[2]


def test_shipped_sample_files_are_day_one(tmp_path):
    advance(FileDestination(tmp_path), to_day=1)
    shipped = REPO_ROOT / "meltano" / "data"
    for source, tables in TABLES.items():
        for table in tables:
            rel = f"{source}/{table}.jsonl"
            assert (tmp_path / rel).read_text() == (shipped / rel).read_text(), rel


def test_rows_have_every_column_and_belong_to_their_day():
    for day, changes in enumerate(changes_through(5), 1):
        for source, tables in changes.items():
            for table, rows in tables.items():
                assert rows or table == "accounts", (day, table)
                for row in rows:
                    assert tuple(row) == TABLES[source][table]
                    assert row["updated_at"].startswith(day_date(day).isoformat())
                keys = [(r["updated_at"], r["id"]) for r in rows]
                assert keys == sorted(keys), "rows come in replication-key order"


def test_business_invariants():
    state = final_state(6)
    customers = state["shop"]["customers"]
    orders, payments = state["shop"]["orders"], state["shop"]["payments"]
    paid = defaultdict(Decimal)
    for p in payments.values():
        paid[p["order_id"]] += Decimal(str(p["amount"]))
    assert set(paid) == set(orders)
    assert all(paid[o] == Decimal(str(row["amount"])) for o, row in orders.items()), "payments sum to the order"
    assert all(o["customer_id"] in customers for o in orders.values())
    assert all(a["customer_id"] in customers for a in state["crm"]["accounts"].values())
    campaigns = state["marketing"]["campaigns"]
    assert all(s["campaign_id"] in campaigns for s in state["marketing"]["ad_spend"].values())
    assert all(o["campaign_id"] is None or o["campaign_id"] in campaigns for o in orders.values())
    # Every order but the last day's is settled; about one in ten is returned.
    statuses = defaultdict(int)
    for o in orders.values():
        statuses[o["status"]] += 1
    assert statuses["placed"] == 60
    assert 0.03 < statuses["returned"] / (statuses["completed"] + statuses["returned"]) < 0.2


def test_updates_are_new_versions_of_yesterdays_orders():
    day1, day2 = changes_through(2)
    updated = [o for o in day2["shop"]["orders"] if o["status"] != "placed"]
    assert {o["id"] for o in updated} == {o["id"] for o in day1["shop"]["orders"]}
    assert len(final_state(2)["shop"]["orders"]) == 120


def test_file_destination_writes_each_day_once(tmp_path):
    dest = FileDestination(tmp_path)
    assert advance(dest) == [1]
    assert advance(dest, to_day=3) == [2, 3]
    assert advance(dest, to_day=3) == []
    lines = (tmp_path / "shop" / "orders.jsonl").read_text().splitlines()
    assert len(lines) == sum(len(c["shop"]["orders"]) for c in changes_through(3))
    assert json.loads(lines[0]) == changes_for_day(1)["shop"]["orders"][0]


@pytest.mark.services
@pytest.mark.parametrize("kind", ["mariadb", "postgres"])
def test_database_destination_upserts_to_final_state(kind):
    from conftest import require_services

    from demo_data.writers import DatabaseDestination

    require_services(kind)
    urls = {
        "mariadb": "mysql+pymysql://root@127.0.0.1:3306/demo_data_unit",
        "postgres": "postgresql+psycopg2://postgres@127.0.0.1:5432/demo_data_unit",
    }
    dest = DatabaseDestination(kind, urls[kind])
    dest.drop()
    dest = DatabaseDestination(kind, urls[kind])
    assert advance(dest, to_day=3) == [1, 2, 3]
    assert advance(dest) == [4]
    expected = final_state(4)
    import sqlalchemy as sa

    with dest.engine.connect() as conn:
        for source in dest.sources:
            for table, tbl in dest.tables[source].items():
                rows = {r.id: r for r in conn.execute(sa.select(tbl))}
                assert set(rows) == set(expected[source][table]), table
        orders = dest.tables["shop"]["orders"] if "shop" in dest.sources else None
        if orders is not None:
            statuses = dict(conn.execute(sa.select(orders.c.id, orders.c.status)).all())
            assert statuses == {i: r["status"] for i, r in expected["shop"]["orders"].items()}
