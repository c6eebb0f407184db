"""Outbox retention: `prune(before)`, which `Notifier.redeliver()` runs with `retention_days`
from the routing file, a bounded batch per call."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.engine import Engine

from .tables import PENDING, SENDING, dedup, deliveries, incidents, naive, storms


class Retention:
    """Deletes what the outbox no longer needs, in bounded batches."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def prune(self, before: datetime, *, limit: int = 1000) -> dict[str, int]:
        """Delete what is older than `before` and finished: delivery rows that were sent, failed for
        good, suppressed, quiet or only recorded (never pending or sending ones, nor the first
        rows of a still-open incident, whose thread the recovery answers in), resolved incidents,
        and expired de-duplication windows and storm counters. At most `limit` rows of each table
        per call (redeliver() runs every few minutes: a backlog goes in bounded steps).
        The number deleted per table."""
        before = naive(before)
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
