"""target-duckdb 0.8.0 with one fix: every record of a batch is loaded.

The bug (target_duckdb/db_sync.py, DbSync.load_rows, line 387 of 0.8.0): each batch is written
to a header-less CSV file and read back with

    COPY <tmp table> FROM '<file>' WITH (new_line '\\r\\n')

which leaves `header` unset, so DuckDB's CSV sniffer guesses whether line 1 is a header. Reading
into a table whose column names are known, DuckDB (1.2, CSVSniffer::DetectHeaderWithSetColumn)
takes line 1 as a header when its values equal the column names, or when *every* column of the
table is VARCHAR (nothing can prove the line is data). So for a stream whose columns are all
strings -- with `add_metadata_columns` off; on, two TIMESTAMP `_sdc_*` columns hide it -- the
first record of *every* batch is silently dropped, and the state still advances past it.
With duckdb 1.3 it is worse (checked with 1.3.2): with `add_metadata_columns` on, upstream loses
the first record of every batch of every stream, typed ones included. This patch loads them all
there too, so duckdb's pin (1.2.2) is only about the storage format shared with the orchestrator.

The fix states the file's dialect instead of letting DuckDB guess it: HEADER false, and the
delimiter, quote and escape characters the csv.writer above used (upstream also left those to
the sniffer). Nothing else changes: same table layout, upsert on the primary key, `_sdc_*`
columns, settings. Upstream's `load_rows` is copied below with the COPY statement changed, and
one crash fixed on the way: a stream whose only columns are its key (no metadata columns).
"""

from __future__ import annotations

import csv
import os
from importlib.metadata import version

import target_duckdb
from target_duckdb import db_sync

PATCHED_RELEASE = "0.8.0"

if version("target-duckdb") != PATCHED_RELEASE:  # pragma: no cover - guarded by the exact pin
    raise ImportError(
        f"target-duckdb-fixed patches target-duckdb {PATCHED_RELEASE}, found {version('target-duckdb')}: "
        "check whether the header bug is fixed upstream before moving the pin"
    )


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def copy_statement(table: str, csv_path: str, delimiter: str, quotechar: str) -> str:
    """The COPY that reads back exactly what `csv.writer(delimiter, quotechar, QUOTE_MINIMAL)` wrote."""
    options = {
        "FORMAT": "csv",
        "HEADER": "false",
        "DELIMITER": _sql_literal(delimiter),
        "QUOTE": _sql_literal(quotechar),
        "ESCAPE": _sql_literal(quotechar),  # csv.writer doubles the quote character (doublequote=True)
        "NEW_LINE": _sql_literal("\\r\\n"),  # csv.writer's default line terminator
    }
    return f"COPY {table} FROM {_sql_literal(csv_path)} ({', '.join(f'{k} {v}' for k, v in options.items())})"


class DbSync(db_sync.DbSync):
    def load_rows(self, records, count, temp_dir):
        stream = self.stream_schema_message["stream"]
        self.logger.info("Loading %d rows into '%s'", count, self.table_name(stream, False))

        cur = self.conn
        temp_table = self.table_name(stream, is_temporary=True)
        temp_file_csv = os.path.join(temp_dir, f"{temp_table}.csv")
        cur.execute(self.create_table_query(table_name=temp_table, is_temporary=True))

        # batch the records into a CSV file and do a copy operation
        with open(temp_file_csv, "w") as f:
            csvwriter = csv.writer(f, delimiter=self.delimiter, quotechar=self.quotechar, quoting=csv.QUOTE_MINIMAL)
            for record in records:
                csvwriter.writerow(self.record_to_flattened(record))
        cur.execute(copy_statement(temp_table, temp_file_csv, self.delimiter, self.quotechar))  # the fix

        # Upstream executes update_from_temp_table() even when it returns None (every column is a key
        # column, no metadata columns), which crashes DuckDB: nothing to update then.
        update = self.update_from_temp_table(temp_table) if self.stream_schema_message["key_properties"] else None
        if update:
            cur.execute(update)
        cur.execute(self.insert_from_temp_table(temp_table))
        cur.execute(f"DROP TABLE {temp_table}")
        os.unlink(temp_file_csv)


def main() -> None:
    # persist_lines() builds its DbSync from target_duckdb's module namespace.
    target_duckdb.DbSync = DbSync
    target_duckdb.main()


if __name__ == "__main__":
    main()
