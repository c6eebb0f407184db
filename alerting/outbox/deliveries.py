"""A delivery row's life: claimed for sending (`claim`, the one place exactly-once is decided),
then sent (`mark_sent`), retried later with a backoff (`mark_retry`) or given back (`release`);
and the queries that read rows (due rows, a row, a window's first Slack message, earlier tries)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from .tables import FAILED, PENDING, SENDING, SENT, SLACK, dedup, deliveries, insert_row, select_rows, utcnow


class Deliveries:
    """The alert_deliveries table. A row is sent only by whoever wins the claim `UPDATE … SET
    status='sending' WHERE id=? AND status='pending'`, so concurrent redeliverers never both send
    it; a 'sending' row whose claimer died is claimed again after `lease_s`."""

    def __init__(self, engine: Engine, *, lease_s: float, max_attempts: int):
        self.engine, self.lease_s, self.max_attempts = engine, lease_s, max_attempts

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

    def ensure(
        self, alert_id: str, route: str, kind: str, target: str, *, signature: str, payload: str, count: int = 1
    ) -> tuple[int | None, bool]:
        """Insert-or-ignore a row (the e-mail fallback): (its id when it is pending, created now?)."""
        created = insert_row(self.engine, alert_id, signature, route, kind, target, payload, count) is not None
        with self.engine.begin() as c:
            row = c.execute(
                select(deliveries.c.id, deliveries.c.status).where(
                    deliveries.c.alert_id == alert_id, deliveries.c.route == route, deliveries.c.kind == kind
                )
            ).one()
        return (row.id if row.status == PENDING else None), created

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

    def row(self, row_id: int) -> dict[str, Any] | None:
        with self.engine.begin() as c:
            r = c.execute(select(deliveries).where(deliveries.c.id == row_id)).mappings().first()
        return dict(r) if r else None

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        return select_rows(self.engine, deliveries, filters)

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

    def count(self, signature: str, route: str, kind: str = "task_failed") -> int:
        """Occurrences in the current suppression window (0 when none is open)."""
        with self.engine.begin() as c:
            found = c.execute(
                select(dedup.c.count).where(
                    dedup.c.signature == signature, dedup.c.alert_kind == kind, dedup.c.route == route
                )
            ).scalar_one_or_none()
        return found or 0

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
