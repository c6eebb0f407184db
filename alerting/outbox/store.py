"""`Outbox`: the one object callers hold. It opens the database and hands each call to the
collaborator that owns it: `Deliveries` (a row's claim, completion and queries), `Enqueuer`
(recording an alert for a route), `Incidents`, `Storms` and `Retention`."""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from ..events import Alert
from ..routing.route import Route
from .deliveries import Deliveries
from .enqueue import Enqueuer
from .incidents import Incidents
from .retention import Retention
from .storms import Storms
from .tables import Enqueued, default_url, deliveries, metadata


def open_engine(url: str | Engine | None) -> Engine:
    """An engine for any SQLAlchemy URL (default: ALERTING_OUTBOX_URL, else a SQLite file)."""
    if isinstance(url, Engine):
        return url
    url = url or default_url()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
    return create_engine(url, **kwargs)


class Outbox:
    def __init__(self, url: str | Engine | None = None, *, lease_s: float = 600, max_attempts: int = 20):
        self.engine = open_engine(url)
        metadata.create_all(self.engine)
        for index in deliveries.indexes:  # create_all makes only the indexes of new tables
            # a concurrent process may make it first; without it pruning is only slower
            with contextlib.suppress(Exception):
                index.create(self.engine, checkfirst=True)
        self.deliveries = Deliveries(self.engine, lease_s=lease_s, max_attempts=max_attempts)
        self.incident_log = Incidents(self.engine)
        self.enqueuer = Enqueuer(self.engine, self.incident_log, Storms(self.engine))
        self.retention = Retention(self.engine)

    def __repr__(self) -> str:
        return f"Outbox({self.engine.url.render_as_string(hide_password=True)!r})"

    # ------------------------------------------------------------ recording (Enqueuer)

    def enqueue(self, alert: Alert, route: Route, kinds: list[str], **options: Any) -> Enqueued:
        """Record one alert for one route; the ids of the rows to send now (see `Enqueuer.enqueue`)."""
        return self.enqueuer.enqueue(alert, route, kinds, **options)

    # ------------------------------------------------------------ a row's life (Deliveries)

    def claim(self, row_id: int, now: datetime | None = None, *, force: bool = False) -> dict[str, Any] | None:
        return self.deliveries.claim(row_id, now, force=force)

    def mark_sent(self, row_id: int, **sent: Any) -> None:
        self.deliveries.mark_sent(row_id, **sent)

    def mark_retry(self, row_id: int, error: str, **options: Any) -> str:
        return self.deliveries.mark_retry(row_id, error, **options)

    def release(self, row_id: int) -> None:
        self.deliveries.release(row_id)

    def ensure(self, alert_id: str, route: str, kind: str, target: str, **row: Any) -> tuple[int | None, bool]:
        return self.deliveries.ensure(alert_id, route, kind, target, **row)

    def due(self, now: datetime | None = None, limit: int = 100, *, include_future: bool = False) -> list[int]:
        return self.deliveries.due(now, limit, include_future=include_future)

    def row(self, row_id: int) -> dict[str, Any] | None:
        return self.deliveries.row(row_id)

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        return self.deliveries.rows(**filters)

    def parent_ts(self, signature: str, route: str, kind: str) -> tuple[str | None, str | None]:
        return self.deliveries.parent_ts(signature, route, kind)

    def count(self, signature: str, route: str, kind: str = "task_failed") -> int:
        return self.deliveries.count(signature, route, kind)

    def history(self, dag_id: str, task_id: str | None, run_id: str | None) -> list[dict[str, Any]]:
        return self.deliveries.history(dag_id, task_id, run_id)

    # ------------------------------------------------------------ incidents

    def incidents(self, **filters: Any) -> list[dict[str, Any]]:
        return self.incident_log.rows(**filters)

    def open_incident_routes(self, dag_id: str, task_id: str | None) -> list[str]:
        return self.incident_log.open_routes(dag_id, task_id)

    def open_failures(self, dag_id: str) -> list[dict[str, Any]]:
        return self.incident_log.open_failures(dag_id)

    # ------------------------------------------------------------ retention

    def prune(self, before: datetime, *, limit: int = 1000) -> dict[str, int]:
        return self.retention.prune(before, limit=limit)
