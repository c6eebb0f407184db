"""Lateness: an Asset-scheduled DAG that has not run by a configured time after the cycle began.

A DAG scheduled on Assets has no run to put a deadline on until every Asset it waits for
has arrived, so Airflow's run-level Deadline Alerts cannot see it. This check can: the
cycle starts with the tick's Asset event; a DAG counts as done for the cycle when one of
the Assets it emits has an event since then; otherwise, once the expected time has passed,
it is late, and the alert names its upstream Assets without an event since the cycle began.
Pure: the caller supplies each Asset's latest event time (in Airflow, from inlet events).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .events import Alert, DbtContext
from .routing.messages import quote


class ExpectationError(ValueError):
    """A lateness expectation of the wrong shape: names the DAG (when it can) and the key."""


@dataclass(frozen=True)
class Expectation:
    """When an Asset-scheduled DAG counts as late. The typed interface of this module: build
    these directly, or from the plain dict shape with `from_dict` (what the orchestration plan
    passes to the alerting DAG today):

        {"dag_id": "dbt_finance", "upstream": ["raw_shop.orders"], "outlets": ["analytics.fct_orders"],
         "within_s": 14400, "dag_tags": ["dbt"], "dbt_tag": "finance"}     # the last two optional

    Lists become tuples (the value is frozen and hashable); `within` must be a positive timedelta."""

    dag_id: str
    upstream: tuple[str, ...]  # Asset names the DAG is scheduled on
    outlets: tuple[str, ...]  # Asset names it emits: an event since the cycle began = it ran
    within: timedelta  # after the cycle's start
    dag_tags: tuple[str, ...] = ()
    dbt_tag: str | None = None

    def __post_init__(self) -> None:
        where = f"lateness expectation {quote(self.dag_id)}"
        if not isinstance(self.dag_id, str) or not self.dag_id:
            raise ExpectationError(
                f"lateness expectation: dag_id: expected a non-empty string, got {quote(self.dag_id)}"
            )
        for name in ("upstream", "outlets", "dag_tags"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ExpectationError(f"{where}: {name}: expected a list of Asset names, got {quote(value)}")
            if not all(isinstance(v, str) and v for v in value):
                raise ExpectationError(f"{where}: {name}: expected non-empty strings, got {quote(list(value))}")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.within, timedelta) or self.within <= timedelta(0):
            raise ExpectationError(f"{where}: within: expected a positive timedelta, got {quote(self.within)}")
        if self.dbt_tag is not None and not (isinstance(self.dbt_tag, str) and self.dbt_tag):
            raise ExpectationError(f"{where}: dbt_tag: expected a non-empty string or null, got {quote(self.dbt_tag)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "upstream": list(self.upstream),
            "outlets": list(self.outlets),
            "within_s": self.within.total_seconds(),
            "dag_tags": list(self.dag_tags),
            "dbt_tag": self.dbt_tag,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Expectation:
        """From the dict shape (see the class doc); ExpectationError names the DAG and the key:
        an unknown or missing key, a wrong type, a non-positive `within_s`."""
        from pydantic import ValidationError

        from .routing.schema import ExpectationModel, problems

        if not isinstance(d, Mapping):
            raise ExpectationError(f"lateness expectation: expected a mapping, got {quote(d)}")
        dag_id = d.get("dag_id")
        where = f"lateness expectation {quote(dag_id)}" if isinstance(dag_id, str) else "lateness expectation"
        try:
            m = ExpectationModel.model_validate(dict(d))
        except ValidationError as e:
            raise ExpectationError(
                "; ".join(f"{where}: {path}: {msg}" for path, msg in problems(e, ExpectationModel))
            ) from None
        return cls(
            m.dag_id, tuple(m.upstream), tuple(m.outlets), timedelta(seconds=m.within_s), tuple(m.dag_tags), m.dbt_tag
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
                dbt=DbtContext(tag=e.dbt_tag) if e.dbt_tag else None,
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
