"""Small read-only queries against the configured warehouse: the dbt target the profile runs with
(found by dbt's rules, see runners/dbt_profile.py), DuckDB or PostgreSQL. Only the tables the plan
says Meltano loads are counted, so a report never reads (or invents) anything else."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import sqlalchemy as sa

from ..config import OrchestrationConfig
from ..plan import Plan
from ..runners.dbt_profile import resolve_target


class UnsupportedWarehouse(RuntimeError):
    """Row counts are only read from DuckDB and PostgreSQL; the message names the adapter."""


def postgres_url(env: Mapping[str, str], prefix: str = "WAREHOUSE_PG", database: str | None = None) -> sa.URL:
    """A PostgreSQL URL from `<prefix>_HOST/_PORT/_USER/_PASSWORD/_DATABASE` (the demo's variables)."""
    return sa.URL.create(
        "postgresql+psycopg2",
        username=env.get(f"{prefix}_USER") or None,
        password=env.get(f"{prefix}_PASSWORD") or None,
        host=env.get(f"{prefix}_HOST"),
        port=int(env[f"{prefix}_PORT"]) if env.get(f"{prefix}_PORT") else None,
        database=database or env.get(f"{prefix}_DATABASE"),
    )


def ensure_postgres_database(url: str | sa.URL) -> bool:
    """Create the PostgreSQL database of a SQLAlchemy URL if it does not exist; True when created."""
    url = sa.make_url(url)
    server = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first():
                return False
            conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
            return True
    finally:
        server.dispose()


class Warehouse:
    """The configured warehouse, read-only."""

    def __init__(self, config: OrchestrationConfig, env: Mapping[str, str]):
        self.target = resolve_target(config, env)
        self.duckdb: Path | None = self.target.duckdb_path(config.dbt_project_dir)
        if self.target.type not in ("duckdb", "postgres"):
            raise UnsupportedWarehouse(f"row counts read DuckDB and PostgreSQL, not {self.target.type}")

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple]:
        """One read-only statement (constant SQL; values as parameters)."""
        if self.duckdb is not None:
            import duckdb  # the optional `duckdb` extra: only a DuckDB warehouse needs it

            if not self.duckdb.exists():
                return []
            with duckdb.connect(str(self.duckdb), read_only=True) as conn:
                return conn.execute(sql, dict(params or {})).fetchall()
        engine = sa.create_engine(self.target.postgres_url())
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), dict(params or {}))]
        finally:
            engine.dispose()

    def row_counts(self, relations: Iterable[str]) -> dict[str, int]:
        """`schema.table` -> rows, for those of `relations` that exist (lower-case names)."""
        wanted = sorted(set(relations))
        existing = {
            f"{s}.{t}".lower()
            for s, t in self.query(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            )
        }
        found = [r for r in wanted if r in existing]
        if not found:
            return {}
        quoted = ['"{}"."{}"'.format(*r.split(".", 1)) for r in found]
        union = " UNION ALL ".join(f"SELECT '{r}', count(*) FROM {q}" for r, q in zip(found, quoted, strict=True))
        return {name: int(n) for name, n in self.query(union)}


def loaded_relations(plan: Plan) -> list[str]:
    """The warehouse tables the plan's Meltano DAGs load."""
    return sorted(
        {
            a.relation
            for d in plan.meltano_dags()
            for n in d.outlets
            if (a := plan.assets.get(n)) is not None and a.relation
        }
    )


def table_row_counts(config: OrchestrationConfig, env: Mapping[str, str], plan: Plan) -> dict[str, int]:
    """Rows in each table Meltano loads, in the configured warehouse ({} where it cannot tell)."""
    try:
        return Warehouse(config, env).row_counts(loaded_relations(plan))
    except UnsupportedWarehouse:
        return {}
