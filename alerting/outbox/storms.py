"""Storms: past `threshold` top-level failures on a route within a few minutes, further failures
go into the thread of one "storm" message instead of the channel (or, without Slack threads, are
only counted)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from ..routing.route import Route
from .tables import SLACK_STORM, NewRows, key_hash, storms

COUNTED_ONLY = -1  # what `Storms.place` returns for a storm without threads: counted, not posted


class Storms:
    """The alert_storms table: one running count of top-level failures per route."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def place(
        self, route: Route, at: datetime, storm: tuple[int, float], status: str, threads: bool, new: NewRows
    ) -> int | None:
        """Counts a top-level failure on the route. None: post it in the channel as usual; past the
        threshold within the window, the row id of the storm message to post it under (the first
        time, that message is queued now), or COUNTED_ONLY without threads."""
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
            return COUNTED_ONLY
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
