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
from lanes import AIRFLOW_TIER, SERVERS_LANE, SERVERS_TIERS, deal_lanes
from tiers import (
    _GUARD_KEY,
    PURE,
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


def test_the_worker_groups_keep_servers_serial_airflow_in_lanes_and_a_module_together(request):
    """`make test`'s `--dist loadgroup` (tests/lanes.py): every test that reaches the database servers
    is in the servers lane; every other Airflow test in one of the lanes, a module's tests in one; the
    other non-pure tests of a module share a group (its module-scoped fixtures are built once); pure
    tests have none (any free worker); and the lanes come first."""
    items = request.session.items

    def group(item: pytest.Item) -> str | None:
        mark = item.get_closest_marker("xdist_group")
        return mark.args[0] if mark else None

    lanes = {group(i) for i in items if any(i.get_closest_marker(m) for m in (*SERVERS_TIERS, AIRFLOW_TIER))}
    assert {group(i) for i in items if any(i.get_closest_marker(m) for m in SERVERS_TIERS)} <= {SERVERS_LANE}
    assert all(group(i) is None for i in items if i.get_closest_marker(PURE))
    for item in items:
        if not item.get_closest_marker(PURE):
            assert group(item) in lanes | {item.path.name}, item.nodeid
    airflow_modules: dict[str, set[str | None]] = {}
    for item in items:
        if item.get_closest_marker(AIRFLOW_TIER) and not any(item.get_closest_marker(m) for m in SERVERS_TIERS):
            airflow_modules.setdefault(item.path.name, set()).add(group(item))
    assert all(len(g) == 1 for g in airflow_modules.values()), airflow_modules
    kinds = [0 if group(i) in lanes else 1 if group(i) else 2 for i in items]
    assert kinds == sorted(kinds), "lanes first, then the other groups, then the pure tests"


def test_airflow_modules_are_dealt_longest_first_into_the_least_loaded_lane():
    lane_of = deal_lanes({"srv_a.py": 300, "srv_b.py": 100}, {"a.py": 350, "b.py": 200, "c.py": 150, "d.py": 90}, 2)
    assert lane_of == {
        "srv_a.py": SERVERS_LANE,
        "srv_b.py": SERVERS_LANE,
        "a.py": "airflow-1",  # 0 < 400
        "b.py": "airflow-1",  # 350 < 400
        "c.py": SERVERS_LANE,  # 400 < 550
        "d.py": SERVERS_LANE,  # 550 = 550: the first lane named
    }
    assert set(deal_lanes({}, {"a.py": 1, "b.py": 2}, 1).values()) == {SERVERS_LANE}  # one lane: all serial
    # three lanes on three workers: the rest of the suite (450 s) counts on the last lane up front
    lane_of = deal_lanes({"srv.py": 300}, {"a.py": 350, "b.py": 200, "c.py": 150, "d.py": 90}, 3, rest=450)
    assert lane_of == {"srv.py": SERVERS_LANE, "a.py": "airflow-1", "b.py": SERVERS_LANE, "c.py": "airflow-1"} | {
        "d.py": "airflow-2"  # 450 (the rest) < 500 (srv, b) = 500 (a, c): the last lane gets only d
    }


@pytest.mark.subprocess
def test_real_workers_run_each_group_on_one_worker(tmp_path):
    """The groups above only help if pytest-xdist honours them: pytest 9.2 moved a node's id out of
    the attribute pytest-xdist 3.8 rewrites, and `--dist loadgroup` then spread every group over the
    workers, two Airflows at once, without a word. So: a real three-worker run, as `make test` runs,
    of this repository's tier rules on three Airflow-marked modules (two lanes: the servers lane and
    one more), one services-marked module, one Meltano-marked module and pure tests; each group's
    tests must all report from one worker, and the servers lane's module with its Airflow modules."""
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
    marks = {"af1": "airflow", "af2": "airflow", "af3": "airflow", "srv": "services", "mel": "meltano", "pure": None}
    for name, mark in marks.items():
        head = "import time\nimport pytest\n" + (f"pytestmark = pytest.mark.{mark}\n" if mark else "")
        (tmp_path / f"test_{name}.py").write_text(head + body)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "--no-loadscope-reorder", "-v"]
        + ["-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "TEST_AIRFLOW_LANES": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = re.findall(r"^\[(gw\d)\] .*PASSED (test_\w+)\.py::test_\d+(?:@([\w.-]+))?", done.stdout, re.M)
    assert len(ran) == 24, done.stdout[-3000:]
    by_group: dict[str, set[str]] = {}
    modules_of: dict[str, set[str]] = {}
    for worker, module, group in ran:
        if group:
            by_group.setdefault(group, set()).add(worker)
            modules_of.setdefault(group, set()).add(module)
    assert all(len(w) == 1 for w in by_group.values()), by_group  # a group on one worker
    # no module in the test's directory has a recorded duration: each counts the same, so the servers
    # lane (test_srv) gets the second Airflow module and the other lane the first and third
    assert modules_of[SERVERS_LANE] == {"test_srv", "test_af2"}, modules_of
    assert modules_of["airflow-1"] == {"test_af1", "test_af3"}, modules_of
    assert modules_of["test_mel.py"] == {"test_mel"}, modules_of
