"""Incidents: a failure opens (or extends) one incident per (DAG, task, route) that stays open,
beyond any de-duplication window, until the next success resolves it. That success is posted in
the failure's thread (and e-mailed where the failure was), and closes the task's de-duplication
windows, so a relapse is announced again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from ..events import Alert
from ..routing.route import Route
from .tables import EMAIL, SENT, SLACK, Enqueued, NewRows, dedup, deliveries, incidents, naive, select_rows


class Incidents:
    """The alert_incidents table: what `Outbox.enqueue()` opens and resolves, and what the
    callbacks ask ("is anything open for this task?")."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def _open(self, dag_id: str, task_id: str, route: str | None = None) -> Any:
        where = [incidents.c.dag_id == dag_id, incidents.c.task_id == task_id, incidents.c.resolved_at.is_(None)]
        if route is not None:
            where.append(incidents.c.route == route)
        return where

    def resolve(self, alert: Alert, route: Route, kinds: list[str], new: NewRows) -> Enqueued:
        """The next success after a failure: resolves the task's open incident on this route and
        answers in its thread (and by e-mail where the failure went by e-mail)."""
        now = naive(alert.occurred_at)
        task = alert.task_id or ""
        with self.engine.begin() as c:
            open_ = (
                c.execute(
                    select(incidents).where(*self._open(alert.dag_id, task, route.name)).order_by(incidents.c.opened_at)
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

    def touch(self, alert: Alert, route: str, aid: str, at: datetime) -> None:
        """Open an incident for this failure, or count it against the one already open."""
        task = alert.task_id or ""
        with self.engine.begin() as c:
            n = c.execute(
                update(incidents)
                .where(*self._open(alert.dag_id, task, route))
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

    def slack_row(self, dag_id: str, task_id: str, route: str) -> int | None:
        """The Slack row of the open incident's first alert: a retry replies in its thread."""
        with self.engine.begin() as c:
            first = c.execute(
                select(incidents.c.first_alert_id).where(*self._open(dag_id, task_id, route))
            ).scalar_one_or_none()
            if first is None:
                return None
            return c.execute(
                select(deliveries.c.id).where(
                    deliveries.c.alert_id == first, deliveries.c.route == route, deliveries.c.kind == SLACK
                )
            ).scalar_one_or_none()

    def open_routes(self, dag_id: str, task_id: str | None) -> list[str]:
        """Routes with an unresolved incident for this task ('' / None: the DAG itself). One
        indexed query: the success callback of every task asks it."""
        with self.engine.begin() as c:
            return [
                r[0] for r in c.execute(select(incidents.c.route).distinct().where(*self._open(dag_id, task_id or "")))
            ]

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        return select_rows(self.engine, incidents, filters)

    def open_failures(self, dag_id: str) -> list[dict[str, Any]]:
        """Unresolved task or DAG failures of a DAG (not lateness)."""
        with self.engine.begin() as c:
            return [
                dict(r)
                for r in c.execute(
                    select(incidents).where(
                        incidents.c.dag_id == dag_id,
                        incidents.c.resolved_at.is_(None),
                        incidents.c.alert_kind != "late",
                    )
                ).mappings()
            ]
