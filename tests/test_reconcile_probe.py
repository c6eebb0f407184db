"""The reconciliation's warehouse side on real DuckDB and PostgreSQL, without Meltano: what a run
wrote, told by the `_sdc_batched_at` stamp (inserts and upserts), by a new table's rows, or by the
rows added; and the bound that keeps a big table from being scanned."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import require_services

from orchestrator.runners import reconcile
from orchestrator.runners.dbt_profile import DbtTarget
from orchestrator.runners.reconcile import Probe, Written

T0 = datetime(2026, 12, 7, 6, 0, 0)


class Warehouse:
    """One DuckDB file or one PostgreSQL schema, written by the test as a loader would."""

    def __init__(self, kind: str, tmp_path: Path):
        self.kind, self.schema = kind, f"raw_{uuid.uuid4().hex[:8]}"
        if kind == "duckdb":
            path = tmp_path / "w.duckdb"
            self.target = DbtTarget(tmp_path, tmp_path, "p", "t", "duckdb", {"path": str(path)})
            self.path = path
        else:
            require_services("postgres")
            settings = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
            self.target = DbtTarget(tmp_path, tmp_path, "p", "t", "postgres", settings)
        self.sql(f'CREATE SCHEMA "{self.schema}"')

    def sql(self, *statements: str) -> None:
        if self.kind == "duckdb":
            import duckdb

            with duckdb.connect(str(self.path)) as conn:
                for s in statements:
                    conn.execute(s)
            return
        engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
        with engine.begin() as conn:
            for s in statements:
                conn.execute(sa.text(s))
        engine.dispose()

    def rows(self, table: str, ids: Iterable[int], at: datetime, stamped: bool = True) -> list[str]:
        """Insert or update (upsert) rows `ids`, stamped `at`."""
        t = f'"{self.schema}"."{table}"'
        out = []
        for i in ids:
            values = f"({i}, 'v{i}'" + (f", TIMESTAMP '{at.isoformat(sep=' ')}')" if stamped else ")")
            cols = "id, v, _sdc_batched_at" if stamped else "id, v"
            update = "v = excluded.v" + (", _sdc_batched_at = excluded._sdc_batched_at" if stamped else "")
            out.append(f"INSERT INTO {t} ({cols}) VALUES {values} ON CONFLICT (id) DO UPDATE SET {update}")
        return out

    def drop(self) -> None:
        if self.kind == "postgres":
            self.sql(f'DROP SCHEMA "{self.schema}" CASCADE')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.services)])
def wh(request, tmp_path):
    w = Warehouse(request.param, tmp_path)
    yield w
    w.drop()


def test_the_stamp_counts_inserts_and_upserts_of_the_run(wh):
    wh.sql(f'CREATE TABLE "{wh.schema}".t (id INTEGER PRIMARY KEY, v VARCHAR, _sdc_batched_at TIMESTAMP)')
    wh.sql(*wh.rows("t", range(0, 5), T0))  # an earlier run
    relation = f"{wh.schema}.t"
    probe = Probe(wh.target)
    marks = probe.marks([relation])
    assert marks[relation].last == T0
    # this run: the bookmark row again (4), two updates (1, 2), three new rows (5..7)
    wh.sql(*wh.rows("t", [4, 1, 2, 5, 6, 7], T0 + timedelta(hours=24)))
    assert probe.written(marks) == {relation: Written(6, "stamp")}


def test_a_new_table_counts_its_rows_and_without_a_stamp_the_rows_added(wh):
    new, plain = f"{wh.schema}.fresh", f"{wh.schema}.plain"
    wh.sql(f'CREATE TABLE "{wh.schema}".plain (id INTEGER PRIMARY KEY, v VARCHAR)')
    wh.sql(*wh.rows("plain", range(0, 3), T0, stamped=False))
    probe = Probe(wh.target)
    marks = probe.marks([new, plain])
    assert (marks[plain].stamped, marks[plain].rows) == (False, 3)
    wh.sql(f'CREATE TABLE "{wh.schema}".fresh (id INTEGER PRIMARY KEY, v VARCHAR)')
    wh.sql(*wh.rows("fresh", range(0, 19), T0, stamped=False))
    wh.sql(*wh.rows("plain", range(2, 6), T0, stamped=False))  # one update (2), three new rows
    assert probe.written(marks) == {new: Written(19, "new"), plain: Written(3, "delta")}


def test_a_big_table_is_not_scanned_unless_an_index_leads_on_the_stamp(wh, monkeypatch):
    wh.sql(f'CREATE TABLE "{wh.schema}".t (id INTEGER PRIMARY KEY, v VARCHAR, _sdc_batched_at TIMESTAMP)')
    wh.sql(*wh.rows("t", range(0, 50), T0))
    if wh.kind == "postgres":
        wh.sql(f'ANALYZE "{wh.schema}".t')  # reltuples: the estimate the bound reads
    monkeypatch.setitem(reconcile.MAX_SCAN_ROWS, wh.kind, 10)
    relation = f"{wh.schema}.t"
    skipped = Probe(wh.target).marks([relation])[relation]
    assert skipped.skip and "rows and no index on _sdc_batched_at: not scanned" in skipped.skip
    if wh.kind == "postgres":
        wh.sql(f'CREATE INDEX ON "{wh.schema}".t (_sdc_batched_at)')
        assert Probe(wh.target).marks([relation])[relation].skip is None


def test_rows_past_the_replication_keys_high_water_mark_leave_out_the_re_sent_bookmark_row(wh):
    """`dbt.build: changed` (plan/changed.py): an SDK tap re-sends the row at its bookmark
    (`key >= bookmark`); only rows past the key's max of before the run are new (`fresh`)."""
    t = f'"{wh.schema}".k'
    wh.sql(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, updated_at TIMESTAMP, _sdc_batched_at TIMESTAMP)")

    def upsert(i: int, updated: datetime, at: datetime) -> str:
        return (
            f"INSERT INTO {t} VALUES ({i}, TIMESTAMP '{updated.isoformat(sep=' ')}', "
            f"TIMESTAMP '{at.isoformat(sep=' ')}') ON CONFLICT (id) DO UPDATE SET "
            "updated_at = excluded.updated_at, _sdc_batched_at = excluded._sdc_batched_at"
        )

    wh.sql(*(upsert(i, T0 + timedelta(hours=i), T0) for i in range(5)))
    relation, probe = f"{wh.schema}.k", Probe(wh.target)
    marks = probe.marks([relation], {relation: "updated_at"})
    assert marks[relation].high == T0 + timedelta(hours=4)
    wh.sql(upsert(4, T0 + timedelta(hours=4), T0 + timedelta(days=1)))  # a day with no new rows
    assert probe.written(marks) == {relation: Written(1, "stamp", fresh=0)}
    marks = probe.marks([relation], {relation: "updated_at"})
    later = T0 + timedelta(days=2)
    wh.sql(upsert(4, T0 + timedelta(hours=4), later), upsert(1, later, later), upsert(5, later, later))
    assert probe.written(marks) == {relation: Written(3, "stamp", fresh=2)}  # an update and a new row
    no_column = probe.marks([relation], {relation: "not_a_column"})
    assert probe.written(no_column) == {relation: Written(0, "stamp")}  # no key to tell by: fresh None
