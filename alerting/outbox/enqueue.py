"""`Outbox.enqueue()`: record one alert for one route, with de-duplication.

Per (signature, alert kind, route) a window opens at the first occurrence; later occurrences
inside it only increment `count` (and, with thread replies, queue a "slack_reply" row that posts
the count in the original message's thread, at a few milestones). A retry is a quiet reply in
the open incident's thread, or only recorded. An alert with nowhere to be sent (a Slack-only
route without Slack credentials) still gets a `record` row, so every alert is on record.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..events import Alert
from ..routing.route import Route
from .incidents import Incidents
from .storms import COUNTED_ONLY, Storms
from .tables import (
    NOTICE_KINDS,
    PENDING,
    QUIET,
    RECORD,
    RECORDED,
    SLACK,
    SLACK_REPLY,
    SUPPRESSED,
    Enqueued,
    NewRows,
    dedup,
    deliveries,
    naive,
)


def _milestone(count: int) -> bool:
    """Counts worth a "seen again" reply: 2, 3, 5, 10, 20, 50, 100, 200, 500, ... (a flood of
    repeats posts a handful of replies, not one each)."""
    if count in (2, 3):
        return True
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count in (1, 2, 5)


class Enqueuer:
    """Writes what one alert means for one route: its delivery rows, its de-duplication window,
    its incident and its place in a storm."""

    def __init__(self, engine: Engine, incidents: Incidents, storms: Storms):
        self.engine, self.incidents, self.storms = engine, incidents, storms

    def enqueue(
        self,
        alert: Alert,
        route: Route,
        kinds: list[str],
        *,
        window_s: float,
        thread_replies: bool = False,
        quiet: bool = False,
        threads: bool | None = None,
        storm: tuple[int, float] | None = None,
    ) -> Enqueued:
        """Record one alert for one route; the ids of the rows to send now.

        `threads`: Slack threads are available (a bot token, not a webhook); `thread_replies`:
        repeats of a suppressed failure are posted in its thread (else only counted).
        `storm`: (threshold, window_s) for grouping a burst of failures into one thread."""
        threads = thread_replies if threads is None else threads
        again = self._recorded_already(alert, route)
        if again is not None:  # the same occurrence again (a re-run callback): nothing new
            return again
        status = QUIET if quiet else PENDING
        new = NewRows(self.engine, alert, route.name, status)
        if alert.kind == "recovered":
            return self.incidents.resolve(alert, route, kinds, new)
        if alert.kind == "retry":
            # Quiet: a reply in the thread of the task's open incident, if it has one; else only
            # recorded, and the final failure's message lists the earlier tries.
            parent = self.incidents.slack_row(alert.dag_id, alert.task_id or "", route.name)
            if parent and threads and SLACK in kinds:
                new.add(SLACK, route.slack_channel or "", parent=parent)
            else:
                new.add(RECORD, "", status=RECORDED)
            return Enqueued(new.aid, route.name, False, 1, new.to_send)

        at = naive(alert.occurred_at)
        suppressed, count = self._window(
            new.sig, alert.kind, route.name, at, new.aid, window_s, alert.dag_id, alert.task_id or ""
        )
        if alert.kind not in NOTICE_KINDS:
            self.incidents.touch(alert, route.name, new.aid, at)
        if suppressed:
            if thread_replies and threads and SLACK in kinds and _milestone(count):
                new.add(SLACK_REPLY, route.slack_channel or "", count=count)
            else:
                new.add("count", "", count=count, status=SUPPRESSED)
            return Enqueued(new.aid, route.name, True, count, new.to_send)
        parent = self.storms.place(route, at, storm, status, threads, new) if storm and SLACK in kinds else None
        for kind in kinds:
            target = route.slack_channel if kind == SLACK else ",".join(route.emails)
            if kind == SLACK and parent == COUNTED_ONLY:  # a storm without threads
                new.add("count", "", count=count, status=SUPPRESSED)
                continue
            new.add(kind, target or "", count=count, parent=parent if kind == SLACK else None)
        if not kinds:  # nowhere to send it (a Slack-only route without Slack credentials): on record
            new.add(RECORD, "", count=count, status=RECORDED)
        return Enqueued(new.aid, route.name, False, count, new.to_send)

    def _recorded_already(self, alert: Alert, route: Route) -> Enqueued | None:
        """What an earlier enqueue of this very occurrence recorded for the route (None: nothing)."""
        aid = alert.alert_id()
        with self.engine.begin() as c:
            existing = c.execute(
                select(deliveries.c.id, deliveries.c.status, deliveries.c.repeat_count).where(
                    deliveries.c.alert_id == aid, deliveries.c.route == route.name
                )
            ).all()
        if not existing:
            return None
        pending = [r.id for r in existing if r.status == PENDING]
        suppressed = any(r.status == SUPPRESSED for r in existing)
        return Enqueued(aid, route.name, suppressed, max(r.repeat_count for r in existing), pending)

    def _window(
        self, sig: str, kind: str, route: str, at: datetime, aid: str, window_s: float, dag_id: str, task_id: str
    ) -> tuple[bool, int]:
        cutoff = at - timedelta(seconds=window_s)
        where = (dedup.c.signature == sig, dedup.c.alert_kind == kind, dedup.c.route == route)
        for _ in range(5):
            with self.engine.begin() as c:
                n = c.execute(
                    update(dedup)
                    .where(*where, dedup.c.window_start > cutoff)
                    .values(count=dedup.c.count + 1, last_seen=at)
                ).rowcount
                if n:
                    return True, c.execute(select(dedup.c.count).where(*where)).scalar_one()
                n = c.execute(
                    update(dedup)
                    .where(*where, dedup.c.window_start <= cutoff)
                    .values(window_start=at, last_seen=at, count=1, first_alert_id=aid)
                ).rowcount
                if n:
                    return False, 1
            try:
                with self.engine.begin() as c:
                    c.execute(
                        insert(dedup).values(
                            signature=sig,
                            alert_kind=kind,
                            route=route,
                            dag_id=dag_id,
                            task_id=task_id,
                            window_start=at,
                            last_seen=at,
                            count=1,
                            first_alert_id=aid,
                        )
                    )
                return False, 1
            except IntegrityError:
                continue  # a concurrent first occurrence won: count this one against it
        raise RuntimeError("could not settle the de-duplication window")
