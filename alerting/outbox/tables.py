"""The outbox's tables and the one place rows are written: `insert_row`, and `NewRows`, the
rows one `enqueue()` inserts. Statuses and delivery kinds are the values of `status` / `kind`.

alert_deliveries: one row per (alert occurrence, route, channel kind); the unique key
(alert_id, route, kind) makes enqueueing idempotent. alert_incidents: one per (DAG, task,
route) failure, open until the next success. alert_dedup: the de-duplication windows.
alert_storms: per route, the burst of failures being grouped in one thread.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..events import Alert

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
NOTICE_KINDS = ("rows_mismatch",)  # no incident: nothing to recover from

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


def key_hash(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def naive(dt: datetime) -> datetime:
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


def insert_row(
    engine: Engine,
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
    """Insert one delivery row; its id, or None when the (alert, route, kind) row exists."""
    now = utcnow()
    ids = (
        {"dag_id": alert.dag_id, "task_id": alert.task_id, "run_id": alert.run_id, "alert_kind": alert.kind}
        if alert
        else {}
    )
    try:
        with engine.begin() as c:
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


class NewRows:
    """The rows one enqueue() inserts, and which of them to send now."""

    def __init__(self, engine: Engine, alert: Alert, route: str, status: str):
        self.engine, self.alert, self.route, self.status = engine, alert, route, status
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
        rid = insert_row(
            self.engine,
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


def select_rows(engine: Engine, table: Table, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of `table` whose columns equal `filters`, in id order."""
    q = select(table).order_by(table.c.id)
    for k, v in filters.items():
        q = q.where(table.c[k] == v)
    with engine.begin() as c:
        return [dict(r) for r in c.execute(q).mappings()]
