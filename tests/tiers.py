"""The test tiers and the guard that keeps the pure tier pure.

A test with none of the TIER_MARKERS is *pure*: it gets the `pure` marker at collection (so
`pytest -m pure`, `make test-fast`, selects exactly these), and while its fixtures are set up and
while it runs, starting a process or connecting a socket to anything not listening in this very
process fails it, even when the code under test catches the error. Mark the test (or its module,
`pytestmark = pytest.mark.subprocess`) with the tier it needs instead.

Why a guard rather than a convention: an unmarked test that quietly starts dbt or reaches
PostgreSQL makes `make test-fast` slow, or red on a plain venv install, and nobody notices until
a contributor does.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lanes
import pytest

# Each tier marker says what the test needs beyond a plain `pip install -e .[test]`.
TIER_MARKERS: dict[str, str] = {
    "airflow": "starts a real local Airflow (scheduler, dag-processor, api-server, triggerer)",
    "meltano": "runs real Meltano plugins (needs `make setup`; slow install on first run)",
    "dbt": "runs real dbt (a subprocess or in-process dbt invocation; needs `make setup`)",
    "subprocess": "starts another process (the CLI, git, pip, a script) but none of the above",
    "production": "needs the local PostgreSQL and MariaDB services (scripts/services.sh start)",
    "services": "talks to a service over a socket (a database, Redis, or a server in another process)",
    "setup": "reads what `make setup` builds (the demo's dbt manifest, its Meltano plugins)",
}
# A test that asks for one of these fixtures (tests/conftest.py) needs `make setup`: it is in the
# `setup` tier without saying so, since the fixture already does.
SETUP_FIXTURES = frozenset({"installed", "meltano_installed", "embedded"})
PURE = "pure"


class TierViolation(Exception):
    """Raised in a pure test that starts a process or connects out. Not an OSError, so few handlers
    catch it; one that does (`except Exception`) cannot hide it: the report fails the test anyway.
    (A BaseException would escape pytest's fixture bookkeeping and break the next test's setup.)"""


def is_pure(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in TIER_MARKERS)


def register(config: pytest.Config) -> None:
    for name, why in TIER_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {why}")
    config.addinivalue_line(
        "markers", f"{PURE}: set on every test with none of {', '.join(TIER_MARKERS)} (make test-fast)"
    )


def mark_tiers(items: list[pytest.Item]) -> None:
    for item in items:
        if SETUP_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("setup"):
            item.add_marker("setup")
        if is_pure(item):
            item.add_marker(PURE)
    group_for_workers(items)


def group_for_workers(items: list[pytest.Item]) -> None:
    """The xdist groups and the order of `make test` (tests/lanes.py)."""
    lanes.group_for_workers(items, is_pure)


# Ports bound in this process (the in-process fakes of tests/alerting_fakes.py): connecting to
# them is not reaching a service. Recorded for the whole session, since a module-scoped fake may
# have been started by an earlier test.
_bound_ports: set[int] = set()
_original_bind = socket.socket.bind


def _recording_bind(self: socket.socket, address: Any) -> None:
    _original_bind(self, address)
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _bound_ports.add(self.getsockname()[1])


socket.socket.bind = _recording_bind  # type: ignore[method-assign]


class _Guard:
    """While it is the active guard, every process start and every outgoing TCP connection to a port
    not bound in this process is recorded and refused."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.violations: list[str] = []
        self._lock = threading.Lock()

    def refuse(self, what: str) -> TierViolation:
        message = (
            f"{self.nodeid} is unmarked (pure tier) but {what}; mark it with the tier it needs "
            f"({', '.join(TIER_MARKERS)}), see tests/tiers.py"
        )
        with self._lock:
            self.violations.append(message)
        return TierViolation(message)


# The guard of the pure test now in setup or call, else None. The checks below are installed once
# for the session and consult it, rather than patched in and out per test: a test's own
# monkeypatch of subprocess or socket then nests cleanly whichever phase it spans.
_active: _Guard | None = None


@contextmanager
def activated(guard: _Guard) -> Iterator[_Guard]:
    global _active
    previous, _active = _active, guard
    try:
        yield guard
    finally:
        _active = previous


_original_popen_init = subprocess.Popen.__init__


def _popen_init(self: subprocess.Popen, args: Any, *a: Any, **kw: Any) -> None:
    if _active is not None:
        raise _active.refuse(f"starts a process: {args!r}"[:300])
    _original_popen_init(self, args, *a, **kw)


def _checked_os_call(name: str) -> Callable[..., Any]:
    original = getattr(os, name)

    @functools.wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if _active is not None:
            raise _active.refuse(f"calls os.{name}{args!r}"[:300])
        return original(*args, **kwargs)

    return checked


def _reaches_out(sock: socket.socket, address: Any) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False  # socketpairs and Unix sockets: asyncio's self-pipe, not a service
    return not (isinstance(address, tuple) and len(address) >= 2 and address[1] in _bound_ports)


_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def _connect(self: socket.socket, address: Any) -> None:
    if _active is not None and _reaches_out(self, address):
        raise _active.refuse(f"connects a socket to {address!r}")
    _original_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    if _active is not None and _reaches_out(self, address):
        raise _active.refuse(f"connects a socket to {address!r}")
    return _original_connect_ex(self, address)


subprocess.Popen.__init__ = _popen_init  # type: ignore[method-assign]
for _name in ("system", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve"):
    if hasattr(os, _name):
        setattr(os, _name, _checked_os_call(_name))
socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]


_GUARD_KEY = pytest.StashKey[_Guard]()


@contextmanager
def _guarded(item: pytest.Item) -> Iterator[None]:
    if not is_pure(item):
        yield
        return
    with activated(item.stash.setdefault(_GUARD_KEY, _Guard(item.nodeid))):
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    guard = item.stash.get(_GUARD_KEY, None)
    if guard is not None and guard.violations and call.when in ("setup", "call") and report.outcome != "failed":
        # The code under test caught the refusal (or a skip hid it): the test still fails.
        report.outcome = "failed"
        report.longrepr = "\n".join(guard.violations)
    return report
