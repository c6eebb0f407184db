"""An exclusive file lock that says when it has to wait: the warehouse's writer lock and the
extractor's `meltano run` lock (warehouse_lock.py, meltano_run_lock.py)."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from typing import IO


def lock_exclusive(fh: IO[bytes], log: Callable[[str], None], waiting: str, got: str) -> None:
    """flock(LOCK_EX) on `fh`; when another process holds it, log `waiting` first and `got` (with
    `{seconds}` filled in) once held. The kernel drops a dead holder's lock."""
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(waiting)
        started = time.monotonic()
        fcntl.flock(fh, fcntl.LOCK_EX)
        log(got.format(seconds=time.monotonic() - started))
