"""One event-driven cycle, followed through the REST API and reported.

`follow_cycle` watches every DAG of a cycle at once until each has finished; `format_report`
prints the result (the table `orchestrator run` ends with).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .airflow_env import AirflowLocalError
from .client import TERMINAL_STATES, AirflowClient, parse_ts


@dataclass
class RunReport:
    dag_id: str
    run_id: str | None
    state: str  # success | failed
    run_type: str | None
    start: datetime | None
    end: datetime | None
    triggered_by: list[dict] = field(default_factory=list)  # asset events that created the run
    emitted: list[dict] = field(default_factory=list)  # asset events its tasks emitted

    @property
    def duration(self) -> float | None:
        return (self.end - self.start).total_seconds() if self.start and self.end else None

    @property
    def lag(self) -> float | None:
        """Seconds from the (last) triggering asset event to this run's start: one hop's latency."""
        if not (self.triggered_by and self.start):
            return None
        return (self.start - max(datetime.fromisoformat(e["timestamp"]) for e in self.triggered_by)).total_seconds()


def follow_cycle(
    client: AirflowClient,
    since: datetime,
    dag_ids: Sequence[str],
    *,
    timeout: float = 900,
    poll: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> list[RunReport]:
    """For each DAG, its first run created at/after `since`, once finished, with the asset events that
    triggered it and those it emitted. Raises AirflowLocalError after `timeout` s."""
    deadline = time.monotonic() + timeout
    runs: dict[str, dict] = {}  # dag_id -> its run of this cycle, as last seen
    while True:
        for dag_id in dag_ids:
            if runs.get(dag_id, {}).get("state") not in TERMINAL_STATES and (
                found := client.dag_runs(dag_id, since)[:1]
            ):
                runs[dag_id] = found[0]
                if log and found[0]["state"] in TERMINAL_STATES:
                    log(f"    {dag_id}: {found[0]['state']}")
        finished = {d: r["state"] for d, r in runs.items() if r["state"] in TERMINAL_STATES}
        pending = [d for d in dag_ids if d not in finished]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AirflowLocalError(
                f"cycle not finished after {timeout:.0f}s; still waiting for "
                + ", ".join(f"{d} ({runs[d]['state'] if d in runs else 'no run'})" for d in pending)
            )
        time.sleep(poll)
    reports = []
    for dag_id in dag_ids:
        run = runs[dag_id]
        reports.append(
            RunReport(
                dag_id=dag_id,
                run_id=run["dag_run_id"],
                state=run["state"],
                run_type=run["run_type"],
                start=parse_ts(run["start_date"]),
                end=parse_ts(run["end_date"]),
                triggered_by=client.triggering_asset_events(dag_id, run["dag_run_id"]),
                emitted=client.asset_events(source_dag_id=dag_id, source_run_id=run["dag_run_id"]),
            )
        )
    return reports


def cycle_report(
    client: AirflowClient, since: datetime, dag_ids: Iterable[str], timeout: float = 600
) -> list[RunReport]:
    """`follow_cycle` with the defaults: wait for a finished run of every DAG."""
    return follow_cycle(client, since, list(dag_ids), timeout=timeout)


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def format_report(reports: list[RunReport], raw_rows: Mapping[str, int] | None = None) -> str:
    """Per DAG: state, duration, hop lag, what started it; then each Asset it emitted (with the
    metadata that matters); cycle wall time and hop lag; the warehouse's row counts if given."""
    w = max([len("DAG"), *(len(r.dag_id) for r in reports)]) + 2
    lines = [f"{'DAG':<{w}}{'state':<9}{'duration':>9}{'lag':>7}  started by"]
    for r in reports:
        started = sorted({e["name"] for e in r.triggered_by}) or [r.run_type or "-"]
        lines.append(f"{r.dag_id:<{w}}{r.state:<9}{_secs(r.duration):>9}{_secs(r.lag):>7}  {', '.join(started)}")
        for event in sorted(r.emitted, key=lambda e: e["name"]):
            extra = event.get("extra") or {}
            detail = " ".join(
                f"{k}={extra[k]}"
                for k in ("records_extracted", "status", "rows_affected", "duration_s", "rows")
                if extra.get(k) is not None
            )
            lines.append(f"    -> {event['name']:<40} {detail}".rstrip())
    starts = [r.start for r in reports if r.start]
    ends = [r.end for r in reports if r.end]
    if starts and ends:
        lines.append(
            f"Cycle wall time (first run start -> last run end): {(max(ends) - min(starts)).total_seconds():.1f}s"
        )
    lags = [r.lag for r in reports if r.lag is not None]
    if lags:
        lines.append(
            f"Asset event -> downstream run start: median {statistics.median(lags):.2f}s, "
            f"max {max(lags):.2f}s over {len(lags)} hops"
        )
    if raw_rows is not None:
        lines += ["", f"{'warehouse table':<28}{'rows':>8}"]
        lines += [f"{name:<28}{n:>8}" for name, n in raw_rows.items()]
    return "\n".join(lines)
