"""Incidents and storms, the part of `Outbox.enqueue()` that spans alerts.

Incidents: a failure opens (or extends) one incident per (DAG, task, route) that stays open,
beyond any de-duplication window, until the next success resolves it; that success is posted in
the failure's thread (and e-mailed where the failure was), and closes the task's windows, so a
relapse is announced again. Storms: past `threshold` top-level failures on a route within a few
minutes, further failures go into the thread of one "storm" message instead of the channel.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from .events import Alert
from .outbox_tables import (
    EMAIL,
    SENT,
    SLACK,
    SLACK_STORM,
    Enqueued,
    NewRows,
    dedup,
    deliveries,
    incidents,
    key_hash,
    naive,
    storms,
)
from .routing import Route


class IncidentsAndStorms:
    """Mixed into `Outbox` (alerting.outbox): the incident and storm bookkeeping of enqueue()."""

    engine: Engine

    def _enqueue_recovery(self, alert: Alert, route: Route, kinds: list[str], new: NewRows) -> Enqueued:
        """The next success after a failure: resolves the task's open incident on this route and
        answers in its thread (and by e-mail where the failure went by e-mail)."""
        now = naive(alert.occurred_at)
        task = alert.task_id or ""
        with self.engine.begin() as c:
            open_ = (
                c.execute(
                    select(incidents)
                    .where(
                        incidents.c.dag_id == alert.dag_id,
                        incidents.c.task_id == task,
                        incidents.c.route == route.name,
                        incidents.c.resolved_at.is_(None),
                    )
                    .order_by(incidents.c.opened_at)
                )
                .mappings()
                .all()
            )
            if not open_:
                return Enqueued(new.aid, route.name, False, 0, [])
            c.execute(
                update(incidents)
                .where(incidents.c.id.in_([i["id"] for i in open_]))
                .values(resolved_at=now, resolved_by=new.aid)
            )
            # a recovery closes the task's failure windows on this route: a relapse is news again
            c.execute(
                delete(dedup).where(
                    dedup.c.route == route.name, dedup.c.dag_id == alert.dag_id, dedup.c.task_id == task
                )
            )
            first = open_[0]
            rows = c.execute(
                select(deliveries.c.id, deliveries.c.kind, deliveries.c.status).where(
                    deliveries.c.alert_id == first["first_alert_id"], deliveries.c.route == route.name
                )
            ).all()
        slack_parent = next((r.id for r in rows if r.kind == SLACK), None)
        email_parent = next((r.id for r in rows if r.kind == EMAIL and r.status == SENT), None)
        if SLACK in kinds:
            new.add(SLACK, route.slack_channel or "", parent=slack_parent)
        if route.emails and (EMAIL in kinds or email_parent is not None):
            new.add(EMAIL, ",".join(route.emails), parent=email_parent)
        return Enqueued(new.aid, route.name, False, sum(i["count"] for i in open_), new.to_send)

    def _touch_incident(self, alert: Alert, route: str, aid: str, at: datetime) -> None:
        task = alert.task_id or ""
        with self.engine.begin() as c:
            n = c.execute(
                update(incidents)
                .where(
                    incidents.c.dag_id == alert.dag_id,
                    incidents.c.task_id == task,
                    incidents.c.route == route,
                    incidents.c.resolved_at.is_(None),
                )
                .values(last_seen=at, count=incidents.c.count + 1)
            ).rowcount
            if not n:
                c.execute(
                    insert(incidents).values(
                        dag_id=alert.dag_id,
                        task_id=task,
                        route=route,
                        alert_kind=alert.kind,
                        first_alert_id=aid,
                        opened_at=at,
                        last_seen=at,
                        count=1,
                    )
                )

    def _incident_slack_row(self, dag_id: str, task_id: str, route: str) -> int | None:
        with self.engine.begin() as c:
            first = c.execute(
                select(incidents.c.first_alert_id).where(
                    incidents.c.dag_id == dag_id,
                    incidents.c.task_id == task_id,
                    incidents.c.route == route,
                    incidents.c.resolved_at.is_(None),
                )
            ).scalar_one_or_none()
            if first is None:
                return None
            return c.execute(
                select(deliveries.c.id).where(
                    deliveries.c.alert_id == first, deliveries.c.route == route, deliveries.c.kind == SLACK
                )
            ).scalar_one_or_none()

    def _storm(
        self, route: Route, at: datetime, storm: tuple[int, float], status: str, threads: bool, new: NewRows
    ) -> int | None:
        """Counts top-level failures on the route; past the threshold within the window, the rest
        go in the thread of one storm message (its row id), or, without threads, are only counted (-1)."""
        threshold, window_s = storm
        with self.engine.begin() as c:
            row = c.execute(select(storms).where(storms.c.route == route.name)).mappings().first()
            if row is None or row["last_seen"] < at - timedelta(seconds=window_s):
                values = {"started_at": at, "last_seen": at, "count": 1, "header_row_id": None}
                if row is None:
                    c.execute(insert(storms).values(route=route.name, **values))
                else:
                    c.execute(update(storms).where(storms.c.route == route.name).values(**values))
                return None
            count = row["count"] + 1
            c.execute(update(storms).where(storms.c.route == route.name).values(last_seen=at, count=count))
            header = row["header_row_id"]
        if count <= threshold:
            return None
        if not threads:
            return -1
        if header is None:
            info = {
                "route": route.name,
                "started_at": row["started_at"].isoformat(timespec="seconds"),
                "threshold": threshold,
                "window_s": window_s,
            }
            header = new.add(
                SLACK_STORM,
                route.slack_channel or "",
                payload=json.dumps(info),
                alert_id=key_hash("storm", route.name, info["started_at"]),
                status=status,
            )
            with self.engine.begin() as c:
                c.execute(update(storms).where(storms.c.route == route.name).values(header_row_id=header))
        return header
