"""A retry whose Meltano run is refused because the earlier try's job (its worker killed) still holds
the state ID: it waits for Meltano's own stale time and runs once more; a live holder is never
overridden. The Celery test kills a real worker mid-load (test_production_celery.py)."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.runners.meltano import MeltanoError, run_meltano
from orchestrator.runners.meltano_held import ALIVE_WITHIN, STALE_AFTER, held_job

STATE_ID = "prod:tap-marketing-postgres-to-target-postgres"


def _refusal(stale_at: datetime, started: str = "2026-12-07 08:58:51.904785+00:00") -> str:
    """Meltano 4.4's line, as its console prints it (meltano/core/block/extract_load.py)."""
    until = stale_at.isoformat(sep=" ")
    return (
        f"2026-12-07T09:00:59.085058Z [error    ] meltano      Another '{STATE_ID}' pipeline is already "
        f"running which started at {started}. Wait until {until} when the job will be automatically "
        "cancelled if stale, or ignore this check using the '--force' option."
    )


def test_the_refusal_names_the_holder_and_its_stale_time():
    stale_at = datetime(2026, 12, 7, 9, 4, 16, 920900, tzinfo=UTC)
    held = held_job(["Running job with name ...", _refusal(stale_at), "Block run completed"])
    assert held is not None and held.state_id == STATE_ID and held.stale_at == stale_at
    assert held.last_heartbeat == datetime(2026, 12, 7, 8, 59, 16, 920900, tzinfo=UTC)
    assert held_job(["Extractor failed", "Block run completed"]) is None


def test_a_holder_heard_from_within_seconds_is_alive_and_one_silent_for_a_minute_is_not():
    now = datetime(2026, 12, 7, 9, 1, tzinfo=UTC)
    live = held_job([_refusal(now + STALE_AFTER - timedelta(seconds=2))])
    dead = held_job([_refusal(now + STALE_AFTER - timedelta(seconds=70))])
    assert live and live.alive(now) and dead and not dead.alive(now)
    assert dead.wait_s(now) == pytest.approx(230 + 3)


@given(st.integers(min_value=-3600, max_value=3600))
def test_the_wait_never_exceeds_meltanos_five_minutes(offset_s):
    """Whatever the holder's clock says, the retry waits at most Meltano's stale period (+3 s)."""
    now = datetime(2026, 12, 7, 9, 1, tzinfo=UTC)
    held = held_job([_refusal(now + timedelta(seconds=offset_s))])
    assert held is not None
    assert 0 <= held.wait_s(now) <= STALE_AFTER.total_seconds() + 3
    assert held.alive(now) == (now - held.last_heartbeat < ALIVE_WITHIN)


def _fake_meltano(tmp_path: Path, heartbeat_age_s: float) -> tuple[Path, Path]:
    """A `meltano` that refuses its first run as Meltano does (the holder's last heartbeat
    `heartbeat_age_s` ago) and succeeds after; it counts its runs in a file."""
    stale_at = datetime.now(UTC) - timedelta(seconds=heartbeat_age_s) + STALE_AFTER
    runs = tmp_path / "runs"
    script = tmp_path / "meltano"
    script.write_text(
        "#!/bin/sh\n"
        f'echo run >> "{runs}"\n'
        f'if [ "$(wc -l < "{runs}")" -eq 1 ]; then echo "{_refusal(stale_at)}"; exit 1; fi\n'
        "echo 'Block run completed'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, runs


def _run(script: Path, tmp_path: Path, retry: bool, log: list[str]):
    return run_meltano(
        ["run", "tap-marketing-postgres", "target-postgres"],
        environment="prod",
        env=dict(os.environ),
        project_root=tmp_path,
        executable=str(script),
        log=log.append,
        wait_for_dead_holder=retry,
    )


@pytest.mark.subprocess
def test_a_retry_waits_for_meltano_to_fail_a_dead_holder_then_runs(tmp_path):
    script, runs = _fake_meltano(tmp_path, heartbeat_age_s=STALE_AFTER.total_seconds() - 2)  # stale in 2 s
    log: list[str] = []
    started = time.monotonic()
    result = _run(script, tmp_path, retry=True, log=log)
    waited = time.monotonic() - started
    assert runs.read_text().count("run") == 2 and "Block run completed" in result.tail
    assert 2 + 3 - 1 <= waited < 60  # Meltano's stale time and the settling margin, no more
    [note] = [line for line in log if line.startswith("orchestrator:")]
    assert f"Meltano job '{STATE_ID}' is marked running, its last heartbeat 298s ago" in note
    assert "waiting 5s, then running again (not forced" in note


@pytest.mark.subprocess
def test_a_live_holder_or_a_first_try_fails_at_once(tmp_path):
    # the holder heartbeated 5 s ago: alive (an orphaned meltano of the earlier try, a run by hand)
    script, runs = _fake_meltano(tmp_path, heartbeat_age_s=5)
    with pytest.raises(MeltanoError, match="pipeline is already running"):
        _run(script, tmp_path, retry=True, log=[])
    assert runs.read_text().count("run") == 1
    # a first try never waits, even for a dead holder: Airflow has not found any earlier try dead
    (tmp_path / "first").mkdir()
    script, runs = _fake_meltano(tmp_path / "first", heartbeat_age_s=280)
    with pytest.raises(MeltanoError, match="pipeline is already running"):
        _run(script, tmp_path, retry=False, log=[])
    assert runs.read_text().count("run") == 1
