"""The outbox: one row per (alert occurrence, route, channel kind), delivered exactly once.

Any SQLAlchemy URL works (SQLite file by default, PostgreSQL in production). A row is
sent only by whoever wins the claim `UPDATE … SET status='sending' WHERE id=? AND
status='pending'`, so concurrent redeliverers never both send it; the unique key
(alert_id, route, kind) makes enqueueing idempotent. (A process that dies between
the send and `mark_sent` leaves a 'sending' row; it is re-claimed after `lease_s`,
which is the one at-least-once window.)

De-duplication: per (signature, alert kind, route) a window opens at the first occurrence; later
occurrences inside it only increment `count` (and, with thread replies, queue a
"slack_reply" row that posts the count in the original message's thread). A `recovered`
alert closes the task's failure windows, so a relapse is announced again.

Incidents: a failure opens (or extends) one incident per (DAG, task, route) that stays open,
beyond any window, until the next success resolves it; that success is posted in the
failure's thread. Storms: past `threshold` top-level failures on a route within a few
minutes, further failures go into the thread of one "storm" message instead of the channel.
A row may name a `parent_row_id`: it is posted in the thread of that row's message.
An alert with nowhere to be sent (a Slack-only route without Slack credentials) still gets a
`record` row, so every alert is on record.

Retention: `prune(before)` deletes finished rows (sent, failed, suppressed, quiet, recorded;
never pending or sending ones, nor the rows of a still-open incident's first alert, whose
thread its recovery answers in), resolved incidents and expired de-duplication windows and
storm counters older than `before`, at most `limit` rows of each per call. `Notifier.redeliver()`
runs it with `retention_days` from the routing file.

Here: the `Outbox` (its engine, claim / complete, queries). Its parts: `outbox_tables` (the
tables, statuses, row inserts), `outbox_enqueue` (enqueue and de-duplication), `outbox_incidents`
(incidents, recoveries, storms), `outbox_retention` (prune).
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from .outbox_enqueue import Enqueuing
from .outbox_retention import Retention
from .outbox_tables import (
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SLACK,
    dedup,
    default_url,
    deliveries,
    incidents,
    metadata,
    utcnow,
)


class Outbox(Enqueuing, Retention):
    def __init__(self, url: str | Engine | None = None, *, lease_s: float = 600, max_attempts: int = 20):
        if isinstance(url, Engine):
            self.engine = url
        else:
            url = url or default_url()
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
                if url in ("sqlite://", "sqlite:///:memory:"):
                    kwargs["poolclass"] = StaticPool
            self.engine = create_engine(url, **kwargs)
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        metadata.create_all(self.engine)
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        """Indexes added after a table was created (create_all only makes those of new tables)."""
        for index in deliveries.indexes:
            # a concurrent process may make it first; without it pruning is only slower
            with contextlib.suppress(Exception):
                index.create(self.engine, checkfirst=True)

    def __repr__(self) -> str:
        return f"Outbox({self.engine.url.render_as_string(hide_password=True)!r})"

    # ------------------------------------------------------------ claim / complete

    def claim(self, row_id: int, now: datetime | None = None, *, force: bool = False) -> dict[str, Any] | None:
        """Take a row for sending; None when someone else has it, it is done, or not yet due."""
        now = now or utcnow()
        due = True if force else deliveries.c.next_attempt_at <= now
        stale = now - timedelta(seconds=self.lease_s)
        with self.engine.begin() as c:
            n = c.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == row_id,
                    ((deliveries.c.status == PENDING) & due)
                    | ((deliveries.c.status == SENDING) & (deliveries.c.claimed_at < stale)),
                )
                .values(status=SENDING, claimed_at=now, attempts=deliveries.c.attempts + 1)
            ).rowcount
            if n != 1:
                return None
            return dict(c.execute(select(deliveries).where(deliveries.c.id == row_id)).mappings().one())

    def mark_sent(
        self,
        row_id: int,
        *,
        slack_ts: str | None = None,
        channel_id: str | None = None,
        thread_ts: str | None = None,
        message_id: str | None = None,
    ) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(deliveries)
                .where(deliveries.c.id == row_id, deliveries.c.status == SENDING)
                .values(
                    status=SENT,
                    sent_at=utcnow(),
                    slack_ts=slack_ts,
                    slack_channel_id=channel_id,
                    thread_ts=thread_ts,
                    message_id=message_id,
                    last_error=None,
                )
            )

    def mark_retry(
        self,
        row_id: int,
        error: str,
        *,
        retry_after_s: float | None = None,
        base_s: float = 30,
        cap_s: float = 3600,
        permanent: bool = False,
    ) -> str:
        with self.engine.begin() as c:
            attempts = c.execute(select(deliveries.c.attempts).where(deliveries.c.id == row_id)).scalar_one()
            delay = retry_after_s if retry_after_s is not None else min(cap_s, base_s * 2 ** max(0, attempts - 1))
            status = FAILED if permanent or attempts >= self.max_attempts else PENDING
            c.execute(
                update(deliveries)
                .where(deliveries.c.id == row_id, deliveries.c.status == SENDING)
                .values(status=status, last_error=error[:2000], next_attempt_at=utcnow() + timedelta(seconds=delay))
            )
        return status

    def release(self, row_id: int) -> None:
        """Give a claimed row back without counting the attempt (e.g. a reply whose parent is not sent)."""
        with self.engine.begin() as c:
            c.execute(
                update(deliveries)
                .where(deliveries.c.id == row_id, deliveries.c.status == SENDING)
                .values(status=PENDING, attempts=deliveries.c.attempts - 1)
            )

    # ------------------------------------------------------------ queries

    def due(self, now: datetime | None = None, limit: int = 100, *, include_future: bool = False) -> list[int]:
        now = now or utcnow()
        q = select(deliveries.c.id).where(deliveries.c.status == PENDING)
        if not include_future:
            q = q.where(deliveries.c.next_attempt_at <= now)
        stale = select(deliveries.c.id).where(
            deliveries.c.status == SENDING, deliveries.c.claimed_at < now - timedelta(seconds=self.lease_s)
        )
        with self.engine.begin() as c:
            ids = [r[0] for r in c.execute(q.order_by(deliveries.c.id).limit(limit))]
            ids += [r[0] for r in c.execute(stale.limit(limit))]
        return ids

    def parent_ts(self, signature: str, route: str, kind: str) -> tuple[str | None, str | None]:
        """(channel id, ts) of the top-level Slack message that opened the current window."""
        with self.engine.begin() as c:
            first = c.execute(
                select(dedup.c.first_alert_id).where(
                    dedup.c.signature == signature, dedup.c.alert_kind == kind, dedup.c.route == route
                )
            ).scalar_one_or_none()
            if not first:
                return None, None
            row = c.execute(
                select(deliveries.c.slack_channel_id, deliveries.c.slack_ts).where(
                    deliveries.c.alert_id == first,
                    deliveries.c.route == route,
                    deliveries.c.kind == SLACK,
                    deliveries.c.status == SENT,
                )
            ).first()
        return (row.slack_channel_id, row.slack_ts) if row else (None, None)

    def _select(self, table: Table, filters: dict[str, Any]) -> list[dict[str, Any]]:
        q = select(table).order_by(table.c.id)
        for k, v in filters.items():
            q = q.where(table.c[k] == v)
        with self.engine.begin() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        return self._select(deliveries, filters)

    def count(self, signature: str, route: str, kind: str = "task_failed") -> int:
        """Occurrences in the current suppression window (0 when none is open)."""
        with self.engine.begin() as c:
            return (
                c.execute(
                    select(dedup.c.count).where(
                        dedup.c.signature == signature, dedup.c.alert_kind == kind, dedup.c.route == route
                    )
                ).scalar_one_or_none()
                or 0
            )

    def row(self, row_id: int) -> dict[str, Any] | None:
        with self.engine.begin() as c:
            r = c.execute(select(deliveries).where(deliveries.c.id == row_id)).mappings().first()
        return dict(r) if r else None

    def open_incident_routes(self, dag_id: str, task_id: str | None) -> list[str]:
        """Routes with an unresolved incident for this task ('' / None: the DAG itself). One
        indexed query: the success callback of every task asks it."""
        with self.engine.begin() as c:
            return [
                r[0]
                for r in c.execute(
                    select(incidents.c.route)
                    .distinct()
                    .where(
                        incidents.c.dag_id == dag_id,
                        incidents.c.task_id == (task_id or ""),
                        incidents.c.resolved_at.is_(None),
                    )
                )
            ]

    def incidents(self, **filters: Any) -> list[dict[str, Any]]:
        return self._select(incidents, filters)

    def history(self, dag_id: str, task_id: str | None, run_id: str | None) -> list[dict[str, Any]]:
        """The earlier failed tries (retry alerts) of one task in one run, oldest first."""
        with self.engine.begin() as c:
            rows = c.execute(
                select(deliveries.c.payload)
                .distinct()
                .where(
                    deliveries.c.dag_id == dag_id,
                    deliveries.c.task_id == task_id,
                    deliveries.c.run_id == run_id,
                    deliveries.c.alert_kind == "retry",
                )
                .order_by(deliveries.c.payload)
            ).all()
        tries = [json.loads(r[0]) for r in rows]
        return sorted(
            (
                {"try_number": t.get("try_number"), "occurred_at": t.get("occurred_at"), "error": t.get("error", "")}
                for t in tries
            ),
            key=lambda t: t["try_number"] or 0,
        )

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
