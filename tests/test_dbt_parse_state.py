"""The partial-parse state dbt runs share: a state published under another environment costs one
full parse, not one per DAG (runners/dbt.py: private_target, share_parse_state).

Real dbt on a small project of its own: the published state is parsed with one warehouse path,
the runs use another (as `make setup`'s `dbt parse` and the profile's environment differ), so
dbt's profile hash differs and the first run re-parses everything; the next run, in another DAG's
target directory, starts from the state the first one shared and parses nothing again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.runners.dbt import PARTIAL_PARSE, DbtProjectRef, private_target, run_dbt, share_parse_state

FILES = {
    "dbt_project.yml": (
        "name: parse_state\nversion: '1.0'\nconfig-version: 2\nprofile: parse_state\nmodel-paths: [models]\n"
    ),
    "profiles/profiles.yml": (
        "parse_state:\n  target: duckdb\n  outputs:\n"
        "    duckdb: {type: duckdb, path: \"{{ env_var('PS_DUCKDB_PATH') }}\", schema: main, threads: 1}\n"
    ),
    "models/one.sql": "select 1 as id",
    "models/two.sql": "select id from {{ ref('one') }}",
}
PROFILE_CHANGED = "Unable to do partial parsing because profile has changed"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _log(target: Path) -> str:
    return (target / "dbt.log").read_text()


@pytest.mark.dbt
def test_a_state_published_under_another_profile_is_parsed_once_then_shared(project: Path, tmp_path: Path):
    publish_env = {**os.environ, "PS_DUCKDB_PATH": str(tmp_path / "elsewhere.duckdb")}
    run_env = {**os.environ, "PS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}
    shared = tmp_path / "runs" / f"{PARTIAL_PARSE}.default"
    published = DbtProjectRef(project, project / "profiles", None)
    run_dbt(["parse", "--quiet"], env=publish_env, project=published)  # into the project's target/
    assert (project / "target" / PARTIAL_PARSE).exists()
    ref = DbtProjectRef(project, project / "profiles", None, shared)

    first, second = tmp_path / "runs" / "dag_a", tmp_path / "runs" / "dag_b"
    run_dbt(["build"], env=run_env, project=ref, target_path=first)
    assert PROFILE_CHANGED in _log(first)  # the published state was parsed under another path
    assert shared.exists()  # ...so this run's state is offered to the next ones

    result = run_dbt(["build"], env=run_env, project=ref, target_path=second)
    assert result.success and {n.name for n in result.of_type("model")} == {"one", "two"}
    log = _log(second)
    assert "Unable to do partial parsing" not in log
    assert "Partial parsing enabled" in log  # dbt reused the shared state: no full parse

    # a changed model is still picked up: dbt checks the state against the files
    (project / "models" / "two.sql").write_text("select id, 2 as two from {{ ref('one') }}")
    result = run_dbt(["build", "--select", "two"], env=run_env, project=ref, target_path=first)
    assert result.success
    assert "0 files deleted, 0 files added, 1 files changed" in _log(first)


@pytest.mark.dbt
def test_run_form_vars_do_not_replace_the_shared_state(project: Path, tmp_path: Path):
    env = {**os.environ, "PS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}
    shared = tmp_path / "runs" / f"{PARTIAL_PARSE}.default"
    ref = DbtProjectRef(project, project / "profiles", None, shared)
    run_dbt(["parse"], env=env, project=ref, target_path=tmp_path / "runs" / "a")
    before = shared.stat().st_mtime_ns
    run_dbt(["parse", "--vars", "{x: 1}"], env=env, project=ref, target_path=tmp_path / "runs" / "b")
    assert shared.stat().st_mtime_ns == before


def test_the_newer_of_the_published_and_the_shared_state_seeds_a_target(tmp_path: Path):
    project, target, shared = tmp_path / "p", tmp_path / "t", tmp_path / "shared.msgpack"
    (project / "target").mkdir(parents=True)
    published = project / "target" / PARTIAL_PARSE
    published.write_bytes(b"published")
    os.utime(published, (1_000, 1_000))
    shared.write_bytes(b"shared")
    os.utime(shared, (2_000, 2_000))
    private_target(project, target, shared)
    assert (target / PARTIAL_PARSE).read_bytes() == b"shared"

    published.write_bytes(b"republished")  # a new publish (now) is newer than the shared state
    private_target(project, target, shared)
    assert (target / PARTIAL_PARSE).read_bytes() == b"republished"

    share_parse_state(target, shared)  # this target's state is the newest: it is shared
    assert shared.read_bytes() == b"republished"
    assert not list(tmp_path.glob(".*.tmp"))


def test_two_projects_on_one_runs_directory_share_no_state(tmp_path: Path):
    """The shared state is per project (and target): two configs whose dbt projects differ but
    whose runs directory is one never seed each other (a full parse each time, and each replacing
    the other's)."""
    import yaml
    from conftest import REPO_ROOT, pipeline_config

    from orchestrator.config import load_config

    env = {**os.environ, "DBT_RUNS_DIR": str(tmp_path / "runs")}
    demo = load_config(pipeline_config(tmp_path))
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    data = yaml.safe_load((tmp_path / "orchestration.yml").read_text())
    data["dbt"]["project_dir"] = str(REPO_ROOT / "tests" / "fixtures" / "bikeshare" / "dbt")
    (other_dir / "orchestration.yml").write_text(yaml.safe_dump(data))
    other = load_config(other_dir / "orchestration.yml")
    a, b = DbtProjectRef.of(demo, env).parse_state, DbtProjectRef.of(other, env).parse_state
    assert a is not None and b is not None
    assert a.parent == b.parent == tmp_path / "runs" and a != b
    assert DbtProjectRef.of(demo, env).parse_state == a  # stable for one project


@pytest.mark.dbt
def test_a_run_without_manifest_json_still_leaves_what_dbt_retry_reads(project: Path, tmp_path: Path):
    """A DAG's dbt task writes no manifest.json (nothing reads one from a private target), but the
    run_results.json `dbt retry` and the failure alerts read, and the shared parse state, as before."""
    env = {**os.environ, "PS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}
    ref = DbtProjectRef(project, project / "profiles", None, tmp_path / "runs" / f"{PARTIAL_PARSE}.default")
    (project / "models" / "two.sql").write_text("select id from {{ ref('one') }} where no_such_column = 1")
    target = tmp_path / "runs" / "dag_a"
    failed = run_dbt(["build"], env=env, project=ref, target_path=target, raise_on_failure=False, manifest_json=False)
    assert not failed.success and [n.name for n in failed.failed] == ["two"]
    assert not (target / "manifest.json").exists() and not (target / "graph.gpickle").exists()
    assert (target / "run_results.json").exists() and ref.parse_state.exists()

    (project / "models" / "two.sql").write_text(FILES["models/two.sql"])  # fixed: the retry builds what failed
    retried = run_dbt(["retry"], env=env, project=ref, target_path=target, raise_on_failure=False, manifest_json=False)
    assert retried.success and [n.name for n in retried.nodes] == ["two"]
