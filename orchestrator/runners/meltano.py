"""Run Meltano as a subprocess: argv list, project root, environment, streamed log.

The log is streamed line by line to `log` (the task log under Airflow) and the
last lines are kept, so a failure carries the tail that explains it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..plan.relations import default_stream_table
from .meltano_held import held_job, now_utc
from .meltano_run_lock import plugin_run_locks
from .root_error import root_error

# Singer plugins (SDK and singer-python alike) report rows as METRIC lines, which
# Meltano prefixes with the plugin name: "... [info     ] tap-shop METRIC: {...}".
_METRIC = re.compile(r"\]\s+(?P<plugin>\S+)\s+METRIC: (?P<json>\{.*\})")
_LOADED = " rows into '"  # pipelinewise loaders (target-duckdb...): "Loading 20 rows into '"raw"."t"'"


class MeltanoError(RuntimeError):
    """`meltano` exited non-zero. The message's first line is `summary()`; the log tail follows."""

    def __init__(self, argv: Sequence[str], returncode: int, tail: Sequence[str], root: str | None = None):
        self.argv, self.returncode, self.tail = list(argv), returncode, list(tail)
        self.root = root_error(self.tail) if root is None else root
        super().__init__(self.summary() + "\nlast log lines:\n" + "\n".join(self.tail))

    def summary(self) -> str:
        """One line: the command, its exit code and the root cause (e.g. the tap's own
        `FileNotFoundError: [Errno 2] No such file or directory: '.../orders.csv'`), not Meltano's
        "Extractor failed" nor a source line of the traceback."""
        return f"meltano {' '.join(self.argv[1:])} exited with {self.returncode}" + (
            f": {self.root}" if self.root else ""
        )


@dataclass
class MeltanoResult:
    argv: list[str]
    duration_s: float
    tail: list[str] = field(default_factory=list)
    metric_lines: list[str] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)  # table -> records extracted


class MeltanoNotFound(RuntimeError):
    """No `meltano` executable: the message says where it was looked for and how to set it."""


def meltano_executable(configured: str | None = None) -> str:
    """`meltano.executable` of the config (a path or a name on PATH), else the `meltano` beside this
    Python (the same virtualenv), else the one on PATH."""
    candidates = [configured] if configured else [str(Path(sys.executable).with_name("meltano")), "meltano"]
    for c in candidates:
        found = c if os.path.isabs(c) and os.access(c, os.X_OK) else shutil.which(c)
        if found:
            return found
    raise MeltanoNotFound(
        f"no Meltano executable: looked for {', '.join(candidates)}; set `meltano.executable` in "
        "orchestration.yml to the path of the `meltano` to run"
    )


def record_counts(lines, plugin: str, table_of=default_stream_table) -> dict[str, int]:
    """Records `plugin` reported, per table (`table_of(stream)`: a stream `db-table` loads table
    `table` by default). Only the extractor's lines count: loaders report the same records again.
    """
    counts: dict[str, int] = {}
    for line in lines:
        match = _METRIC.search(line)
        if not match or match["plugin"] != plugin:
            continue
        try:
            metric = json.loads(match["json"])
        except json.JSONDecodeError:
            continue
        if metric.get("metric") == "record_count":
            tags = metric.get("tags") or {}
            table = table_of(str(tags.get("stream") or tags.get("table") or "?"))
            counts[table] = counts.get(table, 0) + int(metric.get("value") or 0)
    return counts


def run_meltano(
    args: Sequence[str],
    *,
    environment: str,
    env: Mapping[str, str],
    project_root: str | Path,
    executable: str | None = None,
    log: Callable[[str], None] = print,
    tail_lines: int = 60,
    scanned_lines: int = 5000,
    wait_for_dead_holder: bool = False,
) -> MeltanoResult:
    """`meltano --environment <environment> <args...>` in the project root (the config's
    `meltano.project_dir`), with `executable` (its `meltano.executable`). A failure raises
    MeltanoError with the last `tail_lines` lines and the root cause found in the last
    `scanned_lines` (a traceback, and Meltano's copy of it, easily fill the tail).

    `wait_for_dead_holder` (an Airflow retry): a run refused because a job of the same state ID is
    still marked running, by a process that stopped heartbeating (the earlier try's, killed with its
    worker), waits until Meltano fails that job as stale and runs once more (meltano_held.py)."""
    argv = [meltano_executable(executable), "--environment", environment, *args]

    def once() -> MeltanoResult:  # a `meltano run` holds its plugins' run directories (meltano_run_lock.py)
        with plugin_run_locks(args, project_root, env, log):
            return _run_once(argv, project_root, env, log, tail_lines, scanned_lines)

    try:
        return once()
    except MeltanoError as exc:
        held = held_job(exc.tail) if wait_for_dead_holder else None
        now = now_utc()
        if held is None or held.alive(now):
            raise
        wait = held.wait_s(now)
        log(
            f"orchestrator: {held.describe(now)}: its process is gone (this is a retry of a try Airflow "
            f"found dead). Meltano fails it as stale at {held.stale_at:%H:%M:%S} UTC: waiting {wait:.0f}s, "
            "then running again (not forced: a holder that is still alive refuses this run again)"
        )
        time.sleep(wait)
    return once()


def _run_once(
    argv: list[str],
    project_root: str | Path,
    env: Mapping[str, str],
    log: Callable[[str], None],
    tail_lines: int,
    scanned_lines: int,
) -> MeltanoResult:
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=tail_lines)
    scanned: deque[str] = deque(maxlen=max(scanned_lines, tail_lines))
    metrics: list[str] = []
    # Plugins print what they like: a byte that is not UTF-8 must not kill the task (nor the alert).
    with subprocess.Popen(
        argv,
        cwd=project_root,
        env={**env, "MELTANO_PROJECT_ROOT": str(project_root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            scanned.append(line)
            if "METRIC:" in line or _LOADED in line:  # what the tap emitted, what the loader says it loaded
                metrics.append(line)
            log(line)
        returncode = proc.wait()
    if returncode != 0:
        raise MeltanoError(argv, returncode, tail, root_error(scanned))
    return MeltanoResult(argv=argv, duration_s=time.monotonic() - started, tail=list(tail), metric_lines=metrics)


def run_extractor(extractor: str, loader: str, **kwargs) -> MeltanoResult:
    """`meltano run <extractor> <loader>`: one incremental load with its own state ID."""
    result = run_meltano(["run", extractor, loader], **kwargs)
    result.records = record_counts(result.metric_lines, extractor)
    return result
