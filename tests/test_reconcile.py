"""Row reconciliation per stream (issue 17 item 1), on real Meltano runs of the bike-share fixture:
the stock target-duckdb 0.8.0 is caught in the run that loses the all-string stream's first row
(20 vs 19), so is a loader that drops one random record, and the fixed loader reports nothing,
day 1 (inserts) and day 2 (upserts, the bookmark row re-sent) alike. Then the modes: `fail` stops
the cycle with one line, `warn` sends a rows_mismatch alert, `off` reads nothing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
import yaml
from fixture_project import BIN, FixtureCopy, copy_fixture
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import load_config
from orchestrator.local import direct
from orchestrator.plan import plan_from_config
from orchestrator.runners.meltano import run_extractor
from orchestrator.runners.reconcile import ReconcileError, Written, compare, meltano_streams, reconciliation

pytestmark = pytest.mark.meltano

DROP_ONE = """#!{python}
# A Singer loader that loses one random record of the run: it writes the others to DuckDB, every
# column VARCHAR, and reports no count of its own (not pipelinewise: no "Loading N rows").
import json, random, sys
import duckdb
args = sys.argv[1:]
config = json.load(open(args[args.index("--config") + 1]))
schema, columns, records, state = config["default_target_schema"], {{}}, [], None
for line in sys.stdin:
    message = json.loads(line)
    if message["type"] == "SCHEMA":
        columns[message["stream"]] = list(message["schema"]["properties"])
    elif message["type"] == "RECORD":
        records.append((message["stream"], message["record"]))
    elif message["type"] == "STATE":
        state = message["value"]
if records:
    del records[random.randrange(len(records))]
with duckdb.connect(config["filepath"]) as conn:
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{{schema}}"')
    for stream, cols in columns.items():
        names = ", ".join(f'"{{c}}" VARCHAR' for c in cols)
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{{schema}}"."{{stream}}" ({{names}})')
        rows = [[None if r.get(c) is None else str(r[c]) for c in cols] for s, r in records if s == stream]
        if rows:
            marks = ", ".join("?" for _ in cols)
            conn.executemany(f'INSERT INTO "{{schema}}"."{{stream}}" VALUES ({{marks}})', rows)
if state is not None:
    print(json.dumps(state), flush=True)
"""


def _project(
    fx: FixtureCopy, *, executable: str | None = None, metadata: bool = True, reconcile: dict | None = None
) -> Path:
    """orchestration.yml for the copy (tap-fleet only); its loader's executable replaced if given, its
    metadata columns (_sdc_*) off if asked (target-duckdb's default)."""
    meltano_yml = fx.meltano_dir / "meltano.yml"
    data = yaml.safe_load(meltano_yml.read_text())
    loader = data["plugins"]["loaders"][0]
    loader["executable"] = executable or "target-duckdb-fixed"
    loader["config"]["add_metadata_columns"] = metadata
    meltano_yml.write_text(yaml.safe_dump(data, sort_keys=False))
    config = {
        "default_profile": "staging",
        "dbt": {"project_dir": "dbt", "profiles_dir": "dbt_profiles", "manifest": "dbt/target/manifest.json"},
        "meltano": {"project_dir": "meltano", "executable": str(BIN / "meltano"), **(reconcile or {})},
        "profiles": {
            "staging": {
                "meltano_environment": "staging",
                "loader": "target-lakehouse",
                "dbt_target": "lakehouse",
                "extractors": ["tap-fleet"],
                "env": {"ALERTING_OUTBOX_URL": f"sqlite:///{fx.root / 'outbox.sqlite'}"},
            }
        },
    }
    routes = "routes:\n- name: data\n  match: {dag_tag: meltano}\n  emails: [data@example.com]\n"
    (fx.root / "alerting.yml").write_text("quiet: true\n" + routes)
    (fx.root / "orchestration.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return fx.root / "orchestration.yml"


def _load(fx: FixtureCopy, config_path: Path):
    """`meltano run tap-fleet target-lakehouse`, reconciled as the Airflow task does it."""
    config = load_config(config_path)
    plan = plan_from_config(config, kinds=("meltano",), cache_dir=None)
    streams = {rel: (t, e) for d in plan.meltano_dags() for rel, t, e in meltano_streams(d, plan.assets).values()}
    lines: list[str] = []
    check = reconciliation(config, fx.env, streams, log=lines.append)
    started = time.monotonic()
    check.before()
    result = run_extractor(
        "tap-fleet",
        "target-lakehouse",
        environment="staging",
        env=fx.env,
        project_root=fx.meltano_dir,
        executable=str(BIN / "meltano"),
        log=lambda line: None,
    )
    checks = {c.relation: c for c in check.after(result.metric_lines)}
    return checks, lines, result, time.monotonic() - started


def _rows(fx: FixtureCopy, relation: str) -> int:
    with duckdb.connect(str(fx.warehouse), read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]


def test_the_stock_loader_is_caught_in_the_run_that_loses_the_row(tmp_path):
    fx = copy_fixture(tmp_path)
    # 0.8.0's own entry point, as its users run it: no metadata columns (its default), so the
    # all-string stream's table is all VARCHAR and DuckDB takes the first record for a header
    checks, lines, _, _ = _load(fx, _project(fx, executable="target-duckdb", metadata=False))
    lost = checks["raw_fleet.inspections"]
    assert (lost.status, lost.emitted, lost.written) == ("mismatch", 20, 19)
    assert _rows(fx, "raw_fleet.inspections") == 19  # what the warehouse really holds
    assert "target-duckdb==0.8.0 loses the first record" in lost.cause and "fixed loader" in lost.cause
    assert lost.extra() == {"reconcile": "mismatch", "rows_written": 19, "reconcile_note": lost.cause}
    assert checks["raw_fleet.bikes"].status == "ok"  # typed columns: nothing lost
    [line] = [x for x in lines if x.startswith("RECONCILE MISMATCH")]
    assert "tap-fleet -> raw_fleet.inspections: the tap emitted 20 record(s), the loader wrote 19 row(s)" in line


def test_a_loader_that_drops_one_random_record_is_caught(tmp_path):
    fx = copy_fixture(tmp_path)
    script = tmp_path / "drop-one"
    script.write_text(DROP_ONE.format(python=sys.executable))
    script.chmod(0o755)
    checks, _, _, _ = _load(fx, _project(fx, executable=str(script)))
    bad = [c for c in checks.values() if c.status == "mismatch"]
    assert len(bad) == 1, checks
    assert bad[0].emitted - bad[0].written == 1
    assert "1 record(s) lost by the loader" in bad[0].cause


def test_the_fixed_loader_reports_nothing_on_inserts_then_upserts(tmp_path, capsys):
    fx = copy_fixture(tmp_path)
    path = _project(fx)
    for day in (1, 2):
        if day == 2:
            fx.append_day()
        checks, lines, result, seconds = _load(fx, path)
        assert {r: c.status for r, c in checks.items()} == {"raw_fleet.bikes": "ok", "raw_fleet.inspections": "ok"}
        assert not [x for x in lines if "MISMATCH" in x]
        for relation, c in checks.items():
            assert c.written == result.records[relation.split(".")[1]]
        with capsys.disabled():
            print(f"\nday {day}: meltano run {result.duration_s:.2f}s, with reconciliation {seconds:.2f}s")


def test_fail_stops_the_cycle_warn_alerts_off_reads_nothing(tmp_path):
    fx = copy_fixture(tmp_path)
    path = _project(fx, executable="target-duckdb", metadata=False, reconcile={"reconcile": "fail"})
    checks, _, _, _ = _load(fx, path)
    mismatches = [c for c in checks.values() if c.status == "mismatch"]
    with pytest.raises(ReconcileError, match=r"raw_fleet.inspections: the tap emitted 20 record\(s\), .* wrote 19"):
        direct._report_mismatches(load_config(path), fx.env, mismatches, print)

    warn = _project(fx, reconcile={"reconcile": "fail", "reconcile_extractors": {"tap-fleet": "warn"}})
    said: list[str] = []
    warn_config = load_config(warn)
    direct._report_mismatches(warn_config, warn_config.profile.environment(fx.env), mismatches, said.append)
    assert said and said[0].startswith("warning: rows not loaded as extracted: tap-fleet -> raw_fleet.inspections")
    engine = sa.create_engine(f"sqlite:///{fx.root / 'outbox.sqlite'}")
    with engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(sa.text("SELECT alert_kind FROM alert_deliveries"))]
        incidents = conn.execute(sa.text("SELECT count(*) FROM alert_incidents")).scalar()
    assert kinds and set(kinds) == {"rows_mismatch"} and incidents == 0  # a notice: nothing to recover from

    off = load_config(_project(fx, reconcile={"reconcile_extractors": {"tap-fleet": "off"}}))
    check = reconciliation(off, fx.env, {"raw_fleet.inspections": ("inspections", "tap-fleet")})
    assert check.streams == {}


@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.sampled_from(["stamp", "new"]),
    st.sampled_from([True, False, None]),
)
def test_stamped_or_new_rows_are_ok_exactly_when_written_equals_emitted(emitted, written, how, keyed):
    c = compare("s.t", "tap-x", emitted, Written(written, how), keyed=keyed)
    assert (c.status == "ok") is (emitted == written)
    assert c.status in ("ok", "mismatch")
    if c.status == "mismatch":
        assert str(abs(emitted - written)) in c.cause


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from([True, False, None]))
def test_a_row_count_delta_proves_a_loss_only_without_keys(emitted, delta, keyed):
    """Without the stamp an upsert's updates add no row: fewer new rows than records is a mismatch
    only for an append-only stream; more rows than records always is."""
    c = compare("s.t", "tap-x", emitted, Written(delta, "delta"), keyed=keyed)
    if delta == emitted:
        assert c.status == "ok"
    elif delta > emitted or keyed is False:
        assert c.status == "mismatch"
    else:
        assert c.status == "skipped" and "metadata columns" in c.cause


@given(st.integers(0, 10**4), st.integers(0, 10**4), st.integers(0, 10**4), st.sampled_from(["stamp", "new"]))
def test_the_loaders_own_count_explains_keys_sent_twice_never_a_loss(emitted, loaded, written, how):
    """A keyed stream whose rows are all the loader says it loaded is ok (records shared keys); any
    row fewer than the loader's own count is still a mismatch (the stock target-duckdb: 20, 20, 19)."""
    c = compare("s.t", "tap-x", emitted, Written(written, how), keyed=True, loaded=loaded)
    if written == emitted or (written < emitted and written == loaded):
        assert c.status == "ok"
    else:
        assert c.status == "mismatch"


def test_an_unreadable_table_or_a_tap_without_metrics_is_skipped_never_a_mismatch():
    assert compare("s.t", "tap-x", 5, "no _sdc_batched_at column").status == "skipped"
    assert compare("s.t", "tap-x", None, Written(3, "stamp")).status == "skipped"
    assert compare("s.t", "tap-x", None, Written(0, "stamp")).status == "ok"


def test_the_airflow_task_puts_the_mismatch_in_the_asset_event_and_alerts(tmp_path, monkeypatch):
    """The Meltano DAG's task callable, with the kwargs render.py gives it, on the stock loader."""
    from collections import defaultdict
    from types import SimpleNamespace

    from airflow.sdk import Asset

    from orchestrator.airflow import tasks

    fx = copy_fixture(tmp_path)
    for k in ("BIKESHARE_DATA_DIR", "BIKESHARE_LAKEHOUSE_PATH", "MELTANO_DATABASE_URI", "DBT_LOG_PATH"):
        monkeypatch.setenv(k, fx.env[k])
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    path = _project(fx, executable="target-duckdb", metadata=False)
    plan = plan_from_config(load_config(path), kinds=("meltano",), cache_dir=None)
    dag = plan.dag("meltano_tap_fleet")
    task, streams = dag.tasks[0], meltano_streams(dag, plan.assets)
    outlets = {a: plan.uri(a) for a in task.outlets}
    events: dict = defaultdict(SimpleNamespace)
    tasks.meltano_run(
        argv=list(task.args),
        extractors=list(dag.extractors),
        outlets=outlets,
        tables={asset: table for table, asset in task.relations},
        reconcile={a: list(streams[a]) for a in task.outlets},
        config_path=str(path),
        outlet_events=events,
        ti=SimpleNamespace(dag_id=dag.dag_id, task_id=task.task_id, run_id="manual__1"),
        dag=SimpleNamespace(tags=set(dag.tags)),
    )
    extra = events[Asset(name="raw_fleet.inspections", uri=outlets["raw_fleet.inspections"])].extra
    assert (extra["records_extracted"], extra["rows_written"], extra["reconcile"]) == (20, 19, "mismatch")
    assert "target-duckdb==0.8.0 loses the first record" in extra["reconcile_note"]
    assert events[Asset(name="raw_fleet.bikes", uri=outlets["raw_fleet.bikes"])].extra["reconcile"] == "ok"
    engine = sa.create_engine(f"sqlite:///{fx.root / 'outbox.sqlite'}")
    with engine.connect() as conn:
        rows = list(conn.execute(sa.text("SELECT alert_kind, dag_id FROM alert_deliveries")))
    assert rows and set(rows) == {("rows_mismatch", "meltano_tap_fleet")}

    failing = load_config(_project(fx, reconcile={"reconcile": "fail"}))
    mismatch = [compare("raw_fleet.inspections", "tap-fleet", 20, Written(19, "new"))]
    with pytest.raises(tasks.TaskFailure, match="tap-fleet -> raw_fleet.inspections: the tap emitted 20") as failed:
        tasks._report_mismatches(failing, mismatch, ["staging:tap-fleet-to-target-lakehouse"], {})
    assert failed.value.alert_context["meltano"]["extractor"] == "tap-fleet"
