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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from .events import Alert
from .routing import Route

PENDING, SENDING, SENT, FAILED, SUPPRESSED, QUIET, RECORDED = (
    "pending",
    "sending",
    "sent",
    "failed",
    "suppressed",
    "quiet",
    "recorded",
)
SLACK, SLACK_REPLY, SLACK_STORM, EMAIL, RECORD = "slack", "slack_reply", "slack_storm", "email", "record"
FAILURE_KINDS = ("task_failed", "dag_failed", "late")

metadata = MetaData()

deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), nullable=False),
    Column("signature", String(64), nullable=False, index=True),
    Column("route", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("target", Text, nullable=False),  # Slack channel, or comma-separated e-mails
    Column("status", String(20), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),  # retention: prune() finds old rows by it
    Column("claimed_at", DateTime),
    Column("sent_at", DateTime),
    Column("slack_channel_id", String(64)),
    Column("slack_ts", String(64)),  # ts of what we posted
    Column("thread_ts", String(64)),  # for replies: the parent's ts
    Column("repeat_count", Integer, nullable=False, default=1),
    Column("payload", Text, nullable=False),  # Alert.to_dict() as JSON
    Column("parent_row_id", Integer),  # post in the thread of that row's message
    Column("message_id", String(255)),  # e-mail: our Message-ID (replies reference it)
    Column("dag_id", String(250), index=True),
    Column("task_id", String(250)),
    Column("run_id", String(250)),
    Column("alert_kind", String(20)),
    UniqueConstraint("alert_id", "route", "kind", name="uq_alert_route_kind"),
)

incidents = Table(
    "alert_incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False, index=True),
    Column("task_id", String(250), nullable=False),  # '' for DAG-level (dag_failed, late)
    Column("route", String(200), nullable=False),
    Column("alert_kind", String(20), nullable=False),
    Column("first_alert_id", String(64), nullable=False),
    Column("opened_at", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("resolved_at", DateTime, index=True),
    Column("resolved_by", String(64)),  # the recovery's alert_id
)

storms = Table(
    "alert_storms",
    metadata,
    Column("route", String(200), primary_key=True),
    Column("started_at", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("header_row_id", Integer),
)

dedup = Table(
    "alert_dedup",
    metadata,
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


def _milestone(count: int) -> bool:
    """Counts worth a "seen again" reply: 2, 3, 5, 10, 20, 50, 100, 200, 500, ... (a flood of
    repeats posts a handful of replies, not one each)."""
    if count in (2, 3):
        return True
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count in (1, 2, 5)


def _hash(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


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
    count: int  # occurrences in the current window
    row_ids: list[int] = field(default_factory=list)  # rows to deliver now


class _Rows:
    """The rows one enqueue() inserts, and which of them to send now."""

    def __init__(self, outbox: Outbox, alert: Alert, route: str, status: str):
        self.outbox, self.alert, self.route, self.status = outbox, alert, route, status
        self.aid, self.sig = alert.alert_id(), alert.signature()
        self.payload = json.dumps(alert.to_dict(), default=str)
        self.to_send: list[int] = []

    def add(
        self,
        kind: str,
        target: str,
        *,
        count: int = 1,
        parent: int | None = None,
        status: str | None = None,
        payload: str | None = None,
        alert_id: str | None = None,
    ) -> int | None:
        status = status or self.status
        rid = self.outbox._insert(
            alert_id or self.aid,
            self.sig,
            self.route,
            kind,
            target,
            payload or self.payload,
            count,
            status,
            parent=parent,
            alert=None if payload else self.alert,
        )
        if rid and status == PENDING:
            self.to_send.append(rid)
        return rid


class Outbox:
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

    # ------------------------------------------------------------ enqueue

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
        aid, sig = alert.alert_id(), alert.signature()
        at = _naive(alert.occurred_at)
        with self.engine.begin() as c:
            existing = c.execute(
                select(deliveries.c.id, deliveries.c.status, deliveries.c.repeat_count).where(
                    deliveries.c.alert_id == aid, deliveries.c.route == route.name
                )
            ).all()
        if existing:  # the same occurrence again (a re-run callback): nothing new
            pend = [r.id for r in existing if r.status == PENDING]
            return Enqueued(
                aid,
                route.name,
                any(r.status == SUPPRESSED for r in existing),
                max(r.repeat_count for r in existing),
                pend,
            )
        status = QUIET if quiet else PENDING
        new = _Rows(self, alert, route.name, status)
        if alert.kind == "recovered":
            return self._enqueue_recovery(alert, route, kinds, new)
        if alert.kind == "retry":
            # Quiet: a reply in the thread of the task's open incident, if it has one; else only
            # recorded, and the final failure's message lists the earlier tries.
            parent = self._incident_slack_row(alert.dag_id, alert.task_id or "", route.name)
            if parent and threads and SLACK in kinds:
                new.add(SLACK, route.slack_channel or "", parent=parent)
            else:
                new.add(RECORD, "", status=RECORDED)
            return Enqueued(aid, route.name, False, 1, new.to_send)

        suppressed, count = self._window(
            sig, alert.kind, route.name, at, aid, window_s, alert.dag_id, alert.task_id or ""
        )
        self._touch_incident(alert, route.name, aid, at)
        if suppressed:
            if thread_replies and threads and SLACK in kinds and _milestone(count):
                new.add(SLACK_REPLY, route.slack_channel or "", count=count)
            else:
                new.add("count", "", count=count, status=SUPPRESSED)
            return Enqueued(aid, route.name, True, count, new.to_send)
        parent = None
        if storm and SLACK in kinds:
            parent = self._storm(route, at, storm, status, threads, new)
        for kind in kinds:
            target = route.slack_channel if kind == SLACK else ",".join(route.emails)
            if kind == SLACK and parent == -1:  # a storm without threads: counted, not posted
                new.add("count", "", count=count, status=SUPPRESSED)
                continue
            new.add(kind, target or "", count=count, parent=parent if kind == SLACK else None)
        if not kinds:  # nowhere to send it (a Slack-only route without Slack credentials): on record
            new.add(RECORD, "", count=count, status=RECORDED)
        return Enqueued(aid, route.name, False, count, new.to_send)

    def _enqueue_recovery(self, alert: Alert, route: Route, kinds: list[str], new: _Rows) -> Enqueued:
        """The next success after a failure: resolves the task's open incident on this route and
        answers in its thread (and by e-mail where the failure went by e-mail)."""
        now = _naive(alert.occurred_at)
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
        self, route: Route, at: datetime, storm: tuple[int, float], status: str, threads: bool, new: _Rows
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
                alert_id=_hash("storm", route.name, info["started_at"]),
                status=status,
            )
            with self.engine.begin() as c:
                c.execute(update(storms).where(storms.c.route == route.name).values(header_row_id=header))
        return header

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

    def _insert(
        self,
        aid: str,
        sig: str,
        route: str,
        kind: str,
        target: str,
        payload: str,
        count: int,
        status: str = PENDING,
        *,
        parent: int | None = None,
        alert: Alert | None = None,
    ) -> int | None:
        now = utcnow()
        ids = (
            {"dag_id": alert.dag_id, "task_id": alert.task_id, "run_id": alert.run_id, "alert_kind": alert.kind}
            if alert
            else {}
        )
        try:
            with self.engine.begin() as c:
                res = c.execute(
                    insert(deliveries).values(
                        alert_id=aid,
                        signature=sig,
                        route=route,
                        kind=kind,
                        target=target,
                        status=status,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        repeat_count=count,
                        payload=payload,
                        parent_row_id=parent,
                        **ids,
                    )
                )
                key = res.inserted_primary_key
                return int(key[0]) if key else None
        except IntegrityError:
            return None

    def ensure(
        self, alert_id: str, route: str, kind: str, target: str, *, signature: str, payload: str, count: int = 1
    ) -> tuple[int | None, bool]:
        """Insert-or-ignore a row (the e-mail fallback): (its id when it is pending, created now?)."""
        created = self._insert(alert_id, signature, route, kind, target, payload, count) is not None
        with self.engine.begin() as c:
            row = c.execute(
                select(deliveries.c.id, deliveries.c.status).where(
                    deliveries.c.alert_id == alert_id, deliveries.c.route == route, deliveries.c.kind == kind
                )
            ).one()
        return (row.id if row.status == PENDING else None), created

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

    # ------------------------------------------------------------ retention

    def prune(self, before: datetime, *, limit: int = 1000) -> dict[str, int]:
        """Delete what is older than `before` and finished: delivery rows that were sent, failed for
        good, suppressed, quiet or only recorded (never pending or sending ones, nor the first
        rows of a still-open incident, whose thread the recovery answers in), resolved incidents,
        and expired de-duplication windows and storm counters. At most `limit` rows of each table
        per call (redeliver() runs every few minutes: a backlog goes in bounded steps).
        The number deleted per table."""
        before = _naive(before)
        unfinished = (PENDING, SENDING)  # everything else is done: sent, failed, suppressed, quiet, recorded
        still_open = select(incidents.c.first_alert_id).where(incidents.c.resolved_at.is_(None))
        counts = {"deliveries": 0, "incidents": 0, "dedup": 0, "storms": 0}
        with self.engine.begin() as c:  # one short transaction: each step is bounded
            ids = (
                c.execute(
                    select(deliveries.c.id)
                    .where(
                        deliveries.c.status.not_in(unfinished),  # (not the status index: created_at's)
                        deliveries.c.created_at < before,
                        deliveries.c.sent_at.is_(None) | (deliveries.c.sent_at < before),
                        deliveries.c.alert_id.not_in(still_open),
                    )
                    .order_by(deliveries.c.created_at)  # the index: an empty range costs nothing
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            if ids:
                counts["deliveries"] = c.execute(delete(deliveries).where(deliveries.c.id.in_(ids))).rowcount
            ids = (
                c.execute(
                    select(incidents.c.id)
                    .where(incidents.c.resolved_at.is_not(None), incidents.c.resolved_at < before)
                    .order_by(incidents.c.resolved_at)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            if ids:
                counts["incidents"] = c.execute(delete(incidents).where(incidents.c.id.in_(ids))).rowcount
            keys = c.execute(
                select(dedup.c.signature, dedup.c.alert_kind, dedup.c.route)
                .where(dedup.c.last_seen < before)
                .limit(limit)
            ).all()
            if keys:
                key = tuple_(dedup.c.signature, dedup.c.alert_kind, dedup.c.route)
                counts["dedup"] = c.execute(delete(dedup).where(key.in_([tuple(k) for k in keys]))).rowcount
            routes = c.execute(select(storms.c.route).where(storms.c.last_seen < before).limit(limit)).scalars().all()
            if routes:
                counts["storms"] = c.execute(delete(storms).where(storms.c.route.in_(routes))).rowcount
        return counts

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
