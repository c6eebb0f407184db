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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (Column, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint,
                        create_engine, delete, insert, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from .events import Alert
from .routing import Route

PENDING, SENDING, SENT, FAILED, SUPPRESSED, QUIET = "pending", "sending", "sent", "failed", "suppressed", "quiet"
SLACK, SLACK_REPLY, EMAIL = "slack", "slack_reply", "email"

metadata = MetaData()

deliveries = Table(
    "alert_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), nullable=False),
    Column("signature", String(64), nullable=False, index=True),
    Column("route", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("target", Text, nullable=False),             # Slack channel, or comma-separated e-mails
    Column("status", String(20), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("claimed_at", DateTime),
    Column("sent_at", DateTime),
    Column("slack_channel_id", String(64)),
    Column("slack_ts", String(64)),                       # ts of what we posted
    Column("thread_ts", String(64)),                      # for replies: the parent's ts
    Column("repeat_count", Integer, nullable=False, default=1),
    Column("payload", Text, nullable=False),              # Alert.to_dict() as JSON
    UniqueConstraint("alert_id", "route", "kind", name="uq_alert_route_kind"),
)

dedup = Table(
    "alert_dedup", metadata,
    Column("signature", String(64), primary_key=True),
    Column("alert_kind", String(20), primary_key=True),  # a retry does not suppress the final failure
    Column("route", String(200), primary_key=True),
    Column("dag_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_alert_id", String(64), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _naive(dt: datetime) -> datetime:
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo else dt


def default_url() -> str:
    if os.environ.get("ALERTING_OUTBOX_URL"):
        return os.environ["ALERTING_OUTBOX_URL"]
    path = Path(os.environ.get("ALERTING_OUTBOX_PATH", "var/alerting/outbox.sqlite"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


@dataclass
class Enqueued:
    alert_id: str
    route: str
    suppressed: bool
    count: int                                      # occurrences in the current window
    row_ids: list[int] = field(default_factory=list)  # rows to deliver now


class Outbox:
    def __init__(self, url: str | Engine | None = None, *, lease_s: float = 600, max_attempts: int = 20):
        if isinstance(url, Engine):
            self.engine = url
        else:
            url = url or default_url()
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
                if url in ("sqlite://", "sqlite:///:memory:"):
                    kwargs["poolclass"] = StaticPool
            self.engine = create_engine(url, **kwargs)
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        metadata.create_all(self.engine)

    def __repr__(self) -> str:
        return f"Outbox({self.engine.url.render_as_string(hide_password=True)!r})"

    # ------------------------------------------------------------ enqueue

    def enqueue(self, alert: Alert, route: Route, kinds: list[str], *, window_s: float,
                thread_replies: bool = False, quiet: bool = False) -> Enqueued:
        aid, sig = alert.alert_id(), alert.signature()
        at = _naive(alert.occurred_at)
        with self.engine.begin() as c:
            existing = c.execute(select(deliveries.c.id, deliveries.c.status, deliveries.c.repeat_count)
                                 .where(deliveries.c.alert_id == aid, deliveries.c.route == route.name)).all()
        if existing:  # the same occurrence again (a re-run callback): nothing new
            pend = [r.id for r in existing if r.status == PENDING]
            return Enqueued(aid, route.name, any(r.status == SUPPRESSED for r in existing),
                            max(r.repeat_count for r in existing), pend)
        if alert.kind == "recovered":   # a recovery closes the task's failure windows on this route
            with self.engine.begin() as c:
                c.execute(delete(dedup).where(dedup.c.route == route.name, dedup.c.dag_id == alert.dag_id,
                                              dedup.c.task_id == (alert.task_id or ""),
                                              dedup.c.alert_kind != "recovered"))
        suppressed, count = self._window(sig, alert.kind, route.name, at, aid, window_s,
                                         alert.dag_id, alert.task_id or "")
        rows: list[int] = []
        payload = json.dumps(alert.to_dict())
        if suppressed:
            if thread_replies and SLACK in kinds:
                rid = self._insert(aid, sig, route.name, SLACK_REPLY, route.slack_channel or "", payload, count,
                                   QUIET if quiet else PENDING)
                if rid and not quiet:
                    rows.append(rid)
            else:
                self._insert(aid, sig, route.name, "count", "", payload, count, SUPPRESSED)
        else:
            for kind in kinds:
                target = route.slack_channel if kind == SLACK else ",".join(route.emails)
                rid = self._insert(aid, sig, route.name, kind, target or "", payload, count,
                                   QUIET if quiet else PENDING)
                if rid and not quiet:
                    rows.append(rid)
        return Enqueued(aid, route.name, suppressed, count, rows)

    def _window(self, sig: str, kind: str, route: str, at: datetime, aid: str, window_s: float,
                dag_id: str, task_id: str) -> tuple[bool, int]:
        cutoff = at - timedelta(seconds=window_s)
        where = (dedup.c.signature == sig, dedup.c.alert_kind == kind, dedup.c.route == route)
        for _ in range(5):
            with self.engine.begin() as c:
                n = c.execute(update(dedup).where(*where, dedup.c.window_start > cutoff)
                              .values(count=dedup.c.count + 1, last_seen=at)).rowcount
                if n:
                    return True, c.execute(select(dedup.c.count).where(*where)).scalar_one()
                n = c.execute(update(dedup).where(*where, dedup.c.window_start <= cutoff)
                              .values(window_start=at, last_seen=at, count=1, first_alert_id=aid)).rowcount
                if n:
                    return False, 1
            try:
                with self.engine.begin() as c:
                    c.execute(insert(dedup).values(signature=sig, alert_kind=kind, route=route, dag_id=dag_id,
                                                   task_id=task_id, window_start=at, last_seen=at,
                                                   count=1, first_alert_id=aid))
                return False, 1
            except IntegrityError:
                continue  # a concurrent first occurrence won: count this one against it
        raise RuntimeError("could not settle the de-duplication window")

    def _insert(self, aid: str, sig: str, route: str, kind: str, target: str, payload: str, count: int,
                status: str = PENDING) -> int | None:
        now = utcnow()
        try:
            with self.engine.begin() as c:
                res = c.execute(insert(deliveries).values(
                    alert_id=aid, signature=sig, route=route, kind=kind, target=target, status=status,
                    attempts=0, next_attempt_at=now, created_at=now, repeat_count=count, payload=payload))
                return int(res.inserted_primary_key[0])
        except IntegrityError:
            return None

    def ensure(self, alert_id: str, route: str, kind: str, target: str, *, signature: str, payload: str,
               count: int = 1) -> tuple[int | None, bool]:
        """Insert-or-ignore a row (the e-mail fallback): (its id when it is pending, created now?)."""
        created = self._insert(alert_id, signature, route, kind, target, payload, count) is not None
        with self.engine.begin() as c:
            row = c.execute(select(deliveries.c.id, deliveries.c.status).where(
                deliveries.c.alert_id == alert_id, deliveries.c.route == route, deliveries.c.kind == kind)).one()
        return (row.id if row.status == PENDING else None), created

    # ------------------------------------------------------------ claim / complete

    def claim(self, row_id: int, now: datetime | None = None, *, force: bool = False) -> dict[str, Any] | None:
        """Take a row for sending; None when someone else has it, it is done, or not yet due."""
        now = now or utcnow()
        due = True if force else deliveries.c.next_attempt_at <= now
        stale = now - timedelta(seconds=self.lease_s)
        with self.engine.begin() as c:
            n = c.execute(update(deliveries).where(
                deliveries.c.id == row_id,
                ((deliveries.c.status == PENDING) & due)
                | ((deliveries.c.status == SENDING) & (deliveries.c.claimed_at < stale)))
                .values(status=SENDING, claimed_at=now, attempts=deliveries.c.attempts + 1)).rowcount
            if n != 1:
                return None
            return dict(c.execute(select(deliveries).where(deliveries.c.id == row_id)).mappings().one())

    def mark_sent(self, row_id: int, *, slack_ts: str | None = None, channel_id: str | None = None,
                  thread_ts: str | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(update(deliveries).where(deliveries.c.id == row_id, deliveries.c.status == SENDING)
                      .values(status=SENT, sent_at=utcnow(), slack_ts=slack_ts, slack_channel_id=channel_id,
                              thread_ts=thread_ts, last_error=None))

    def mark_retry(self, row_id: int, error: str, *, retry_after_s: float | None = None,
                   base_s: float = 30, cap_s: float = 3600, permanent: bool = False) -> str:
        with self.engine.begin() as c:
            attempts = c.execute(select(deliveries.c.attempts).where(deliveries.c.id == row_id)).scalar_one()
            delay = retry_after_s if retry_after_s is not None else min(cap_s, base_s * 2 ** max(0, attempts - 1))
            status = FAILED if permanent or attempts >= self.max_attempts else PENDING
            c.execute(update(deliveries).where(deliveries.c.id == row_id, deliveries.c.status == SENDING)
                      .values(status=status, last_error=error[:2000],
                              next_attempt_at=utcnow() + timedelta(seconds=delay)))
        return status

    def release(self, row_id: int) -> None:
        """Give a claimed row back without counting the attempt (e.g. a reply whose parent is not sent)."""
        with self.engine.begin() as c:
            c.execute(update(deliveries).where(deliveries.c.id == row_id, deliveries.c.status == SENDING)
                      .values(status=PENDING, attempts=deliveries.c.attempts - 1))

    # ------------------------------------------------------------ queries

    def due(self, now: datetime | None = None, limit: int = 100, *, include_future: bool = False) -> list[int]:
        now = now or utcnow()
        q = select(deliveries.c.id).where(deliveries.c.status == PENDING)
        if not include_future:
            q = q.where(deliveries.c.next_attempt_at <= now)
        stale = select(deliveries.c.id).where(deliveries.c.status == SENDING,
                                              deliveries.c.claimed_at < now - timedelta(seconds=self.lease_s))
        with self.engine.begin() as c:
            ids = [r[0] for r in c.execute(q.order_by(deliveries.c.id).limit(limit))]
            ids += [r[0] for r in c.execute(stale.limit(limit))]
        return ids

    def parent_ts(self, signature: str, route: str, kind: str) -> tuple[str | None, str | None]:
        """(channel id, ts) of the top-level Slack message that opened the current window."""
        with self.engine.begin() as c:
            first = c.execute(select(dedup.c.first_alert_id).where(
                dedup.c.signature == signature, dedup.c.alert_kind == kind,
                dedup.c.route == route)).scalar_one_or_none()
            if not first:
                return None, None
            row = c.execute(select(deliveries.c.slack_channel_id, deliveries.c.slack_ts).where(
                deliveries.c.alert_id == first, deliveries.c.route == route, deliveries.c.kind == SLACK,
                deliveries.c.status == SENT)).first()
        return (row.slack_channel_id, row.slack_ts) if row else (None, None)

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        q = select(deliveries).order_by(deliveries.c.id)
        for k, v in filters.items():
            q = q.where(deliveries.c[k] == v)
        with self.engine.begin() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def count(self, signature: str, route: str, kind: str = "task_failed") -> int:
        """Occurrences in the current suppression window (0 when none is open)."""
        with self.engine.begin() as c:
            return c.execute(select(dedup.c.count).where(
                dedup.c.signature == signature, dedup.c.alert_kind == kind,
                dedup.c.route == route)).scalar_one_or_none() or 0
