"""The bike-share fixture project (tests/fixtures/bikeshare) works with the real tools.

A private copy (tests/fixture_project.py) runs two days: `meltano run` of each extractor into a
DuckDB file, `dbt deps` + `dbt build` with the outside profiles folder and the custom target;
then the next day's exports, incremental runs and a second build. Counts are exact and must
equal the README's and the helper's constants. Nothing is written into the repository.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import duckdb
import pytest
from fixture_project import (
    DAY2_ROWS_WRITTEN,
    DBT_PROJECT,
    DBT_ROWS,
    EXTRACTOR_SCHEMA,
    EXTRACTORS,
    FIXTURE_ROOT,
    INSTALL_STAMP,
    LOADER,
    MELTANO_ENVIRONMENT,
    NODE_TAGS,
    ORCHESTRATION_TAGS,
    RAW_ROWS,
    WAREHOUSE_VAR,
    copy_fixture,
    datagen,
)

pytestmark = pytest.mark.meltano
README = (FIXTURE_ROOT / "README.md").read_text()


def counts(db: Path, relations) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {r: conn.execute(f"select count(*) from {r}").fetchone()[0] for r in relations}


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """Day 1: load + deps + build; day 2: append, load, build. Keep what each step saw."""
    fx = copy_fixture(tmp_path_factory.mktemp("fixture"))  # installs the plugins if the stamp is stale
    seen: dict = {"installed": _installation_times(), "meltano_output": []}

    def load() -> None:
        for extractor in EXTRACTORS:
            proc = fx.meltano("run", extractor, LOADER)
            seen["meltano_output"].append(proc.stdout + proc.stderr)

    load()
    seen["raw1"] = counts(fx.warehouse, RAW_ROWS[1])
    fx.dbt("deps")
    fx.dbt("build", "--target-path", str(fx.root / "target-day1"))
    seen["dbt1"] = counts(fx.warehouse, DBT_ROWS[1])
    seen["run_results1"] = json.loads((fx.root / "target-day1" / "run_results.json").read_text())
    seen["loaded_before_day2"] = {
        t: query(fx.warehouse, f"select max(_sdc_batched_at) from {t}")[0][0] for t in RAW_ROWS[1]
    }
    seen["day2"] = fx.append_day()
    load()
    seen["raw2"] = counts(fx.warehouse, RAW_ROWS[2])
    seen["written2"] = {
        table: query(fx.warehouse, f"select count(*) from {table} where _sdc_batched_at > '{before}'")[0][0]
        for table, before in seen["loaded_before_day2"].items()
    }
    fx.dbt("build", "--target-path", str(fx.root / "target-day2"))
    seen["dbt2"] = counts(fx.warehouse, DBT_ROWS[2])
    return fx, seen


def _installation_times() -> dict[str, float]:
    sys_dir = INSTALL_STAMP.parent
    return {str(p): p.stat().st_mtime for p in [INSTALL_STAMP, *sys_dir.glob("*/*/venv/.meltano_plugin_fingerprint")]}


def test_plugins_are_reused_not_reinstalled(two_days):
    """The copy runs the virtualenvs installed once per machine: Meltano's auto-install finds them current."""
    fx, seen = two_days
    assert (fx.meltano_dir / ".meltano" / "loaders").is_symlink()
    assert len(seen["installed"]) == 3  # the stamp, the tap's and the loader's virtualenvs
    assert _installation_times() == seen["installed"]
    for output in seen["meltano_output"]:
        assert "Installing" not in output, output[-2000:]


def test_day1_loads_every_row_of_every_stream(two_days):
    _, seen = two_days
    assert seen["raw1"] == RAW_ROWS[1]


def test_all_string_stream_is_loaded_row_for_row(two_days):
    """inspections: every column a string, first row included, values exact (commas and quotes too)."""
    fx, _ = two_days
    with (fx.data_dir / "fleet" / "inspections.csv").open(newline="") as fh:
        expected = sorted(tuple(row.values()) for row in csv.DictReader(fh))
    loaded = query(
        fx.warehouse,
        "select inspection_ref, bike_code, inspector, outcome, remarks, inspected_at from raw_fleet.inspections",
    )
    assert sorted(loaded) == expected
    types = dict(
        query(
            fx.warehouse,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_fleet' and table_name = 'inspections'",
        )
    )
    assert {c: t for c, t in types.items() if not c.startswith("_sdc_")} == dict.fromkeys(
        ["inspection_ref", "bike_code", "inspector", "outcome", "remarks", "inspected_at"], "VARCHAR"
    )


def test_day1_dbt_build(two_days):
    _, seen = two_days
    assert seen["dbt1"] == DBT_ROWS[1]
    results = seen["run_results1"]["results"]
    assert results and all(r["status"] in ("success", "pass") for r in results)
    kinds = {}
    for r in results:
        kind = r["unique_id"].split(".")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == {"seed": 2, "snapshot": 1, "model": 13, "test": 50}


def test_day2_loads_only_the_new_rows(two_days):
    _, seen = two_days
    assert seen["day2"] == 2
    assert seen["raw2"] == RAW_ROWS[2]
    assert seen["written2"] == DAY2_ROWS_WRITTEN


def test_state_bookmarks_the_last_row_of_day2(two_days):
    fx, _ = two_days
    last = {table: rows[-1] for (_, table), rows in datagen.day_rows(2).items()}
    keys = {"stations": "updated_at", "trips": "ended_at", "bikes": "updated_at", "inspections": "inspected_at"}
    for extractor in EXTRACTORS:
        state_id = f"{MELTANO_ENVIRONMENT}:{extractor}-to-{LOADER}"
        out = fx.meltano("--environment", MELTANO_ENVIRONMENT, "state", "get", state_id).stdout
        bookmarks = json.loads(out[out.index("{") :])["singer_state"]["bookmarks"]
        schema = EXTRACTOR_SCHEMA[extractor]
        streams = [t.split(".")[1] for t in RAW_ROWS[2] if t.startswith(schema + ".")]
        assert sorted(bookmarks) == sorted(streams)
        for stream in streams:
            assert bookmarks[stream]["replication_key"] == keys[stream]
            assert bookmarks[stream]["replication_key_value"][:19] == last[stream][keys[stream]]


def test_day2_dbt_build(two_days):
    fx, seen = two_days
    assert seen["dbt2"] == DBT_ROWS[2]
    # the snapshot kept both versions of the bikes whose status changed on day 2
    changed = query(
        fx.warehouse, "select bike_code from bikeshare_history.bikes_history group by 1 having count(*) > 1 order by 1"
    )
    assert changed == [("B-007",), ("B-011",)]
    total = query(fx.warehouse, "select sum(trips) from bikeshare_marts.planning_district_demand")
    assert total == [(RAW_ROWS[2]["raw_docks.trips"],)]


def test_profile_env_var_has_no_default(tmp_path):
    """dbt refuses to start without BIKESHARE_LAKEHOUSE_PATH: the profile's env_var() has no default."""
    fx = copy_fixture(tmp_path)
    del fx.env[WAREHOUSE_VAR]
    proc = fx.dbt("parse", "--target-path", str(tmp_path / "t"), check=False)
    assert proc.returncode != 0
    assert WAREHOUSE_VAR in proc.stdout + proc.stderr


def test_missing_data_dir_fails_the_run(tmp_path):
    fx = copy_fixture(tmp_path)
    fx.env["BIKESHARE_DATA_DIR"] = "no-such-dir"
    proc = fx.meltano("run", "tap-fleet", LOADER, check=False)
    assert proc.returncode != 0
    assert "no-such-dir" in proc.stdout + proc.stderr


def _readme_table(header: str) -> list[list[str]]:
    lines = README.split(header, 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_readme_counts_are_the_helpers():
    table = _readme_table("| relation | day 1 | day 2 |")
    assert {r[0]: int(r[1]) for r in table} == {**RAW_ROWS[1], **DBT_ROWS[1]}
    assert {r[0]: int(r[2]) for r in table} == {**RAW_ROWS[2], **DBT_ROWS[2]}
    written = re.search(r"stations (\d+), trips (\d+), bikes (\d+), inspections (\d+) rows written", README)
    assert written and [int(n) for n in written.groups()] == list(DAY2_ROWS_WRITTEN.values())


def test_manifest_tags_match_the_readme(two_days, tmp_path):
    fx, _ = two_days  # dbt deps done
    fx.dbt("parse", "--target-path", str(tmp_path / "target"))
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    nodes = {
        f"{n['resource_type']}.{n['name']}": n
        for n in manifest["nodes"].values()
        if n["package_name"] == DBT_PROJECT and n["resource_type"] in ("model", "seed", "snapshot")
    }
    assert {k: set(n["tags"]) for k, n in nodes.items()} == NODE_TAGS
    readme = {row[0]: {t.strip() for t in row[1].split(",") if t.strip()} for row in _readme_table("| node | tags |")}
    assert readme == NODE_TAGS
    assert set().union(*NODE_TAGS.values()) == set(ORCHESTRATION_TAGS)
    models = {k: n for k, n in nodes.items() if k.startswith("model.")}
    assert len(models) == 14 and all(n["config"]["meta"].get("owner") for n in models.values())
    assert nodes["model.int_trip_durations"]["config"]["materialized"] == "ephemeral"
    assert manifest["metadata"]["project_name"] == DBT_PROJECT
    assert not (FIXTURE_ROOT / "dbt" / "target").exists()


def test_datagen_is_deterministic(tmp_path):
    """Day 1 regenerates the shipped files byte for byte; appending day 2 twice gives the same bytes."""
    shipped = FIXTURE_ROOT / "meltano" / "data"
    for run in ("a", "b"):
        datagen.reset(tmp_path / run)
        for path in shipped.rglob("*"):
            if path.is_file():
                assert (tmp_path / run / path.relative_to(shipped)).read_bytes() == path.read_bytes(), path
        assert datagen.append_next_day(tmp_path / run) == 2
    for path in (tmp_path / "a").rglob("*.csv"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    with pytest.raises(ValueError):
        datagen.write_day(tmp_path / "a", 5)


def test_a_day_with_only_the_fleets_rows_builds_only_what_they_reach(two_days):
    """`dbt.build: changed` with real dbt (orchestrator/plan/changed.py): on day 2's warehouse, the
    rule's selection for a day where only the fleet's source brought rows builds exactly the
    models downstream of its tables (the manifest's own graph), and a day with none builds nothing."""
    from orchestrator.plan.changed import changed_inputs, changed_selection

    fx, _ = two_days
    manifest = json.loads((fx.root / "target-day2" / "manifest.json").read_text())
    sources = {u: s for u, s in manifest["sources"].items()}
    inputs = {f"{s['schema']}.{s['name']}": (f"source:{s['source_name']}.{s['name']}",) for s in sources.values()}
    fleet = {a for a in inputs if a.startswith(EXTRACTOR_SCHEMA["tap-fleet"] + ".")}
    events = [
        (a, {"records_extracted": 4 if a in fleet else 1, "rows_written": 4, "rows_new": int(a in fleet)})
        for a in inputs
    ]
    changed = changed_inputs(events, inputs)
    assert changed == fleet
    args = changed_selection(["build"], inputs, changed)
    assert args is not None
    fx.dbt(*args, "--target-path", str(fx.root / "target-fleet"))
    built = {
        r["unique_id"]
        for r in json.loads((fx.root / "target-fleet" / "run_results.json").read_text())["results"]
        if r["unique_id"].split(".")[0] in ("model", "seed", "snapshot") and r["status"] == "success"
    }
    reach: set[str] = set()
    todo = [u for u, s in sources.items() if f"{s['schema']}.{s['name']}" in fleet]
    while todo:
        for child in manifest["child_map"].get(todo.pop(), []):
            if child not in reach:
                reach.add(child)
                todo.append(child)
    expected = {
        u
        for u in reach
        if u.split(".")[0] in ("model", "snapshot") and manifest["nodes"][u]["config"]["materialized"] != "ephemeral"
    }
    all_models = {u for u, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert built == expected
    assert {u for u in built if u.startswith("model.")} < all_models  # not the whole project
    none = [(a, {"records_extracted": 1, "rows_written": 1, "rows_new": 0}) for a in inputs]
    assert changed_selection(["build"], inputs, changed_inputs(none, inputs)) is None
