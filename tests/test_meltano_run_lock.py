"""Two `meltano run`s of one extractor on one project wait for each other (orchestrator/runners/
meltano_run_lock.py): Meltano's run directory per plugin is shared by every run of it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.runners.meltano_run_lock import plugin_run_locks, run_dir, run_plugins


def test_the_lock_of_a_run_is_its_extractors():
    # the extractor alone: the sources of one warehouse load in parallel through one loader
    assert run_plugins(["run", "tap-crm", "target-duckdb"]) == ["tap-crm"]
    assert run_plugins(["run", "--state-id-suffix", "x", "--full-refresh", "tap-b", "target-y"]) == ["tap-b"]
    assert run_plugins(["state", "list"]) == [] and run_plugins([]) == []
    # no path or shell fragment becomes a lock file's name (Meltano refuses such a run itself)
    for bad in ("tap-shop; touch /tmp/x", "../../etc/passwd", "a/b", ".."):
        assert run_plugins(["run", bad, "target-y"]) == []


def test_the_run_directory_follows_meltanos_sys_dir(tmp_path):
    assert run_dir(tmp_path, {}) == tmp_path / ".meltano" / "run"
    assert run_dir(tmp_path, {"MELTANO_SYS_DIR_ROOT": "/elsewhere/sys"}) == Path("/elsewhere/sys/run")


@pytest.mark.subprocess
def test_a_second_run_of_a_plugin_waits_for_the_first(tmp_path):
    """Another process holds tap-x's lock for 2 s: this run of tap-x into target-y waits for it and
    says so; a run of tap-z into the same target does not wait."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
                from orchestrator.runners.meltano_run_lock import plugin_run_locks
                with plugin_run_locks(["run", "tap-x"], {str(tmp_path)!r}, {{}}, log=print):
                    print("held", flush=True)
                    time.sleep(2)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    lines: list[str] = []
    started = time.monotonic()
    with plugin_run_locks(["run", "tap-z", "target-y"], tmp_path, {}, log=lines.append):
        assert time.monotonic() - started < 1 and lines == []
    with plugin_run_locks(["run", "tap-x", "target-y"], tmp_path, {}, log=lines.append):
        waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert waited >= 1, waited
    assert lines[0] == "orchestrator: waiting for another `meltano run` of tap-x on this project to end"
    assert lines[1].startswith("orchestrator: tap-x free after ")
