"""The DAG files import in a real DagBag and render exactly the plan; bad input breaks only its file."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from unittest import mock

import pytest
from conftest import run_kwargs

from orchestrator.config import REPO_ROOT
from orchestrator.plan import build_plan

DAGS = REPO_ROOT / "dags"


def _dagbag(folder: Path, monkeypatch, **env):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", "")  # parse the files afresh
    # A DAG file init wrote pins ORCHESTRATION_CONFIG in the parsing process: undone after the test.
    had = "ORCHESTRATION_CONFIG" in os.environ
    monkeypatch.setenv("ORCHESTRATION_CONFIG", os.environ.get("ORCHESTRATION_CONFIG", ""))
    if not had:
        monkeypatch.delenv("ORCHESTRATION_CONFIG")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return DagBag(dag_folder=str(folder))


def _asset_names(schedule) -> list[str]:
    return sorted(getattr(a, "name", a) for a in schedule) if isinstance(schedule, list) else []


def _first_run_when_unpaused_just_after(timetable, cron: str):
    """The run Airflow would start at once when the DAG is unpaused a minute after a cron point
    (the scheduler asks the timetable with catchup off and no earlier run): None when it waits."""
    from datetime import UTC, datetime, timedelta

    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction
    from croniter import croniter

    timetable = decode_timetable(encode_timetable(timetable))  # what the scheduler runs

    point = croniter(cron, datetime(2026, 12, 1, 0, 30, tzinfo=UTC)).get_prev(datetime)
    with mock.patch("airflow.timetables.trigger.utcnow", return_value=point + timedelta(minutes=1)):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=None, restriction=TimeRestriction(earliest=None, latest=None, catchup=False)
        )
    return info if info is not None and info.run_after <= point + timedelta(minutes=1) else None


@pytest.mark.parametrize("profile", ["embedded", "production"])
def test_every_dag_file_imports_and_matches_the_plan(monkeypatch, installed, profile):
    bag = _dagbag(DAGS, monkeypatch, PIPELINE_PROFILE=profile)
    assert bag.import_errors == {}
    plan = build_plan(profile=profile, cache_dir=None)
    assert sorted(bag.dag_ids) == sorted(d.dag_id for d in plan.dags)
    for spec in plan.dags:
        dag = bag.dags[spec.dag_id]
        if spec.schedule.cron:
            assert dag.timetable.expression == spec.schedule.cron and dag.start_date is None
            assert _first_run_when_unpaused_just_after(dag.timetable, spec.schedule.cron) is None, spec.dag_id
        elif spec.schedule.assets:
            assert _asset_names(dag.schedule) == sorted(spec.schedule.assets)
        else:
            assert dag.schedule is None
        outlets = sorted(a.name for t in dag.tasks for a in t.outlets)
        assert outlets == sorted(spec.outlets), spec.dag_id
        assert dag.doc_md and "Triggered by" in dag.doc_md
        assert dag.max_active_runs == 1
        assert all(t.retries == (0 if spec.kind == "meltano_state" else 2) for t in dag.tasks)
        assert {t.owner for t in dag.tasks} == {spec.owner}
        expected_pool = (
            "warehouse_duckdb" if profile == "embedded" and spec.kind in ("meltano", "dbt") else "default_pool"
        )
        # the cycle wait holds no warehouse slot between its looks (orchestrator/airflow/cycle_wait.py)
        assert {t.pool for t in dag.tasks if t.task_id != "wait_for_cycle"} == {expected_pool}, spec.dag_id
        if spec.kind == "meltano":  # the task counts the records of the extractor(s) it runs
            assert dag.tasks[0].op_kwargs["extractors"] == [spec.extractor]
        # every task alerts: after its last retry, on each retry, and on the recovery after a failure
        for t in dag.tasks:
            assert [c.__name__ for c in t.on_failure_callback] == ["on_task_failure"], t.task_id
            assert [c.__name__ for c in t.on_retry_callback] == ["on_task_retry"]
            assert [c.__name__ for c in t.on_success_callback] == ["on_task_success"]
        assert dag.on_failure_callback.__name__ == "on_dag_failure"
        assert dag.on_success_callback.__name__ == "on_dag_success"


def test_a_task_process_parse_builds_only_the_dag_it_runs(monkeypatch, installed):
    """The task runner parses the DAG's file inside Airflow's parsing context naming the DAG: the
    file builds that DAG alone (the same as the dag-processor's), the others none."""
    from airflow.sdk.definitions._internal import dag_parsing_context as parsing

    full = _dagbag(DAGS, monkeypatch)
    # what the task runner's `_airflow_parsing_context_manager` sets (monkeypatch also unsets them
    # after: Airflow's context manager leaves them set when they were unset before)
    monkeypatch.setenv(parsing._AIRFLOW_PARSING_CONTEXT_DAG_ID, "dbt_core")
    monkeypatch.setenv(parsing._AIRFLOW_PARSING_CONTEXT_TASK_ID, "dbt_build")
    bag = _dagbag(DAGS, monkeypatch)
    assert bag.import_errors == {}
    assert bag.dag_ids == ["dbt_core"]
    assert [t.task_id for t in bag.dags["dbt_core"].tasks] == [t.task_id for t in full.dags["dbt_core"].tasks]
    build, built_by_all = (b.dags["dbt_core"].get_task("dbt_build") for b in (bag, full))
    assert build.op_kwargs == built_by_all.op_kwargs


def test_no_dag_file_shadows_a_package():
    """Airflow puts dags/ on sys.path: dags/alerting.py would hide the alerting package from every
    DAG file's imports (a circular import in all of them, seen in the e2e run)."""
    packages = {p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages >= {"orchestrator", "alerting", "demo_data"}
    assert not {f.stem for f in DAGS.glob("*.py")} & packages


def test_asset_uris_follow_the_warehouse(monkeypatch, installed):
    bag = _dagbag(DAGS, monkeypatch, PIPELINE_PROFILE="production")
    outlets = {a.name: a.uri for a in bag.dags["meltano_tap_shop_mariadb"].tasks[0].outlets}
    assert outlets["raw_shop.orders"] == "postgres://127.0.0.1:5432/warehouse/raw_shop/orders"
    bag = _dagbag(DAGS, monkeypatch, PIPELINE_PROFILE="embedded")
    outlets = {a.name: a.uri for a in bag.dags["dbt_core"].tasks[0].outlets}
    assert outlets["analytics.fct_orders"] == "duckdb://warehouse/analytics/fct_orders"


def _project_copy(tmp_path: Path) -> Path:
    """A copy of the config, Meltano project files and manifest, to break one of them."""
    shutil.copy(REPO_ROOT / "orchestration.yml", tmp_path)
    shutil.copy(REPO_ROOT / "alerting.yml", tmp_path)
    shutil.copytree(
        REPO_ROOT / "meltano", tmp_path / "meltano", ignore=shutil.ignore_patterns(".meltano", "data", "tap-jsonl-dir")
    )
    (tmp_path / "dbt_project" / "target").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dbt_project" / "target" / "manifest.json", tmp_path / "dbt_project" / "target")
    return tmp_path


@pytest.mark.parametrize(
    "breakage, broken_file, message",
    [
        ("truncated manifest", "dbt_tags.py", "truncated or not valid JSON"),
        ("old manifest", "dbt_tags.py", "manifest schema v3 is too old"),
        ("missing manifest", "dbt_tags.py", "manifest not found"),
        ("bad meltano.yml", "meltano_sources.py", "not valid YAML"),
        ("secret in alerting.yml", "alerting_housekeeping.py", "secrets do not belong in the routing config"),
    ],
)
def test_a_broken_input_breaks_only_the_dag_files_that_read_it(
    tmp_path, monkeypatch, installed, breakage, broken_file, message
):
    root = _project_copy(tmp_path)
    manifest = root / "dbt_project" / "target" / "manifest.json"
    if breakage == "truncated manifest":
        manifest.write_text(manifest.read_text()[:5000])
    elif breakage == "old manifest":
        manifest.write_text('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v3.json"}}')
    elif breakage == "missing manifest":
        manifest.unlink()
    elif breakage == "secret in alerting.yml":
        (root / "alerting.yml").write_text("slack: {token: xoxb-do-not-commit-me}\n")
    else:
        (root / "meltano" / "meltano.yml").write_text("plugins: [unclosed\n")
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(root / "orchestration.yml"))
    errors = {Path(f).name: e for f, e in bag.import_errors.items()}
    culprit = {"bad meltano.yml": "meltano.yml", "secret in alerting.yml": "alerting.yml"}.get(
        breakage, "manifest.json"
    )
    assert broken_file in errors and message in errors[broken_file] and culprit in errors[broken_file]
    assert "tick" in bag.dag_ids, "the tick never depends on the broken input"
    if breakage == "secret in alerting.yml":
        assert set(errors) == {"alerting_housekeeping.py"}
        assert "xoxb-do-not-commit-me" not in errors["alerting_housekeeping.py"]
    elif breakage.endswith("manifest"):
        assert set(errors) == {"dbt_tags.py"}
        assert {"meltano_tap_shop", "meltano_state"} <= set(bag.dag_ids)
        # redelivery of alerts never depends on the manifest; only the lateness check does
        assert [t.task_id for t in bag.dags["alerting"].tasks] == ["redeliver"]
    else:  # every DAG that reads meltano.yml fails, naming it; the tick survives
        assert set(errors) == {"meltano_sources.py", "dbt_tags.py", "meltano_state.py"}
        assert [t.task_id for t in bag.dags["alerting"].tasks] == ["redeliver"]


def test_a_plan_error_is_an_import_error_listing_it(tmp_path, monkeypatch, installed):
    root = _project_copy(tmp_path)
    text = (
        (root / "orchestration.yml")
        .read_text()
        .replace("tags: [core, finance, marketing]", "tags: [core, finance, Finance]")
    )
    (root / "orchestration.yml").write_text(text)
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(root / "orchestration.yml"))
    errors = {Path(f).name: e for f, e in bag.import_errors.items()}
    # only the DAG the two tags collide on is left out; the error shows as plan_errors.py's
    assert set(errors) == {"plan_errors.py"} and "map to the DAG id 'dbt_finance'" in errors["plan_errors.py"]
    assert {"meltano_tap_shop", "dbt_core"} <= set(bag.dag_ids) and "dbt_finance" not in bag.dag_ids


def test_gzipped_manifest_reads_the_same(tmp_path, installed):
    from orchestrator.config import load_config
    from orchestrator.plan import plan_from_config

    gz = tmp_path / "manifest.json.gz"
    gz.write_bytes(gzip.compress((REPO_ROOT / "dbt_project/target/manifest.json").read_bytes()))
    config = load_config()
    plain = plan_from_config(config, cache_dir=None)
    zipped = plan_from_config(config.with_overrides(manifest=gz), cache_dir=None)
    assert [d.to_dict() for d in zipped.dags] == [d.to_dict() for d in plain.dags]


@pytest.mark.parametrize("granularity", ["dag", "model"])
def test_a_dbt_dag_files_parse_decodes_no_node_list(tmp_path, installed, granularity):
    """The dbt file renders every DAG from a cached plan without reading a node list or a task's
    dbt arguments (model.Deferred), and hands its tasks none: each reads its own when it runs
    (dbt_entry.task_arguments), the same as the plan says."""
    from orchestrator.airflow.render import render_dag
    from orchestrator.config import load_config
    from orchestrator.plan import plan_from_config

    config = load_config(REPO_ROOT / "orchestration.yml", "embedded")
    config = config.model_copy(update={"dbt": config.dbt.model_copy(update={"task_granularity": granularity})})
    fresh = plan_from_config(config, kinds=("dbt",), cache_dir=tmp_path)  # built and stored
    plan = plan_from_config(config, kinds=("dbt",), cache_dir=tmp_path)  # loaded, as each parse does
    dags = [render_dag(plan, config, spec) for spec in plan.dbt_dags()]
    assert all("_fill" in d.__dict__ and all("_fill" in t.__dict__ for t in d.tasks) for d in plan.dbt_dags())
    light = {"plan_task", "tag", "cycle_wait", "cycle_task", "config_path", "profile"}
    builds = [t for d in dags for t in d.tasks if hasattr(t, "op_kwargs")]  # not the per-model wait sensor
    assert len(builds) == sum(len(d.tasks) for d in plan.dbt_dags())
    assert all(set(t.op_kwargs) <= light for t in builds)
    assert plan == fresh  # and what the tasks read is the plan's


def test_a_dbt_task_the_plan_no_longer_has_fails_naming_it(installed):
    """A task whose DAG left the plan between its parse and its start (a new manifest) fails at
    once, without retries, naming the task and what to do."""
    from airflow.sdk.exceptions import AirflowFailException

    from orchestrator.airflow.dbt_entry import task_arguments

    config = str(REPO_ROOT / "orchestration.yml")
    assert task_arguments("dbt_core", "dbt_build", config, "embedded")["args"][0] == "build"
    with pytest.raises(AirflowFailException, match=r"no dbt task dbt_gone\.dbt_build any more .* run it again"):
        task_arguments("dbt_gone", "dbt_build", config, "embedded")
    with pytest.raises(AirflowFailException, match=r"no dbt task dbt_core\.stg_orders any more"):
        task_arguments("dbt_core", "stg_orders", config, "embedded")


def test_a_dbt_dag_of_one_task_looks_for_the_cycle_itself(monkeypatch, installed):
    """No sensor on the critical path: the build task reads its inputs' latest events (its inlets)
    before dbt starts (orchestrator/airflow/cycle_wait.py hold_build)."""
    bag = _dagbag(DAGS, monkeypatch)
    core = bag.dags["dbt_core"]
    [build] = core.tasks
    inputs = build.op_kwargs["cycle_wait"]["inputs"]
    assert build.task_id == "dbt_build" and "cycle_task" not in build.op_kwargs
    scheduled_on = sorted(a.name for a in core.timetable.asset_condition.objects)
    assert sorted(inputs) == sorted(a.name for a in build.inlets) == scheduled_on
    assert build.op_kwargs["cycle_wait"]["poke_seconds"] == 60 and build.pool == "warehouse_duckdb"
    [untagged] = bag.dags["dbt_untagged"].tasks  # on the tick alone: nothing to look for
    assert "cycle_wait" not in untagged.op_kwargs and not untagged.inlets


def test_per_model_granularity_renders_one_task_per_model(tmp_path, monkeypatch, installed):
    root = _project_copy(tmp_path)
    text = (root / "orchestration.yml").read_text().replace("task_granularity: dag", "task_granularity: model")
    (root / "orchestration.yml").write_text(text)
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(root / "orchestration.yml"))
    assert bag.import_errors == {}
    core = bag.dags["dbt_core"]
    tasks = {t.task_id: t for t in core.tasks}
    assert set(tasks) == {
        "stg_customers",
        "stg_orders",
        "stg_accounts",
        "int_order_payments",
        "fct_orders",
        "dim_customers",
        "dbt_test_relationships",
        "wait_for_cycle",  # first: the inputs must belong to one cycle (plan/cycles.py)
    }
    roots = {"stg_customers", "stg_orders", "stg_accounts", "int_order_payments"}  # every task with no upstream
    assert tasks["wait_for_cycle"].downstream_task_ids == roots
    assert (
        tasks["wait_for_cycle"].pool == "default_pool" and tasks["wait_for_cycle"].mode == "poke"
    )  # dbt.cycle_wait.mode default
    assert tasks["fct_orders"].upstream_task_ids == {"stg_orders", "int_order_payments"}
    assert [a.name for a in tasks["fct_orders"].outlets] == ["analytics.fct_orders"]
    fct_orders = run_kwargs(tasks["fct_orders"])  # what the task reads of the plan when it runs
    assert fct_orders["args"] == ["build", "--select", "fct_orders", "--indirect-selection", "cautious"]
    assert fct_orders["relations"] == {"model.demo_analytics.fct_orders": "analytics.fct_orders"}
    assert fct_orders["outlets"] == {"analytics.fct_orders": tasks["fct_orders"].outlets[0].uri}
    assert "nodes" not in fct_orders  # select/exclude apply to whole-DAG tasks only (dbt_task._form)
    finance = {t.task_id for t in bag.dags["dbt_finance"].tasks}
    assert "dbt_test_relationships" in finance  # tests with parents in two models run after both


# --------------------------------------------------------------- real manifests, forced cycles


def _config_on(tmp_path: Path, manifest: Path, tags) -> Path:
    """The repo's config (Meltano project, profiles, alerting) with another manifest and tags."""
    from conftest import pipeline_config

    path = pipeline_config(tmp_path)
    text = path.read_text()
    import yaml

    data = yaml.safe_load(text)
    data["dbt"].update(manifest=str(manifest), tags=list(tags), tag_prefix=None)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "name, tag_set",
    [
        ("mattermost", "top"),
        ("mattermost", "cadence"),
        ("mattermost", "layer"),
        ("gitlab", "top"),
        ("gitlab", "product_daily"),
        ("tuva", "top"),
        ("tuva", "domains"),
        ("calitp", "top"),
        ("flipside", "top"),
        ("jaffle_shop", "top"),
    ],
)
def test_real_manifests_render_every_dag_without_import_errors(tmp_path, monkeypatch, installed, name, tag_set):
    from test_placement import MANIFESTS, REAL_MANIFESTS, TAG_SETS, real, top_tags

    project = real(name)
    tags = top_tags(project) if tag_set == "top" else TAG_SETS[name][tag_set]
    [manifest] = sorted(REAL_MANIFESTS.glob(MANIFESTS[name]))
    config = _config_on(tmp_path, manifest, tags)
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(config), PIPELINE_PROFILE="embedded")
    assert bag.import_errors == {}
    plan = build_plan(config, cache_dir=None)
    assert plan.errors == []
    assert sorted(bag.dag_ids) == sorted(d.dag_id for d in plan.dags)
    for spec in plan.of_kind("dbt"):
        assert _asset_names(bag.dags[spec.dag_id].schedule) == sorted(spec.schedule.assets)
        # what each task reads of the plan when it runs (dbt_entry.task_arguments) is its spec's
        [build] = bag.dags[spec.dag_id].tasks
        kwargs = run_kwargs(build)
        assert (kwargs["args"], kwargs["relations"]) == (list(spec.tasks[0].args), dict(spec.tasks[0].relations))
        assert kwargs["nodes"] == [*spec.models, *spec.tests]
    build_plan(config, cache_dir=tmp_path / "cache")  # stored, then loaded with its node lists deferred
    assert build_plan(config, cache_dir=tmp_path / "cache") == plan


def _forced_cycle_config(tmp_path: Path, on_forced_cycle: str) -> Path:
    from test_plan import model, write_manifest

    nodes = [
        model("f1", ["finance"]),
        model("k1", ["marketing"], ["model.p.f1"]),
        model("f2", ["finance"], ["model.p.k1"]),
        model("c1", ["core"]),
    ]
    manifest = write_manifest(tmp_path / "manifest.json", nodes)
    config = _config_on(tmp_path, manifest, ["core", "finance", "marketing"])
    import yaml

    data = yaml.safe_load(config.read_text())
    data["dbt"]["on_forced_cycle"] = on_forced_cycle
    config.write_text(yaml.safe_dump(data))
    return config


def test_a_forced_cycle_is_split_into_stages_that_import_and_run_in_order(tmp_path, monkeypatch, installed):
    """dbt.on_forced_cycle: split (the default): finance runs in two stages around marketing."""
    config = _forced_cycle_config(tmp_path, "split")
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(config), PIPELINE_PROFILE="embedded")
    assert not bag.import_errors
    assert {"dbt_core", "dbt_finance", "dbt_finance_2", "dbt_marketing"} <= set(bag.dag_ids)
    assert "tick" in bag.dag_ids and "meltano_tap_shop" in bag.dag_ids
    schedules = {d: _asset_names(bag.dags[d].schedule) for d in ("dbt_finance", "dbt_marketing", "dbt_finance_2")}
    assert schedules["dbt_marketing"] == ["analytics.f1"]  # what stage 1 builds
    assert schedules["dbt_finance_2"] == ["analytics.k1"]  # what marketing builds
    from orchestrator.cli import main

    assert main(["--config", str(config), "check"]) == 0


def test_a_forced_cycle_leaves_out_only_its_dags_and_shows_as_an_import_error(tmp_path, monkeypatch, installed):
    """dbt.on_forced_cycle: error keeps the refusal for teams that want it."""
    config = _forced_cycle_config(tmp_path, "error")
    bag = _dagbag(DAGS, monkeypatch, ORCHESTRATION_CONFIG=str(config), PIPELINE_PROFILE="embedded")
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("plan_errors.py")
    assert "dbt_finance -> dbt_marketing -> dbt_finance" in error and "add the tag `finance`" in error
    assert "dbt_core" in bag.dag_ids and "tick" in bag.dag_ids and "meltano_tap_shop" in bag.dag_ids
    assert "dbt_finance" not in bag.dag_ids and "dbt_marketing" not in bag.dag_ids
    from orchestrator.cli import main

    assert main(["--config", str(config), "check"]) == 1


def test_a_dbt_dag_can_be_triggered_from_its_form_with_the_defaults(monkeypatch, installed):
    """Airflow's Trigger form marks a param required unless its type allows null, and an empty
    required field disables "Trigger": every field of the run form must be optional, and the
    defaults must be what a scheduled run does (the whole selection)."""
    from orchestrator.airflow.dbt_form import form_values

    bag = _dagbag(DAGS, monkeypatch, PIPELINE_PROFILE="embedded")
    dbt_dags = [d for d in bag.dags.values() if "dbt" in d.tags]
    assert dbt_dags
    for dag in dbt_dags:
        schemas = {k: p.schema for k, p in dag.params.items()}
        for key in ("select", "exclude"):
            assert "null" in schemas[key]["type"], (dag.dag_id, key, schemas[key])
        defaults = {k: p.value for k, p in dag.params.items()}
        assert form_values(defaults) == {
            "select": "",
            "exclude": "",
            "full_refresh": False,
            "vars": {},
            "retry_from_failure": True,
        }


def test_the_errors_file_leaves_only_input_errors_to_the_files_that_read_them(monkeypatch):
    """A broken input (a ConfigError naming its file) is the import error of the DAG files that read
    it, not of plan_errors.py; anything else is a bug, and plan_errors.py shows it instead of
    hiding it."""
    from orchestrator.airflow import dag_files
    from orchestrator.config import ConfigError, load_config
    from orchestrator.plan import ManifestError

    config = load_config()

    def broken(error: Exception):
        def plan_from_config(*args, **kwargs):
            raise error

        monkeypatch.setattr(dag_files, "plan_from_config", plan_from_config)

    broken(ManifestError("manifest.json: truncated"))
    assert issubclass(ManifestError, ConfigError)
    dag_files.raise_plan_errors(config=config)  # dbt_tags.py reports it
    broken(ValueError("a bug, not an input"))
    with pytest.raises(ValueError, match="a bug, not an input"):
        dag_files.raise_plan_errors(config=config)
    with pytest.raises(dag_files.PlanError, match=r"the dbt DAGs are left out: a bug, not an input"):
        dag_files.raise_plan_errors(config=config, whole_kinds=True)  # init's layout: every problem here
