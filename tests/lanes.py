"""How `make test` spreads the suite over pytest-xdist workers (`--dist loadgroup`, one group runs on
one worker, in order, and `--no-loadscope-reorder`, groups start in the order of the items).

- The tests that reach the database servers (markers `production`, `services`) are one group, the
  *servers lane*, run one at a time: test_byo_airflow checks that the servers' databases and users
  are as it found them, which another test creating its database at the same time would break.
- The modules that start a local Airflow (marker `airflow`) are dealt into AIRFLOW_LANES lanes (the
  servers lane is one of them), the longest module first into the lane with the least work so far,
  by each module's duration in a recorded run (`durations.json`). So at most that many Airflows run
  at once: more, on 2 cores, would slow each past the product's own waits.
- Each other module with a non-pure test is a group of its own, so a module-scoped fixture (a
  Meltano load, a dbt parse) is built once. Pure tests go to whichever worker is free.

The items are ordered lanes first, then the other groups longest first, then the pure tests: every
lane starts at once (the lanes are the suite's critical path; a lane that started last would decide
its wall time) and the rest fills the gaps: a worker without a lane if there is one, else each
worker as its lane drains (the last lane, dealt the rest's duration up front, drains first).

`python tests/lanes.py record JUNIT_XML` rewrites durations.json from a run's JUnit report (a
module's tests' total, setup included). A module missing from it counts DEFAULT_SECONDS.
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

SERVERS_TIERS = ("production", "services")
AIRFLOW_TIER = "airflow"
SERVERS_LANE = "servers"
# Three lanes on `make test`'s three workers: at most three Airflows at once on 2 cores, most of their
# time waiting on a scheduler loop or a task; the rest of the suite fills each worker's end.
AIRFLOW_LANES = int(os.environ.get("TEST_AIRFLOW_LANES", "3"))
DURATIONS = Path(__file__).with_name("durations.json")
DEFAULT_SECONDS = 60.0


def load_durations(path: Path = DURATIONS) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {}


def _has(item: pytest.Item, markers: tuple[str, ...]) -> bool:
    return any(item.get_closest_marker(m) for m in markers)


def deal_lanes(servers: dict[str, float], airflow: dict[str, float], lanes: int, rest: float = 0.0) -> dict[str, str]:
    """Module name -> lane: the servers modules in the servers lane; each Airflow module, longest
    first, into the lane with the least work so far (ties to the lane named first). `rest`: the work
    outside the lanes that the lanes' own workers will take (every worker has a lane), counted on the
    last lane, which then gets the fewest Airflow modules and drains first."""
    names = [SERVERS_LANE] + [f"airflow-{i}" for i in range(1, max(1, lanes))]
    load = dict.fromkeys(names, 0.0)
    lane_of = dict.fromkeys(servers, SERVERS_LANE)
    load[SERVERS_LANE] = sum(servers.values())
    load[names[-1]] += rest
    for module, seconds in sorted(airflow.items(), key=lambda kv: (-kv[1], kv[0])):
        lane = min(names, key=lambda n: (load[n], names.index(n)))
        lane_of[module] = lane
        load[lane] += seconds
    return lane_of


def group_for_workers(items: list[pytest.Item], is_pure, durations: dict[str, float] | None = None) -> None:
    """Set each non-pure item's xdist_group and order the items (see the module's docstring)."""
    durations = load_durations() if durations is None else durations

    def seconds(module: str) -> float:
        return durations.get(module, DEFAULT_SECONDS)

    servers = {i.path.name for i in items if _has(i, SERVERS_TIERS)}
    airflow = {i.path.name for i in items if _has(i, (AIRFLOW_TIER,))} - servers
    others = {i.path.name for i in items} - servers - airflow
    # pytest-xdist sets the worker count in each worker (where the groups are set); 0 without -n
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    rest = sum(seconds(m) for m in others) if workers and workers <= AIRFLOW_LANES else 0.0
    lane_of = deal_lanes({m: seconds(m) for m in servers}, {m: seconds(m) for m in airflow}, AIRFLOW_LANES, rest)
    group: dict[int, str] = {}
    for item in items:
        if is_pure(item):
            continue
        mark = item.get_closest_marker("xdist_group")
        if mark is None:
            name = SERVERS_LANE if _has(item, SERVERS_TIERS) else lane_of.get(item.path.name, item.path.name)
            item.add_marker(pytest.mark.xdist_group(name))
        else:
            name = mark.args[0] if mark.args else mark.kwargs.get("name", "")
        group[id(item)] = name
    lanes = set(lane_of.values())
    work: dict[str, float] = defaultdict(float)
    for item in items:
        if id(item) in group:
            work[group[id(item)]] = max(work[group[id(item)]], seconds(item.path.name))

    def rank(item: pytest.Item) -> tuple[int, float]:
        name = group.get(id(item))
        if name is None:
            return (2, 0.0)  # pure: last, anywhere
        return (0 if name in lanes else 1, -work[name])

    items.sort(key=rank)  # stable: a module's items stay together and in their order


def record(junit_xml: Path, out: Path = DURATIONS) -> dict[str, float]:
    """Each test module's total time (setup, call and teardown) in a JUnit report, to `out`."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit_xml).iter("testcase"):
        module = case.get("classname", "").split(".")
        name = next((p for p in module if p.startswith("test_")), None)
        if name:
            totals[f"{name}.py"] += float(case.get("time") or 0)
    data = {k: round(v, 1) for k, v in sorted(totals.items())}
    out.write_text(json.dumps(data, indent=1) + "\n")
    return data


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "record":
        sys.exit("usage: python tests/lanes.py record JUNIT_XML")
    print(json.dumps(record(Path(sys.argv[2])), indent=1))
