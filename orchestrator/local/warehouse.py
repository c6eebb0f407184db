"""Small read-only queries against the warehouse of a profile (DuckDB or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa


def postgres_url(env: Mapping[str, str], prefix: str = "WAREHOUSE_PG", database: str | None = None) -> sa.URL:
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


def query(dbt_target: str, env: Mapping[str, str], sql: str) -> list[tuple]:
    """Run one read-only statement (no user input: callers pass constant SQL)."""
    if dbt_target == "duckdb":
        import duckdb

        with duckdb.connect(env["WAREHOUSE_DUCKDB_PATH"], read_only=True) as conn:
            return conn.execute(sql).fetchall()
    engine = sa.create_engine(postgres_url(env))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def table_row_counts(dbt_target: str, env: Mapping[str, str], schema_prefix: str = "raw_") -> dict[str, int]:
    """`schema.table` -> row count, for every base table in the schemas starting with the prefix."""
    tables = [
        (s, t)
        for s, t in query(
            dbt_target,
            env,
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2",
        )
        if s.startswith(schema_prefix)
    ]
    if not tables:
        return {}
    union = " UNION ALL ".join(f'SELECT \'{s}.{t}\', count(*) FROM "{s}"."{t}"' for s, t in tables)
    return {name: int(n) for name, n in query(dbt_target, env, union)}
