"""A Meltano run refused because a dead process still holds its state ID.

Meltano refuses `meltano run` while another job of the same state ID is marked running
("Another '<id>' pipeline is already running ... Wait until <T> when the job will be automatically
cancelled if stale"). A job whose process was killed (its Celery worker SIGKILLed, the node lost, the
OOM killer) stays marked running until Meltano finds it stale: no heartbeat for 5 minutes
(`meltano.core.job.job.HEARTBEAT_VALID_MINUTES`; a live job heartbeats every second). An Airflow retry
that comes sooner (a `retry_delay` under 5 minutes) would be refused and burn a try, and the last try
would fail the DAG though nothing is wrong any more.

So a retry whose run is refused that way waits until Meltano's own stale time and runs once more,
when the holder's last heartbeat is old enough that it cannot be alive. Nothing is forced: Meltano
fails the stale job itself and a holder that is still heartbeating (an orphaned `meltano` process of
the earlier try, someone's run by hand) is never overridden: the retry fails at once, naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Meltano's message (meltano/core/block/extract_load.py, `run_with_job`).
_HELD = re.compile(
    r"Another '(?P<job>[^']+)' pipeline is already running which started at .*?"
    r"Wait until (?P<until>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:?\d\d|Z)?) when the job"
)
STALE_AFTER = timedelta(minutes=5)  # meltano.core.job.job.HEARTBEAT_VALID_MINUTES
ALIVE_WITHIN = timedelta(seconds=30)  # a holder heard from this recently is taken to be alive
SETTLE = timedelta(seconds=3)  # past Meltano's stale time, for the clocks of two machines


@dataclass(frozen=True)
class HeldJob:
    """The job that holds a state ID, as Meltano's refusal describes it."""

    state_id: str
    stale_at: datetime  # its last heartbeat + 5 minutes

    @property
    def last_heartbeat(self) -> datetime:
        return self.stale_at - STALE_AFTER

    def alive(self, now: datetime) -> bool:
        return now - self.last_heartbeat < ALIVE_WITHIN

    def wait_s(self, now: datetime) -> float:
        """Seconds until Meltano will fail the holder as stale (and a run may start), at most Meltano's
        5 minutes and the settling time (the holder's clock may run ahead of this machine's)."""
        wait = (self.stale_at + SETTLE - now).total_seconds()
        return min(max(0.0, wait), (STALE_AFTER + SETTLE).total_seconds())

    def describe(self, now: datetime) -> str:
        age = (now - self.last_heartbeat).total_seconds()
        return f"Meltano job {self.state_id!r} is marked running, its last heartbeat {age:.0f}s ago"


def held_job(lines: list[str] | tuple[str, ...]) -> HeldJob | None:
    """The holder named by a refused run's log, or None when the run failed for another reason."""
    for line in reversed(lines):
        match = _HELD.search(line)
        if match:
            until = datetime.fromisoformat(match["until"].replace("Z", "+00:00"))
            return HeldJob(match["job"], until if until.tzinfo else until.replace(tzinfo=UTC))
    return None


def now_utc() -> datetime:
    return datetime.now(UTC)
