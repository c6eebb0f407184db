"""The warehouse side of the reconciliation (reconcile.py): two bounded looks at each table a
Meltano run loads, before and after it, through the dbt target's connection (DuckDB or PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .dbt_profile import DbtTarget

BATCHED_AT = "_sdc_batched_at"
# Above this (estimated) size a table without an index on _sdc_batched_at is not reconciled.
MAX_SCAN_ROWS = {"duckdb": 50_000_000, "postgres": 2_000_000}


@dataclass(frozen=True)
class Mark:
    """A table before the run: where its stamps end, its rows, or why it cannot be reconciled."""

    relation: str
    stamped: bool = True  # has _sdc_batched_at (else: compare row counts)
    last: Any = None  # max(_sdc_batched_at) before the run (None: empty or new table)
    rows: int = 0  # rows before the run (count mode)
    skip: str | None = None
    key: str | None = None  # the stream's replication key (the run's catalog), when the table has it
    high: Any = None  # max(key) before the run: rows past it after the run are new (dbt.build: changed)


@dataclass(frozen=True)
class Written:
    """Rows the run wrote to a table, and how they were told: `stamp` (rows stamped by this run:
    inserts and updates), `new` (a new or empty table's rows), `delta` (more rows than before:
    inserts only, a keyed upsert's updates are not seen)."""

    rows: int
    how: Literal["stamp", "new", "delta"]
    # Rows past the replication key's high-water mark of before the run: new or updated rows, not
    # the bookmark row an SDK tap re-sends (`key >= bookmark`). None: no replication key to tell by.
    fresh: int | None = None


class Probe:
    """Read-only queries on the dbt target's warehouse (DuckDB or PostgreSQL)."""

    def __init__(self, target: DbtTarget, project_dir: Path | None = None):
        self.type = target.type
        self.target = target
        self.duckdb = target.duckdb_path(project_dir)
        if self.type not in MAX_SCAN_ROWS or (self.type == "duckdb" and self.duckdb is None):
            raise ValueError(f"rows are reconciled on DuckDB files and PostgreSQL, not on {self.type}")

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.duckdb is not None:
            import duckdb  # the `duckdb` extra

            with duckdb.connect(str(self.duckdb), read_only=True) as conn:
                yield lambda sql: conn.execute(sql).fetchall()
            return
        import sqlalchemy as sa

        engine = sa.create_engine(self.target.postgres_url())
        try:
            with engine.connect() as conn:
                yield lambda sql: [tuple(r) for r in conn.execute(sa.text(sql))]
        finally:
            engine.dispose()

    def marks(self, relations: list[str], keys: Mapping[str, str] | None = None) -> dict[str, Mark]:
        """Each table's latest stamp before the run (a table that does not exist yet: None), and the
        high-water mark of its replication key (`keys`: relation -> column) where it has one."""
        keys = keys or {}
        if self.duckdb is not None and not self.duckdb.exists():
            return {r: Mark(r) for r in relations}  # every table new: its rows are the new ones
        with self._cursor() as q:
            return {r: self._mark(q, r, key=keys.get(r)) for r in relations}

    def written(self, marks: Mapping[str, Mark]) -> dict[str, Written | str]:
        """Rows each table got from the run (or why that cannot be told: a string)."""
        out: dict[str, Written | str] = {}
        with self._cursor() as q:
            for r, before in marks.items():
                after = before if before.skip else self._mark(q, r, need_last=False)
                if after.skip:
                    out[r] = after.skip
                elif before.stamped and after.stamped:
                    where = f"{_q(BATCHED_AT)} > {_literal(before.last)}" if before.last is not None else "true"
                    out[r] = Written(int(q(f"SELECT count(*) FROM {_table(r)} WHERE {where}")[0][0]), "stamp")
                else:
                    rows = int(q(f"SELECT count(*) FROM {_table(r)}")[0][0]) if after.rows >= 0 else 0
                    out[r] = Written(rows, "new") if before.rows == 0 else Written(rows - before.rows, "delta")
                got = out[r]
                if before.key and isinstance(got, Written):
                    where = f"{_q(before.key)} > {_literal(before.high)}" if before.high is not None else "true"
                    out[r] = replace(got, fresh=int(q(f"SELECT count(*) FROM {_table(r)} WHERE {where}")[0][0]))
        return out

    def _mark(self, q: Any, relation: str, need_last: bool = True, key: str | None = None) -> Mark:
        schema, _, table = relation.partition(".")
        cols = q(
            "SELECT lower(column_name) FROM information_schema.columns "
            f"WHERE lower(table_schema) = {_literal(schema)} AND lower(table_name) = {_literal(table)}"
        )
        if not cols:
            return Mark(relation, stamped=False, rows=-1 if not need_last else 0)  # not there (yet)
        if key is not None and need_last:
            mark = self._mark(q, relation, need_last, key=None)
            if mark.skip or (key.lower(),) not in cols:
                return mark
            return replace(mark, key=key, high=q(f"SELECT max({_q(key)}) FROM {_table(relation)}")[0][0])
        stamped = (BATCHED_AT,) in cols
        rows, indexed = self._size(q, schema, table)
        if rows > MAX_SCAN_ROWS[self.type] and not (indexed and stamped):
            why = f"no index on {BATCHED_AT}" if stamped else f"no {BATCHED_AT} column"
            return Mark(relation, skip=f"~{rows} rows and {why}: not scanned")
        if not need_last:
            return Mark(relation, stamped=stamped)
        if not stamped:
            return Mark(relation, stamped=False, rows=int(q(f"SELECT count(*) FROM {_table(relation)}")[0][0]))
        return Mark(relation, last=q(f"SELECT max({_q(BATCHED_AT)}) FROM {_table(relation)}")[0][0])

    def _size(self, q: Any, schema: str, table: str) -> tuple[int, bool]:
        """The table's estimated rows (from statistics, not a count) and whether an index leads on the stamp."""

        def where(s: str, t: str) -> str:
            return f"lower({s}) = {_literal(schema)} AND lower({t}) = {_literal(table)}"

        if self.type == "duckdb":
            found = q(f"SELECT estimated_size FROM duckdb_tables() WHERE {where('schema_name', 'table_name')}")
            return (int(found[0][0] or 0) if found else 0), False
        found = q(
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p') AND {where('n.nspname', 'c.relname')}"
        )
        indexed = q(
            f"SELECT 1 FROM pg_indexes WHERE {where('schemaname', 'tablename')} "
            f"AND indexdef LIKE {_literal('%(' + BATCHED_AT + '%')}"
        )
        return (max(int(found[0][0] or 0), 0) if found else 0), bool(indexed)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(relation: str) -> str:
    schema, _, table = relation.partition(".")
    return f"{_q(schema)}.{_q(table)}"


def _literal(value: Any) -> str:
    """A constant in SQL: the plan's names and a timestamp the warehouse itself returned."""
    if hasattr(value, "isoformat"):
        tz = getattr(value, "tzinfo", None)
        return f"TIMESTAMP{' WITH TIME ZONE' if tz else ''} '{value.isoformat(sep=' ')}'"
    return "'" + str(value).replace("'", "''") + "'"
