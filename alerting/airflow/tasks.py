"""Airflow task callables of the alerting housekeeping DAG: `check_lateness` (Asset-scheduled
DAGs that have not run in time) and `redeliver` (what the outbox still holds)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from .callbacks import AirflowAlerts, now_utc

if TYPE_CHECKING:
    from ..lateness import Expectation

log = logging.getLogger("alerting.airflow")


def check_lateness(
    *,
    expectations: Iterable[Expectation | dict],
    tick: dict[str, str],
    alerts: AirflowAlerts | None = None,
    now: datetime | None = None,
    **context,
) -> list[dict]:
    """Task callable: `late` alerts for the Asset-scheduled DAGs that have not run in time.

    The task declares every Asset named here as an inlet; their latest events come through
    the Task SDK (`inlet_events`), so it works on any executor without metadata DB access.
    `expectations`: `alerting.lateness.Expectation`s or their dict shape (`Expectation.from_dict`);
    `tick`: {name: uri} of the Asset that starts a cycle; `now`: check as of then (default:
    now). A DAG with an open failure incident is skipped: its failure was announced already.
    Returns what it sent."""
    from airflow.sdk import Asset

    from ..lateness import Expectation, late_alerts

    inlet_events = context["inlet_events"]
    uris: dict[str, str] = {}
    for inlet in context["task"].inlets:
        uris[inlet.name] = inlet.uri
    cache: dict[str, datetime | None] = {}

    def last_event(name: str) -> datetime | None:
        if name not in cache:
            events = inlet_events[Asset(name=name, uri=uris[name])].ascending(False).limit(1)
            cache[name] = events[0].timestamp if len(events) else None
        return cache[name]

    tick_name = next(iter(tick))
    cycle_start = last_event(tick_name)
    if cycle_start is None:
        log.info("lateness: no cycle has started yet (no %s event)", tick_name)
        return []
    alerts = alerts or AirflowAlerts()
    notifier = alerts.notifier()
    pending = [e if isinstance(e, Expectation) else Expectation.from_dict(e) for e in expectations]
    pending = [e for e in pending if not notifier.outbox.open_failures(e.dag_id)]
    found = late_alerts(pending, cycle_start=cycle_start, now=now or now_utc(), last_event=last_event)
    sent = []
    for alert in found:
        result = notifier.notify(alert)
        log.warning("late: %s (routes %s)", alert.error, result.routes)
        sent.append(
            {
                "dag_id": alert.dag_id,
                "missing_assets": alert.extra["missing_assets"],
                "routes": result.routes,
                "suppressed": result.suppressed,
            }
        )
    return sent


def redeliver(*, alerts: AirflowAlerts | None = None, **_context) -> dict[str, int]:
    """Task callable: send what is pending and due in the outbox. Counts by status."""
    results = (alerts or AirflowAlerts()).notifier().redeliver()
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    log.info("redeliver: %s", counts or "nothing due")
    return counts
