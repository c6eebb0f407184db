"""The production data plane for real: MariaDB + PostgreSQL sources -> Meltano -> PostgreSQL -> dbt,
with Meltano's state in a PostgreSQL system database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import drop_databases, require_services
from pipeline_expectations import expected_extracted, expected_row_counts

from orchestrator.config import REPO_ROOT
from orchestrator.local.direct import run_cycle

pytestmark = [pytest.mark.meltano, pytest.mark.production]
EXTRACTOR_SOURCE = {"tap-shop-mariadb": "shop", "tap-crm-postgres": "crm", "tap-marketing-postgres": "marketing"}
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _fresh_databases() -> None:
    drop_databases(["demo_sources_ci", "warehouse_ci", "meltano_ci"], ["demo_shop_ci"])


@pytest.fixture(scope="module")
def production(installed):
    require_services("postgres", "mariadb")
    from orchestrator.config import load_config

    _fresh_databases()
    config = load_config(profile="production")
    profile = config.profile
    env = profile.environment()
    env.update(
        SOURCE_MARIADB_DATABASE="demo_shop_ci",
        DEMO_MARIADB_URL="mysql+pymysql://root@127.0.0.1:3306/demo_shop_ci",
        SOURCE_PG_DATABASE="demo_sources_ci",
        DEMO_POSTGRES_URL=f"{PG}/demo_sources_ci",
        WAREHOUSE_PG_DATABASE="warehouse_ci",
        MELTANO_DATABASE_URI="postgresql+psycopg://postgres:postgres@127.0.0.1:5432/meltano_ci",
    )
    first = run_cycle(config, env=env, log=lambda m: None)
    second = run_cycle(config, env=env, log=lambda m: None)
    return profile, env, first, second


def test_every_row_lands_in_postgres_and_the_second_cycle_is_incremental(production):
    _, _, first, second = production
    assert first.source_days == [1] and second.source_days == [2]
    assert first.raw_rows == expected_row_counts(1)
    assert second.raw_rows == expected_row_counts(2)
    for extractor, source in EXTRACTOR_SOURCE.items():
        assert first.loads[extractor].records == expected_extracted(1, source, database=True), extractor
        assert second.loads[extractor].records == expected_extracted(2, source, database=True), extractor


def test_meltano_state_lives_in_postgres(production):
    engine = sa.create_engine(f"{PG}/meltano_ci")
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(sa.text("select state_id from state"))}
    engine.dispose()
    assert ids == {f"prod:{e}-to-target-postgres" for e in EXTRACTOR_SOURCE}


def test_dbt_builds_every_model_and_passes_every_test_on_postgres(production):
    _, _, _, second = production
    assert second.dbt is not None and second.dbt.success
    assert second.dbt.of_type("model") and all(m.status == "success" for m in second.dbt.of_type("model"))
    assert second.dbt.of_type("test") and all(t.status == "pass" for t in second.dbt.of_type("test"))


def test_marts_on_postgres_hold_the_expected_numbers(production):
    from pipeline_expectations import CAMPAIGN_SQL, DAILY_SQL, assert_marts_match

    from orchestrator.config import load_config
    from orchestrator.local.warehouse import Warehouse

    _, env, _, _ = production
    warehouse = Warehouse(load_config(profile="production"), env)  # the dbt target production runs with
    assert_marts_match(warehouse.query(DAILY_SQL), warehouse.query(CAMPAIGN_SQL), last_day=2)


def test_a_new_meltano_system_db_is_migrated_once_before_parallel_runs(installed):
    """Parallel first runs on a new system database race on its migrations; preparing it avoids that."""
    require_services("postgres")
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.config import load_config
    from orchestrator.local.direct import prepare_meltano_system_db
    from orchestrator.runners.meltano import run_meltano

    engine = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text('DROP DATABASE IF EXISTS "meltano_race_ci" WITH (FORCE)'))
    engine.dispose()
    config = load_config(profile="production")
    env = config.profile.environment()
    env["MELTANO_DATABASE_URI"] = "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/meltano_race_ci"
    prepare_meltano_system_db(config, env)
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(
                lambda _: run_meltano(
                    ["state", "list"],
                    environment="prod",
                    env=env,
                    project_root=REPO_ROOT / "meltano",
                    log=lambda line: None,
                ),
                range(3),
            )
        )
    assert len(results) == 3  # run_meltano raises on any failure
