"""One writer at a time on a DuckDB warehouse, whatever runs the writers.

DuckDB allows one writing process per file. An Airflow pool of one slot serialises the
writers when the deployment has that pool; this file lock makes it hold everywhere else too
(a deployment without the pool, `orchestrator cycle`, a second scheduler). The lock file sits
beside the database: `<warehouse>.duckdb.lock`.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .file_lock import lock_exclusive


@contextmanager
def warehouse_lock(database: Path | None, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the exclusive lock of a DuckDB file for the duration (no-op for None: not DuckDB)."""
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a+b") as fh:
        lock_exclusive(
            fh,
            log,
            f"waiting for the DuckDB warehouse {database} (another writer holds it)",
            "got the DuckDB warehouse after {seconds:.1f}s",
        )
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
