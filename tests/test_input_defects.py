"""Inputs that used to be accepted silently or crash: each is now a warning or an error naming the
file, through the public interfaces (the CLI, the runners)."""

from __future__ import annotations

import json
import stat

import pytest
from test_cli import _project
from test_plan import SOURCES, V12, model, write_manifest

from orchestrator.cli import main


def _check(tmp_path, nodes, capsys, version=V12, sources=SOURCES):
    args = _project(tmp_path, [])
    write_manifest(tmp_path / "manifest.json", nodes, sources, version=version)
    code = main([*args, "check"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out + out.err


def test_a_manifest_newer_than_known_is_a_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    code, out = _check(
        tmp_path, [model("a", ["core"])], capsys, version="https://schemas.getdbt.com/dbt/manifest/v13.json"
    )
    assert code == 0 and "manifest v13: newer than the newest this tool knows (v12)" in out


def test_a_dependency_missing_from_the_manifest_is_a_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    code, out = _check(tmp_path, [model("a", ["core"], ["model.p.gone"])], capsys)
    assert code == 0
    assert "models/a.sql: model.p.a: depends on model.p.gone, which the manifest does not hold" in out


def test_two_models_building_one_relation_are_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    code, out = _check(tmp_path, [model("a", ["core"], alias="t"), model("b", ["finance"], alias="t")], capsys)
    assert code == 1 and "analytics.t: built by 2 nodes (model.p.a, model.p.b)" in out


def test_a_model_overwriting_a_table_meltano_loads_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    code, out = _check(tmp_path, [model("orders", ["core"], schema="raw_shop")], capsys)
    assert code == 1
    assert "model.p.orders: builds raw_shop.orders, which meltano_tap_shop loads: the model would overwrite" in out


def test_a_deep_chain_of_ephemeral_models_plans_without_a_recursion_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    chain = [model("base", ["core"], ["source.p.shop.orders"])]
    for i in range(5000):
        chain.append(model(f"e{i}", [], [chain[-1]["unique_id"]], materialized="ephemeral"))
    chain.append(model("top", ["finance"], [chain[-1]["unique_id"]]))
    args = _project(tmp_path, [])
    write_manifest(tmp_path / "manifest.json", chain, SOURCES)
    assert main([*args, "plan", "--json"]) == 0
    finance = next(d for d in json.loads(capsys.readouterr().out)["dags"] if d["dag_id"] == "dbt_finance")
    assert finance["schedule"]["assets"] == ["analytics.base"]  # seen through 5,000 ephemeral models


@pytest.mark.subprocess
def test_meltano_output_that_is_not_utf8_does_not_kill_the_run(tmp_path):
    """A plugin may print any bytes: the runner decodes with replacement instead of raising."""
    from orchestrator.runners.meltano import MeltanoError, run_meltano

    fake = tmp_path / "meltano"
    fake.write_text("#!/bin/sh\nprintf 'ok \\377\\376 bytes\\n'\nexit ${FAKE_EXIT:-0}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    lines: list[str] = []
    run_meltano(
        ["run", "x", "y"],
        environment="dev",
        env={"PATH": "/usr/bin:/bin"},
        project_root=tmp_path,
        executable=str(fake),
        log=lines.append,
    )
    assert lines == ["ok \ufffd\ufffd bytes"]
    try:
        run_meltano(
            ["run"],
            environment="dev",
            env={"PATH": "/usr/bin:/bin", "FAKE_EXIT": "3"},
            project_root=tmp_path,
            executable=str(fake),
            log=lines.append,
        )
    except MeltanoError as exc:
        assert exc.returncode == 3 and "\ufffd" in exc.tail[-1]
    else:
        raise AssertionError("exit 3 must raise MeltanoError")


def test_the_state_dag_refuses_a_quoted_dry_run_instead_of_reading_it_as_true():
    """`{"dry_run": "false"}` in a trigger's conf used to be coerced with bool(): now it is refused
    before Meltano is called (the DAG passes the value through as it came)."""
    import inspect

    import pytest

    from orchestrator.airflow import state_dag
    from orchestrator.config import REPO_ROOT, load_config
    from orchestrator.plan.translator import Translator
    from orchestrator.runners.meltano_state import StateError, run_state_action

    assert "bool(" not in inspect.getsource(state_dag._run)
    with pytest.raises(StateError, match="dry_run must be true or false, got 'false'"):
        run_state_action(
            "clear",
            "dev:tap-shop-to-target-duckdb",
            profile=load_config(profile="embedded").profile,
            dry_run="false",
            backup_dir="/nonexistent",
            project_root=REPO_ROOT / "meltano",
            names=Translator(),
        )  # type: ignore[arg-type]
