"""Write the demo business's change records where the extractors read them.

* files: one JSONL file per table, appended to (`<dir>/<source>/<table>.jsonl`);
  the embedded profile's tap reads them.
* MariaDB: the shop's operational database (`demo_shop`), upserted.
* PostgreSQL: the CRM and marketing databases (`demo_sources`, schemas `crm`
  and `marketing`), upserted.

Each destination remembers the last day it holds, so `advance()` always writes
the next day and a repeated call never writes a day twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from .generator import TABLES, Changes, changes_through

# Which databases hold which logical source in the production profile.
DB_SOURCES = {"mariadb": ("shop",), "postgres": ("crm", "marketing")}
DEFAULT_URLS = {
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/demo_shop",
    "postgres": "postgresql+psycopg2://postgres@127.0.0.1:5432/demo_sources",
}

_LAST_DAY_FILE = "_last_day"

# The extractors log in as a read-only user, as they should against a real
# operational database. A demo credential: set your own in production.
READER_USER = READER_PASSWORD = "demo_reader"


def _column_type(name: str) -> sa.types.TypeEngine:
    if name == "id" or name.endswith("_id") or name in ("impressions", "clicks"):
        return sa.BigInteger()
    if name in ("amount", "budget", "spend"):
        return sa.Numeric(12, 2)
    if name in ("created_at", "updated_at"):
        return sa.DateTime()
    if name.endswith("_date"):
        return sa.Date()
    return sa.String(255)


def _tables(metadata: sa.MetaData, source: str, schema: str | None) -> dict[str, sa.Table]:
    return {
        table: sa.Table(
            table,
            metadata,
            *[
                sa.Column(
                    c, _column_type(c), primary_key=(c == "id"), autoincrement=False, nullable=(c == "campaign_id")
                )
                for c in columns
            ],
            schema=schema,
        )
        for table, columns in TABLES[source].items()
    }


class FileDestination:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def last_day(self) -> int:
        marker = self.directory / _LAST_DAY_FILE
        return int(marker.read_text()) if marker.exists() else 0

    def write(self, day: int, changes: Changes) -> None:
        for source, tables in changes.items():
            for table, rows in tables.items():
                path = self.directory / source / f"{table}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    for row in rows:
                        fh.write(json.dumps(row, separators=(",", ":")) + "\n")
        (self.directory / _LAST_DAY_FILE).write_text(f"{day}\n")


class DatabaseDestination:
    """One SQL database holding some logical sources (a schema each on PostgreSQL)."""

    def __init__(self, kind: str, url: str | None = None):
        self.kind = kind
        self.url = sa.engine.make_url(url or DEFAULT_URLS[kind])
        self.sources = DB_SOURCES[kind]
        self._create_database()
        self.engine = sa.create_engine(self.url)
        self.metadata = sa.MetaData()
        schema = (lambda s: s) if kind == "postgres" else (lambda s: None)
        self.tables = {s: _tables(self.metadata, s, schema(s)) for s in self.sources}
        self.meta = sa.Table("_demo_meta", self.metadata, sa.Column("last_day", sa.Integer, nullable=False))
        with self.engine.begin() as conn:
            if kind == "postgres":
                for s in self.sources:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{s}"'))
            self.metadata.create_all(conn)
            self._grant_reader(conn)

    def _grant_reader(self, conn: sa.Connection) -> None:
        if self.kind == "postgres":
            exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": READER_USER}).first()
            if not exists:
                conn.execute(sa.text(f"CREATE ROLE {READER_USER} LOGIN PASSWORD '{READER_PASSWORD}'"))
            for s in self.sources:
                conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{s}" TO {READER_USER}'))
                conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{s}" TO {READER_USER}'))
        else:
            for host in ("%", "localhost", "127.0.0.1"):
                conn.execute(
                    sa.text(f"CREATE USER IF NOT EXISTS '{READER_USER}'@'{host}' IDENTIFIED BY '{READER_PASSWORD}'")
                )
                conn.execute(sa.text(f"GRANT SELECT ON `{self.url.database}`.* TO '{READER_USER}'@'{host}'"))

    def _create_database(self) -> None:
        name = self.url.database
        server = sa.create_engine(
            self.url.set(database="postgres" if self.kind == "postgres" else "mysql"), isolation_level="AUTOCOMMIT"
        )
        with server.connect() as conn:
            if self.kind == "postgres":
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
        server.dispose()

    def last_day(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(self.meta.c.last_day))).scalar() or 0

    def write(self, day: int, changes: Changes) -> None:
        with self.engine.begin() as conn:
            for source in self.sources:
                for table_name, rows in changes[source].items():
                    if rows:
                        conn.execute(self._upsert(self.tables[source][table_name]), rows)
            conn.execute(sa.delete(self.meta))
            conn.execute(sa.insert(self.meta).values(last_day=day))

    def _upsert(self, table: sa.Table):
        if self.kind == "postgres":
            pg = postgresql.insert(table)
            return pg.on_conflict_do_update(
                index_elements=["id"], set_={c.name: pg.excluded[c.name] for c in table.columns if c.name != "id"}
            )
        my = mysql.insert(table)
        return my.on_duplicate_key_update({c.name: my.inserted[c.name] for c in table.columns if c.name != "id"})

    def drop(self) -> None:
        """Remove every demo table (tests start from an empty source)."""
        self.metadata.drop_all(self.engine)


def advance(
    destination: FileDestination | DatabaseDestination, to_day: int | None = None, seed: int | None = None
) -> list[int]:
    """Write every day after the destination's last one up to `to_day` (default: the next day)."""
    last = destination.last_day()
    target = last + 1 if to_day is None else to_day
    days = list(range(last + 1, target + 1))
    if days:
        kwargs = {} if seed is None else {"seed": seed}
        history = changes_through(target, **kwargs)
        for day in days:
            destination.write(day, history[day - 1])
    return days
