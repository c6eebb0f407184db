"""One event-driven cycle, followed through the REST API and reported.

`follow_cycle` watches every DAG of a cycle at once until each has finished, or can no longer
start this cycle: a DAG is *blocked* when an Asset of its schedule (an AND of Assets) has not
arrived and every DAG that emits that Asset has already finished without it (failed) or is
blocked itself. The graph comes from the plan (schedules and outlets), the arrivals from the
Asset events of this cycle, so a failed extractor ends the cycle at once instead of at the
timeout. `format_report` prints the result (the table `orchestrator run` ends with).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from .airflow_env import AirflowLocalError
from .client import TERMINAL_STATES, AirflowClient, parse_ts


@dataclass(frozen=True)
class FailedTask:
    """A failed task of a run: its last try, the root error line its log ends with, the log's path."""

    task_id: str
    try_number: int
    error: str
    log: str | None


SOURCES_START, SOURCES_END = "::group::Log message source details", "::endgroup::"


def log_root(events: Iterable[dict]) -> tuple[str, str | None]:
    """From a task try's structured log (the REST API's events): the exception it failed with, as
    one line, and the file (or URL) the log was read from. The orchestrator's own TaskFailure
    carries its root cause on its first line (the runner's summary), so it is shown bare."""
    error, sources, in_sources = "", [], False
    for e in events:
        event = str(e.get("event") or "")
        if event in (SOURCES_START, SOURCES_END):
            in_sources = event == SOURCES_START
        elif in_sources:
            sources.append(event)
        elif detail := e.get("error_detail"):
            raised = detail[0] if isinstance(detail, list) and detail else {}
            kind, value = str(raised.get("exc_type") or ""), str(raised.get("exc_value") or "")
            first = next((line.strip() for line in value.splitlines() if line.strip()), "")
            error = first if kind == "TaskFailure" else f"{kind}: {first}" if first else kind
    return error, (sources[0] if sources else None)


def _try_root(client: AirflowClient, dag_id: str, run_id: str, ti: dict, try_number: int) -> FailedTask:
    """One try of a task instance: the root error its log ends with, and the log's path."""
    try:
        events = client.task_log(dag_id, run_id, ti["task_id"], try_number, int(ti.get("map_index", -1)))
    except (httpx.HTTPError, AirflowLocalError) as exc:  # the report still comes; it says why not this
        events = [{"event": "no log", "error_detail": [{"exc_type": "log unavailable", "exc_value": str(exc)}]}]
    error, log = log_root(events)
    return FailedTask(ti["task_id"], try_number, error or "no exception in its log", log)


def failed_tasks(
    client: AirflowClient, dag_id: str, run_id: str, task_instances: list[dict] | None = None
) -> list[FailedTask]:
    """The failed tasks of a run (not those that did not run because an upstream failed), each with
    its last try's root error and log path, from the REST API."""
    tis = task_instances if task_instances is not None else client.task_instances(dag_id, run_id)
    return [
        _try_root(client, dag_id, run_id, ti, int(ti.get("try_number") or 1))
        for ti in tis
        if ti.get("state") == "failed"
    ]


def retried_tries(
    client: AirflowClient, dag_id: str, run_id: str, task_instances: list[dict] | None = None
) -> list[FailedTask]:
    """Every try of a run's tasks that was followed by another (Airflow retried it: it failed), each
    with its root error and log path; a retry that then succeeded still cost its time, and a
    run that succeeded only on a retry is worth knowing about (a flaky source, a loaded machine)."""
    tis = task_instances if task_instances is not None else client.task_instances(dag_id, run_id)
    return [_try_root(client, dag_id, run_id, ti, n) for ti in tis for n in range(1, int(ti.get("try_number") or 0))]


@dataclass
class RunReport:
    dag_id: str
    run_id: str | None
    state: str  # success | failed | blocked
    run_type: str | None
    start: datetime | None
    end: datetime | None
    triggered_by: list[dict] = field(default_factory=list)  # asset events that created the run
    emitted: list[dict] = field(default_factory=list)  # asset events its tasks emitted
    blocked_by: tuple[str, ...] = ()  # blocked: the finished upstream DAGs whose Assets never came
    missing: tuple[str, ...] = ()  # blocked: the Assets of its schedule that did not arrive
    failures: list[FailedTask] = field(default_factory=list)  # failed: its failed tasks, why, and their logs
    retries: list[FailedTask] = field(default_factory=list)  # tries that failed and were retried, why, their logs

    @property
    def duration(self) -> float | None:
        return (self.end - self.start).total_seconds() if self.start and self.end else None

    @property
    def cycles(self) -> list[str]:
        """The cycles its events name (the tick's logical date, in extra): what it ran for."""
        events = self.emitted or self.triggered_by
        return sorted({c for e in events if (c := (e.get("extra") or {}).get("cycle"))})

    @property
    def lag(self) -> float | None:
        """Seconds from the (last) triggering asset event to this run's start: one hop's latency."""
        if not (self.triggered_by and self.start):
            return None
        return (self.start - max(datetime.fromisoformat(e["timestamp"]) for e in self.triggered_by)).total_seconds()


@dataclass(frozen=True)
class Blocked:
    upstream: tuple[str, ...]  # the finished DAGs at the root of it (failed, or done without the Asset)
    missing: tuple[str, ...]  # Assets of the schedule that have not arrived


def blocked_dags(
    graph: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    finished: Mapping[str, str],
    active: Iterable[str],
    arrived: Iterable[str],
    queued: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Blocked]:
    """The DAGs of `graph` (dag_id -> (schedule Assets, all of them needed; outlet Assets)) that can
    no longer start: not `finished` (dag_id -> state of its run this cycle), not `active` (a run
    queued or running), and some Asset of the schedule has neither `arrived` (an event this cycle)
    nor is `queued` for that DAG (dag_id -> Assets with an event it has not run on yet, maybe from an
    earlier cycle), while every DAG of the graph that emits it has finished or is blocked. An Asset
    no DAG of the graph emits (an outside loader) may still come: it blocks nothing. Assets that did
    arrive, from DAGs that succeeded, do not help."""
    active, arrived, queued = set(active), set(arrived), queued or {}
    producers: dict[str, list[str]] = {}
    for dag_id, (_, outlets) in graph.items():
        for asset in outlets:
            producers.setdefault(asset, []).append(dag_id)
    blocked: dict[str, Blocked] = {}
    changed = True
    while changed:  # to a fixed point: a blocked DAG blocks what waits on its Assets
        changed = False
        for dag_id, (schedule, _) in graph.items():
            if dag_id in blocked or dag_id in finished or dag_id in active:
                continue
            missing = [a for a in schedule if a not in arrived and a not in set(queued.get(dag_id, ()))]
            dead = [a for a in missing if producers.get(a) and all(p in finished or p in blocked for p in producers[a])]
            if not dead:
                continue
            roots: set[str] = set()
            for asset in dead:
                for p in producers[asset]:
                    roots |= set(blocked[p].upstream) if p in blocked else {p}
            blocked[dag_id] = Blocked(upstream=tuple(sorted(roots)), missing=tuple(sorted(missing)))
            changed = True
    return blocked


def follow_cycle(
    client: AirflowClient,
    since: datetime,
    dag_ids: Sequence[str],
    *,
    graph: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
    timeout: float = 900,
    poll: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> list[RunReport]:
    """For each DAG, its first run created at/after `since`, once finished, with the asset events that
    triggered it and those it emitted; with `graph` (see blocked_dags), a DAG that can no longer start
    is reported at once as `blocked`. Returns once nothing is running or able to start; raises
    AirflowLocalError after `timeout` s."""
    deadline = time.monotonic() + timeout
    runs: dict[str, dict] = {}  # dag_id -> its run of this cycle, as last seen
    blocked: dict[str, Blocked] = {}
    names: dict[int, str] = {}  # asset id -> name
    tries: dict[str, tuple[list[FailedTask], list[FailedTask]]] = {}  # dag_id -> (failures, retries)
    while True:
        for dag_id in dag_ids:
            if runs.get(dag_id, {}).get("state") not in TERMINAL_STATES and (
                found := client.dag_runs(dag_id, since)[:1]
            ):
                runs[dag_id] = found[0]
                if found[0]["state"] in TERMINAL_STATES:
                    tries[dag_id] = _tries(client, dag_id, found[0])
                    if log:
                        log(f"    {dag_id}: {found[0]['state']}")
                        for t in tries[dag_id][1]:
                            log(f"    {dag_id}: {_retry_line(t)}")
        finished = {d: r["state"] for d, r in runs.items() if r["state"] in TERMINAL_STATES}
        if graph is not None and any(s != "success" for s in finished.values()):
            # Run states first, then the events: a run is marked done only after its tasks emitted.
            arrived = {e["name"] for e in client.asset_events(since)}
            sub = {d: graph[d] for d in dag_ids if d in graph}
            waiting = [d for d in sub if d not in runs and not set(sub[d][0]) <= arrived]
            if waiting and not names:
                names.update(client.asset_names())
            queued = {
                d: {names[q["asset_id"]] for q in client.queued_asset_events(d) if q["asset_id"] in names}
                for d in waiting
            }
            now_blocked = blocked_dags(sub, finished, set(runs) - set(finished), arrived, queued)
            for dag_id in sorted(set(now_blocked) - set(blocked)):
                b = now_blocked[dag_id]
                if log:
                    log(f"    {dag_id}: blocked by {', '.join(b.upstream)}; missing {', '.join(b.missing)}")
            blocked = now_blocked
        pending = [d for d in dag_ids if d not in finished and d not in blocked]
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
        if dag_id in blocked:
            b = blocked[dag_id]
            reports.append(
                RunReport(dag_id, None, "blocked", None, None, None, blocked_by=b.upstream, missing=b.missing)
            )
            continue
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
                failures=tries[dag_id][0],
                retries=tries[dag_id][1],
            )
        )
    return reports


def _tries(client: AirflowClient, dag_id: str, run: dict) -> tuple[list[FailedTask], list[FailedTask]]:
    """A finished run's failed tasks (if it failed) and retried tries, from one task-instance listing."""
    tis = client.task_instances(dag_id, run["dag_run_id"])
    failures = failed_tasks(client, dag_id, run["dag_run_id"], tis) if run["state"] == "failed" else []
    return failures, retried_tries(client, dag_id, run["dag_run_id"], tis)


def _retry_line(t: FailedTask) -> str:
    return f"{t.task_id} try {t.try_number} failed, retried: {t.error}"


@dataclass(frozen=True)
class CycleSeen:
    """A cycle whose events came while this one was followed, and the tick run that started it."""

    cycle: str
    run_type: str | None  # manual (orchestrator run, a person) | scheduled (the cron) | None: no tick event
    run_id: str | None


def cycles_seen(client: AirflowClient, tick_dag_id: str, since: datetime) -> list[CycleSeen]:
    """Every cycle named by an Asset event since `since`, oldest first, each with its tick run: the
    one `orchestrator run` triggered, one the cron started beside it (a tick just before midnight
    and the cron's at 00:00), or an earlier cycle's late load landing now."""
    named = {c for e in client.asset_events(since) if (c := (e.get("extra") or {}).get("cycle"))}
    ticks = {}
    for e in client.asset_events(since - timedelta(days=7), source_dag_id=tick_dag_id):
        if (c := (e.get("extra") or {}).get("cycle")) in named:
            ticks[c] = e.get("source_run_id")
    out = []
    for cycle in sorted(named):
        run_id = ticks.get(cycle)
        kind = None
        if run_id:
            kind = (
                "scheduled" if run_id.startswith("scheduled") else "manual" if run_id.startswith("manual") else "other"
            )
        out.append(CycleSeen(cycle, kind, run_id))
    return out


def cycle_report(
    client: AirflowClient, since: datetime, dag_ids: Iterable[str], timeout: float = 600
) -> list[RunReport]:
    """`follow_cycle` without a graph: wait for a finished run of every DAG."""
    return follow_cycle(client, since, list(dag_ids), timeout=timeout)


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def format_report(
    reports: list[RunReport], raw_rows: Mapping[str, int] | None = None, cycles: Sequence[CycleSeen] = ()
) -> str:
    """Per DAG: state, duration, hop lag, what started it (and, when more than one cycle ran, which
    cycle); then each Asset it emitted (with the metadata that matters), or for a blocked DAG what
    it waits for; cycle wall time and hop lag; every cycle that ran, and what started it."""
    w = max([len("DAG"), *(len(r.dag_id) for r in reports)]) + 2
    lines = [f"{'DAG':<{w}}{'state':<9}{'duration':>9}{'lag':>7}  started by"]
    several = len(cycles) > 1
    for r in reports:
        started = sorted({e["name"] for e in r.triggered_by}) or [r.run_type or "-"]
        line = f"{r.dag_id:<{w}}{r.state:<9}{_secs(r.duration):>9}{_secs(r.lag):>7}  {', '.join(started)}"
        if several and r.cycles:
            line += f"  [cycle {', '.join(r.cycles)}]"
        lines.append(line)
        for event in sorted(r.emitted, key=lambda e: e["name"]):
            extra = event.get("extra") or {}
            detail = " ".join(
                f"{k}={extra[k]}"
                for k in ("records_extracted", "rows_written", "status", "rows_affected", "duration_s", "rows")
                if extra.get(k) is not None
            )
            lines.append(f"    -> {event['name']:<40} {detail}".rstrip())
            if extra.get("reconcile") == "mismatch":  # the tap's records and the loader's rows disagree
                lines.append(f"       ! RECONCILE MISMATCH: {extra.get('reconcile_note', '')}".rstrip())
        for t in r.retries:
            lines.append(f"    ~ {_retry_line(t)}")
            lines.append(f"      log: {t.log or 'not found through the API: see the Airflow UI'}")
        for f in r.failures:
            lines.append(f"    ! {f.task_id} failed (try {f.try_number}): {f.error}")
            lines.append(f"      log: {f.log or 'not found through the API: see the Airflow UI'}")
        if r.state == "blocked":
            lines.append(f"    blocked by {', '.join(r.blocked_by)}; did not arrive: {', '.join(r.missing)}")
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
    if retried := [r for r in reports if r.retries]:
        lines.append(
            f"{sum(len(r.retries) for r in retried)} task try(s) failed and were retried, in "
            + ", ".join(r.dag_id for r in retried)
        )
    if blocked := [r for r in reports if r.state == "blocked"]:
        roots = sorted({u for r in blocked for u in r.blocked_by})
        lines.append(f"{len(blocked)} DAG(s) blocked this cycle by {', '.join(roots)}")
    if cycles:
        started_by = {"scheduled": "the cron", "manual": "by hand or orchestrator run"}
        lines.append(
            f"Cycles that ran: {len(cycles)}: "
            + "; ".join(
                f"{c.cycle} ({started_by.get(c.run_type or '', c.run_type or 'no tick run seen')})" for c in cycles
            )
        )
        if several:
            lines.append("    more than one cycle ran: a dbt DAG builds only once its inputs belong to one cycle")
    if raw_rows is not None:
        lines += ["", f"{'warehouse table':<28}{'rows':>8}"]
        lines += [f"{name:<28}{n:>8}" for name, n in raw_rows.items()]
    return "\n".join(lines)
