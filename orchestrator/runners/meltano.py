"""Run Meltano as a subprocess: argv list, project root, environment, streamed log.

The log is streamed line by line to `log` (the task log under Airflow) and the
last lines are kept, so a failure carries the tail that explains it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..profiles import REPO_ROOT

MELTANO_PROJECT = REPO_ROOT / "meltano"
# Singer plugins (SDK and singer-python alike) report rows as METRIC lines, which
# Meltano prefixes with the plugin name: "... [info     ] tap-shop METRIC: {...}".
_METRIC = re.compile(r"\]\s+(?P<plugin>\S+)\s+METRIC: (?P<json>\{.*\})")


class MeltanoError(RuntimeError):
    def __init__(self, argv: Sequence[str], returncode: int, tail: Sequence[str]):
        self.argv, self.returncode, self.tail = list(argv), returncode, list(tail)
        super().__init__(f"meltano {' '.join(argv[1:])} exited with {returncode}; last log lines:\n" + "\n".join(tail))

    def summary(self) -> str:
        """One line: the command, its exit code and the plugin's own exception (e.g. the tap's
        `ValueError: .../ad_spend.jsonl:19: not valid JSON`), not Meltano's "Extractor failed"."""
        return f"meltano {' '.join(self.argv[1:])} exited with {self.returncode}" + (
            f": {cause}" if (cause := plugin_error(self.tail)) else ""
        )


def plugin_error(lines: Sequence[str]) -> str:
    """The last exception line a plugin (not Meltano itself) logged, else its last error-ish line."""
    fallback = ""
    for line in reversed(lines):
        rest = re.sub(r"^\S+\s+\[\s*\w+\s*\]\s*", "", line.strip())  # "<time> [level   ] "
        plugin, _, message = rest.partition(" ")
        message = message.strip()
        if plugin == "meltano" or not message:
            continue
        if re.match(r"[\w.]*(Error|Exception)\b", message):
            return message
        if not fallback and re.search(r"error|failed|refused|denied", message, re.I):
            fallback = message
    return fallback


@dataclass
class MeltanoResult:
    argv: list[str]
    duration_s: float
    tail: list[str] = field(default_factory=list)
    metric_lines: list[str] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)  # table -> records extracted


def meltano_executable() -> str:
    return str(Path(sys.executable).with_name("meltano"))


def record_counts(lines, plugin: str) -> dict[str, int]:
    """Records `plugin` reported, per table (a stream `db-table` loads table `table`).

    Only the extractor's lines count: loaders report the same records again.
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
            table = str(tags.get("stream") or tags.get("table") or "?").split("-")[-1]
            counts[table] = counts.get(table, 0) + int(metric.get("value") or 0)
    return counts


def run_meltano(
    args: Sequence[str],
    *,
    environment: str,
    env: Mapping[str, str],
    project_root: str | Path = MELTANO_PROJECT,
    log: Callable[[str], None] = print,
    tail_lines: int = 60,
) -> MeltanoResult:
    """`meltano --environment <environment> <args...>` in the project root."""
    argv = [meltano_executable(), "--environment", environment, *args]
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=tail_lines)
    metrics: list[str] = []
    with subprocess.Popen(
        argv, cwd=project_root, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if "METRIC:" in line:
                metrics.append(line)
            log(line)
        returncode = proc.wait()
    if returncode != 0:
        raise MeltanoError(argv, returncode, tail)
    return MeltanoResult(argv=argv, duration_s=time.monotonic() - started, tail=list(tail), metric_lines=metrics)


def run_extractor(extractor: str, loader: str, **kwargs) -> MeltanoResult:
    """`meltano run <extractor> <loader>`: one incremental load with its own state ID."""
    result = run_meltano(["run", extractor, loader], **kwargs)
    result.records = record_counts(result.metric_lines, extractor)
    return result
