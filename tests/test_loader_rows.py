"""The embedded loader (meltano/load/loaders.meltano.yml: target-duckdb) never drops a row.

target-duckdb 0.8.0 reads each batch back from a header-less CSV file and lets DuckDB's sniffer
decide whether line 1 is a header; DuckDB 1.2 says yes when every column of the table is VARCHAR,
so the first record of every batch of an all-string stream was lost (see
meltano/load/target-duckdb-fixed). These tests run the installed plugin for real on Singer
message streams and check DuckDB row by row.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from orchestrator.config import REPO_ROOT

pytestmark = pytest.mark.meltano

MELTANO_PROJECT = REPO_ROOT / "meltano"
N_ORDERS = 99
STRING_SCHEMA = {"id": {"type": ["string"]}, "status": {"type": ["string"]}, "rider": {"type": ["null", "string"]}}
MIXED_SCHEMA = {
    "id": {"type": ["integer"]},
    "label": {"type": ["null", "string"]},
    "amount": {"type": ["null", "number"]},
    "paid": {"type": ["null", "boolean"]},
    "updated_at": {"type": ["null", "string"], "format": "date-time"},
}


def _venv_bin(name: str) -> Path:
    sys_dir = Path(os.environ.get("MELTANO_SYS_DIR_ROOT", MELTANO_PROJECT / ".meltano"))
    return sys_dir / "loaders" / "target-duckdb" / "venv" / "bin" / name


def string_orders(n: int = N_ORDERS, *, first: int = 1) -> list[dict]:
    return [
        {"id": f"ord-{i:03d}", "status": ("paid", "open", "refunded")[i % 3], "rider": None if i % 7 == 0 else f"r{i}"}
        for i in range(first, first + n)
    ]


def singer_messages(stream: str, properties: dict, records: list[dict], key: str = "id") -> str:
    lines = [
        {
            "type": "SCHEMA",
            "stream": stream,
            "key_properties": [key],
            "schema": {"type": "object", "properties": properties},
        }
    ]
    lines += [
        {"type": "RECORD", "stream": stream, "record": r, "time_extracted": "2025-03-01T06:00:00+00:00"}
        for r in records
    ]
    lines.append({"type": "STATE", "value": {"bookmarks": {stream: {"loaded": len(records)}}}})
    return "".join(json.dumps(m) + "\n" for m in lines)


def run_loader(tmp_path: Path, messages: str, executable: str = "target-duckdb-fixed", **config) -> list[dict]:
    """Run the installed loader on `messages`; return the STATE messages it emitted."""
    settings = {
        "filepath": str(tmp_path / "w.duckdb"),
        "default_target_schema": "raw_test",
        "add_metadata_columns": True,
    }
    settings.update(config)
    config_file = tmp_path / "loader.json"
    config_file.write_text(json.dumps(settings))
    proc = subprocess.run(
        [str(_venv_bin(executable)), "-c", str(config_file)],
        input=messages,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("metadata", [True, False], ids=["metadata-columns", "no-metadata-columns"])
def test_all_string_stream_loads_every_row(tmp_path, meltano_installed, metadata):
    orders = string_orders()
    run_loader(tmp_path, singer_messages("orders", STRING_SCHEMA, orders), add_metadata_columns=metadata)
    loaded = rows(tmp_path / "w.duckdb", "select id, status, rider from raw_test.orders order by id")
    assert len(loaded) == N_ORDERS
    assert loaded == [(o["id"], o["status"], o["rider"]) for o in orders]


def test_first_row_of_every_batch_is_kept(tmp_path, meltano_installed):
    """batch_size_rows=10: ten COPYs, each of which used to lose its first line."""
    orders = string_orders()
    states = run_loader(
        tmp_path, singer_messages("orders", STRING_SCHEMA, orders), batch_size_rows=10, add_metadata_columns=False
    )
    assert rows(tmp_path / "w.duckdb", "select count(*), count(distinct id) from raw_test.orders") == [(99, 99)]
    assert rows(tmp_path / "w.duckdb", "select min(id), max(id) from raw_test.orders") == [("ord-001", "ord-099")]
    assert states[-1] == {"bookmarks": {"orders": {"loaded": 99}}}


def test_single_row_and_header_like_values(tmp_path, meltano_installed):
    """A one-record batch whose values are the column names: still a data row."""
    header_like = [{"id": "id", "status": "status", "rider": "rider"}]
    run_loader(tmp_path, singer_messages("orders", STRING_SCHEMA, header_like), add_metadata_columns=False)
    assert rows(tmp_path / "w.duckdb", "select id, status, rider from raw_test.orders") == [("id", "status", "rider")]


def test_mixed_stream_values_round_trip(tmp_path, meltano_installed):
    records = [
        {"id": 1, "label": "label", "amount": 1.5, "paid": True, "updated_at": "2025-03-01T08:00:00"},
        {"id": 2, "label": 'comma, "quote"\nand newline', "amount": 0, "paid": False, "updated_at": None},
        {"id": 3, "label": "  NULL ", "amount": -12.25, "paid": None, "updated_at": "2025-03-01T10:30:00.250000"},
        {
            "id": 4,
            "label": "ünïcødé ☃ ; | tab\there",
            "amount": None,
            "paid": True,
            "updated_at": "2025-03-01T09:00:00Z",
        },
        {"id": 5, "label": "", "amount": 3.0, "paid": False, "updated_at": "2025-03-01T09:00:00+02:00"},
    ]
    run_loader(tmp_path, singer_messages("fares", MIXED_SCHEMA, records))
    loaded = rows(
        tmp_path / "w.duckdb", "select id, label, amount, paid, strftime(updated_at, '%H:%M:%S.%f') from raw_test.fares"
    )
    assert sorted(loaded) == [
        (1, "label", 1.5, True, "08:00:00.000000"),
        (2, 'comma, "quote"\nand newline', 0.0, False, None),
        (3, "  NULL ", -12.25, None, "10:30:00.250000"),
        (4, "ünïcødé ☃ ; | tab\there", None, True, "09:00:00.000000"),
        # Upstream behaviour the fix keeps: an empty string loads as NULL, offsets are converted to UTC.
        (5, None, 3.0, False, "07:00:00.000000"),
    ]


def test_second_load_upserts_on_the_primary_key(tmp_path, meltano_installed):
    """Day 2 re-sends two known ids with new values (Singer's at-least-once) and 5 new ones."""
    run_loader(tmp_path, singer_messages("orders", STRING_SCHEMA, string_orders(10)))
    changed = [
        {"id": "ord-001", "status": "refunded", "rider": "r1"},
        {"id": "ord-010", "status": "paid", "rider": None},
    ]
    run_loader(tmp_path, singer_messages("orders", STRING_SCHEMA, changed + string_orders(5, first=11)))
    db = tmp_path / "w.duckdb"
    assert rows(db, "select count(*) from raw_test.orders") == [(15,)]
    assert rows(db, "select id, status from raw_test.orders where id in ('ord-001', 'ord-010') order by id") == [
        ("ord-001", "refunded"),
        ("ord-010", "paid"),
    ]
    columns = {c for (c,) in rows(db, "select column_name from information_schema.columns where table_name='orders'")}
    assert {"_sdc_extracted_at", "_sdc_batched_at", "_sdc_deleted_at"} <= columns


def test_key_only_stream_loads(tmp_path, meltano_installed):
    """Every column a key column: upstream ran `execute(None)` and crashed."""
    records = [{"code": f"Z{i}"} for i in range(3)]
    run_loader(
        tmp_path,
        singer_messages("zones", {"code": {"type": ["string"]}}, records, key="code"),
        add_metadata_columns=False,
    )
    assert rows(tmp_path / "w.duckdb", "select code from raw_test.zones order by code") == [("Z0",), ("Z1",), ("Z2",)]


def test_meltano_invoke_runs_the_patched_loader(tmp_path, meltano_installed):
    """Through the demo's Meltano definition: schema from $MELTANO_EXTRACT__LOAD_SCHEMA, file from the env."""
    env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "WAREHOUSE_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
        "MELTANO_EXTRACT__LOAD_SCHEMA": "raw_invoked",
    }
    proc = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "meltano"), "invoke", "target-duckdb"],
        input=singer_messages("orders", STRING_SCHEMA, string_orders()),
        cwd=MELTANO_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rows(tmp_path / "w.duckdb", "select count(*), min(id) from raw_invoked.orders") == [(99, "ord-001")]


def test_upstream_target_duckdb_still_drops_the_first_row(tmp_path, meltano_installed):
    """Why the patch exists. If this fails, upstream (or DuckDB) changed: re-check whether the patch is still needed."""
    run_loader(
        tmp_path, singer_messages("orders", STRING_SCHEMA, string_orders()), "target-duckdb", add_metadata_columns=False
    )
    assert rows(tmp_path / "w.duckdb", "select count(*), min(id) from raw_test.orders") == [(98, "ord-002")]
