"""Lateness: an Asset-scheduled DAG that has not run by a configured time after the cycle began.

A DAG scheduled on Assets has no run to put a deadline on until every Asset it waits for
has arrived, so Airflow's run-level Deadline Alerts cannot see it. This check can: the
cycle starts with the tick's Asset event; a DAG counts as done for the cycle when one of
the Assets it emits has an event since then; otherwise, once the expected time has passed,
it is late, and the alert names its upstream Assets without an event since the cycle began.
Pure: the caller supplies each Asset's latest event time (in Airflow, from inlet events).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .events import Alert


@dataclass(frozen=True)
class Expectation:
    dag_id: str
    upstream: tuple[str, ...]  # Asset names the DAG is scheduled on
    outlets: tuple[str, ...]  # Asset names it emits: an event since the cycle began = it ran
    within: timedelta  # after the cycle's start
    dag_tags: tuple[str, ...] = ()
    dbt_tag: str | None = None

    def to_dict(self) -> dict:
        return {
            "dag_id": self.dag_id,
            "upstream": list(self.upstream),
            "outlets": list(self.outlets),
            "within_s": self.within.total_seconds(),
            "dag_tags": list(self.dag_tags),
            "dbt_tag": self.dbt_tag,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Expectation:
        return cls(
            d["dag_id"],
            tuple(d["upstream"]),
            tuple(d["outlets"]),
            timedelta(seconds=d["within_s"]),
            tuple(d.get("dag_tags") or ()),
            d.get("dbt_tag"),
        )


def late_alerts(
    expectations: Iterable[Expectation],
    *,
    cycle_start: datetime,
    now: datetime,
    last_event: Callable[[str], datetime | None],
) -> list[Alert]:
    """One `late` alert per DAG past its expected time without a run in this cycle.

    The alert's time is the deadline and its run id the cycle, so checking again (every few
    minutes) yields the same alert id: delivered once."""
    cycle = cycle_start.isoformat(timespec="seconds")
    alerts = []
    for e in expectations:
        deadline = cycle_start + e.within
        if now < deadline:
            continue
        if any((t := last_event(a)) is not None and t >= cycle_start for a in e.outlets):
            continue
        missing = [a for a in e.upstream if (t := last_event(a)) is None or t < cycle_start]
        waiting = ", ".join(missing) if missing else "nothing (every upstream Asset arrived: is it paused or queued?)"
        alerts.append(
            Alert(
                kind="late",
                dag_id=e.dag_id,
                run_id=f"cycle {cycle}",
                occurred_at=deadline,
                error=f"{e.dag_id} has not run {_span(e.within)} after the cycle began; waiting for: {waiting}",
                dag_tags=list(e.dag_tags),
                dbt={"tag": e.dbt_tag} if e.dbt_tag else None,
                extra={
                    "missing_assets": missing,
                    "expected_by": deadline.isoformat(timespec="seconds"),
                    "cycle": cycle,
                },
            )
        )
    return alerts


def _span(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60}h {minutes % 60}m" if minutes >= 60 else f"{minutes} min"
