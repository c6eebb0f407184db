"""The embedded data plane for real: JSONL files -> Meltano -> DuckDB -> dbt."""

from __future__ import annotations

import json

import duckdb
import pytest
from pipeline_expectations import expected_extracted, expected_row_counts

from orchestrator.config import REPO_ROOT, load_config
from orchestrator.local.direct import run_cycle
from orchestrator.runners.meltano import run_meltano

pytestmark = pytest.mark.meltano
EXTRACTOR_SOURCE = {"tap-shop": "shop", "tap-crm": "crm", "tap-marketing": "marketing"}


@pytest.fixture(scope="module")
def two_cycles(tmp_path_factory, installed):
    """Run cycle 1 (day 1) and cycle 2 (day 2); keep what each saw."""
    from conftest import isolated_embedded

    profile, env = isolated_embedded(tmp_path_factory.mktemp("embedded"))
    config = load_config(profile="embedded")
    first = run_cycle(config, env=env, log=lambda m: None)
    with duckdb.connect(env["WAREHOUSE_DUCKDB_PATH"], read_only=True) as conn:
        counts_after_first = {
            t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in expected_row_counts(1)
        }
    second = run_cycle(config, env=env, log=lambda m: None)
    return profile, env, first, counts_after_first, second


def test_first_cycle_loads_every_generated_row(two_cycles):
    _, _, first, counts_after_first, _ = two_cycles
    assert first.source_days == [1]
    assert counts_after_first == expected_row_counts(1)
    for extractor, source in EXTRACTOR_SOURCE.items():
        assert first.loads[extractor].records == expected_extracted(1, source), extractor


def test_second_cycle_is_incremental_and_loses_nothing(two_cycles):
    _, env, _, _, second = two_cycles
    assert second.source_days == [2]
    for extractor, source in EXTRACTOR_SOURCE.items():
        assert second.loads[extractor].records == expected_extracted(2, source), extractor
    assert second.raw_rows == expected_row_counts(2)


def test_loaded_values_are_the_latest_versions(two_cycles):
    from demo_data.generator import final_state

    _, env, _, _, _ = two_cycles
    orders = final_state(2)["shop"]["orders"]
    with duckdb.connect(env["WAREHOUSE_DUCKDB_PATH"], read_only=True) as conn:
        rows = conn.execute("select id, status, amount from raw_shop.orders").fetchall()
    assert {int(i): (s, round(a, 2)) for i, s, a in rows} == {i: (o["status"], o["amount"]) for i, o in orders.items()}


def test_state_bookmarks_the_last_loaded_change(two_cycles):
    from demo_data.generator import changes_for_day

    profile, env, _, _, _ = two_cycles
    out: list[str] = []
    run_meltano(
        ["state", "get", "dev:tap-shop-to-target-duckdb"],
        environment="dev",
        env=env,
        project_root=REPO_ROOT / "meltano",
        log=out.append,
    )
    state = json.loads(next(line for line in out if line.startswith("{")))
    bookmarks = state["singer_state"]["bookmarks"]
    day2 = changes_for_day(2)["shop"]
    for table in ("customers", "orders", "payments"):
        assert bookmarks[table]["replication_key_value"] == max(r["updated_at"] for r in day2[table])


def test_dbt_builds_the_marts_with_the_expected_numbers(two_cycles):
    from pipeline_expectations import CAMPAIGN_SQL, DAILY_SQL, assert_marts_match

    _, env, _, _, second = two_cycles
    assert second.dbt is not None and second.dbt.success
    models, tests = second.dbt.of_type("model"), second.dbt.of_type("test")
    assert len(models) == 13 and all(m.status == "success" for m in models)  # 14 models, 1 ephemeral
    assert [s.status for s in second.dbt.of_type("seed")] == ["success"]  # reference.payment_methods
    assert len(tests) == 57 and all(t.status == "pass" for t in tests)
    with duckdb.connect(env["WAREHOUSE_DUCKDB_PATH"], read_only=True) as conn:
        assert_marts_match(conn.execute(DAILY_SQL).fetchall(), conn.execute(CAMPAIGN_SQL).fetchall(), last_day=2)
