"""The pure tier stays pure (tests/tiers.py): an unmarked test that starts a process or connects to a
service is refused loudly, even when the code under test swallows the error; a server in the test's
own process (the Slack and SMTP fakes) stays reachable; marked tests are left alone."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from tiers import (
    _GUARD_KEY,
    PURE,
    SERIAL_GROUP,
    SERIAL_TIERS,
    TIER_MARKERS,
    TierViolation,
    _bound_ports,
    _Guard,
    activated,
)


def installed():
    """A guard of its own, active inside the test's body in place of the one around this test."""
    return activated(_Guard("tests/test_x.py::test_y"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "start",
    [
        lambda: subprocess.run(["true"], check=False),
        lambda: subprocess.check_output(["echo", "hi"]),
        lambda: subprocess.Popen(["sleep", "0"]),
        lambda: os.system("true"),
    ],
    ids=["run", "check_output", "Popen", "os.system"],
)
def test_starting_a_process_is_refused_naming_the_test_and_the_fix(start):
    with installed() as guard, pytest.raises(TierViolation) as refused:
        start()
    message = str(refused.value)
    assert message.startswith("tests/test_x.py::test_y is unmarked (pure tier) but ")
    assert all(name in message for name in TIER_MARKERS) and "tests/tiers.py" in message
    assert guard.violations == [message]


def test_connecting_to_a_service_is_refused():
    port = 5432  # PostgreSQL's; whether or not one listens, a pure test must not try
    free = _free_port()
    _bound_ports.discard(free)  # bound a moment ago by this process, closed since: "a service elsewhere"
    with installed():
        with pytest.raises(TierViolation, match=r"connects a socket to \('127\.0\.0\.1', 5432\)"):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        with socket.socket() as s, pytest.raises(TierViolation):
            s.connect_ex(("127.0.0.1", free))


def test_a_refusal_the_code_under_test_swallows_is_still_recorded():
    with installed() as guard, contextlib.suppress(Exception):  # what careless code under test does
        subprocess.run(["true"], check=False)
    assert len(guard.violations) == 1  # pytest_runtest_makereport fails the test from this record


def test_a_server_in_this_process_stays_reachable():
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with installed() as guard:
            with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert conn.recv(64).startswith(b"HTTP/1.0 204")
            a, b = socket.socketpair()  # and a socketpair (asyncio's self-pipe) is no service either
            a.close(), b.close()
    finally:
        server.shutdown()
        server.server_close()
    assert guard.violations == []


def test_this_unmarked_test_runs_under_the_guard(request):
    assert request.node.get_closest_marker("pure") is not None
    with pytest.raises(TierViolation):
        subprocess.run(["true"], check=False)
    request.node.stash[_GUARD_KEY].violations.clear()  # refused as it should be: not a failure here


@pytest.mark.subprocess
def test_a_marked_test_may_start_a_process(request):
    assert request.node.get_closest_marker("pure") is None
    assert subprocess.run(["true"], check=False).returncode == 0


def test_the_worker_groups_keep_airflow_serial_and_a_module_together(request):
    """`make test`'s `--dist loadgroup`: every test that starts Airflow or reaches the database servers
    is in one group (one at a time, on one worker); the other non-pure tests of a module share a group
    (its module-scoped fixtures are built once); pure tests have none (any free worker)."""
    items = request.session.items

    def group(item: pytest.Item) -> str | None:
        mark = item.get_closest_marker("xdist_group")
        return mark.args[0] if mark else None

    serial = [i for i in items if any(i.get_closest_marker(m) for m in SERIAL_TIERS)]
    assert {group(i) for i in serial} <= {SERIAL_GROUP}
    assert all(group(i) is None for i in items if i.get_closest_marker(PURE))
    for item in items:
        if not item.get_closest_marker(PURE):
            assert group(item) in (SERIAL_GROUP, item.path.name), item.nodeid


@pytest.mark.subprocess
def test_two_real_workers_run_each_group_on_one_worker(tmp_path):
    """The groups above only help if pytest-xdist honours them: pytest 9.2 moved a node's id out of
    the attribute pytest-xdist 3.8 rewrites, and `--dist loadgroup` then spread every group over the
    workers, two Airflows at once, without a word. So: a real two-worker run of this repository's
    tier rules on two Airflow-marked modules, one Meltano-marked module and pure tests; each group's
    tests must all report from one worker."""
    tests_dir = Path(__file__).resolve().parent
    (tmp_path / "conftest.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(tests_dir)!r})\n"
        "import pytest\n"
        "from tiers import mark_tiers, register\n"
        "def pytest_configure(config):\n    register(config)\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_collection_modifyitems(items):\n    mark_tiers(items)\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    body = "".join(f"def test_{i}():\n    time.sleep(0.2)\n" for i in range(4))
    for name, mark in (("af1", "airflow"), ("af2", "airflow"), ("mel", "meltano"), ("pure", None)):
        head = "import time\nimport pytest\n" + (f"pytestmark = pytest.mark.{mark}\n" if mark else "")
        (tmp_path / f"test_{name}.py").write_text(head + body)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = re.findall(r"^\[(gw\d)\] .*PASSED (test_\w+)\.py::test_\d", done.stdout, re.M)
    workers: dict[str, set[str]] = {}
    for worker, module in ran:
        workers.setdefault(module, set()).add(worker)
    assert len(ran) == 16, done.stdout[-3000:]
    assert len(workers["test_af1"] | workers["test_af2"]) == 1, workers  # Airflow: one at a time
    assert len(workers["test_mel"]) == 1, workers  # a module's group stays together
