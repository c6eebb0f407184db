"""The `orchestrator` CLI on the plan: plan --json, check, graph, and their exit codes."""

from __future__ import annotations

import json

from test_plan import CONFIG, EXTRACTORS, MELTANO, SOURCES, model, write_manifest

from orchestrator.cli import main


def _project(tmp_path, nodes):
    (tmp_path / "meltano" / "extract").mkdir(parents=True)
    (tmp_path / "meltano" / "meltano.yml").write_text(MELTANO)
    (tmp_path / "meltano" / "extract" / "taps.meltano.yml").write_text(EXTRACTORS)
    (tmp_path / "orchestration.yml").write_text(CONFIG)
    (tmp_path / "alerting.yml").write_text("default: {slack_channel: '#alerts'}\n")
    write_manifest(tmp_path / "manifest.json", nodes, SOURCES)
    return ["--config", str(tmp_path / "orchestration.yml")]


def test_plan_json_is_the_documented_shape(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    args = _project(tmp_path, [model("a", ["core"], ["source.p.shop.orders"]), model("b", ["finance"], ["model.p.a"])])
    assert main([*args, "plan", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"profile", "dags", "assets", "warnings", "errors", "placement"}
    finance = next(d for d in data["dags"] if d["dag_id"] == "dbt_finance")
    assert finance["schedule"] == {"cron": None, "assets": ["analytics.a"]}
    assert finance["tag"] == "finance" and finance["models"] == ["model.p.b"]


def test_flags_override_the_config(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    args = _project(tmp_path, [model("a", ["core", "finance"], ["source.p.shop.orders"])])
    assert main([*args, "plan", "--json", "--tags", "finance,core"]) == 0
    dags = {d["dag_id"] for d in json.loads(capsys.readouterr().out)["dags"]}
    assert "dbt_finance" in dags and "dbt_core" not in dags
    assert main([*args, "plan", "--json", "--mode", "monolith"]) == 0
    assert [d["dag_id"] for d in json.loads(capsys.readouterr().out)["dags"] if d["kind"] == "dbt"] == ["dbt_all"]


def test_check_warns_names_the_file_and_exits_1_on_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    args = _project(tmp_path, [model("a", ["core", "finance"], ["source.p.legacy.ledger"])])
    assert main([*args, "check"]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: models/a.sql: model.p.a: orchestration tags core, finance: the first in precedence order: "
        "built by dbt_core" in out
    )
    assert "warning: models/sources.yml: source.p.legacy.ledger (raw_legacy.ledger)" in out
    args = _project(
        tmp_path / "cyc",
        [
            model("f1", ["finance"]),
            model("m1", ["marketing"], ["model.p.f1"]),
            model("f2", ["finance"], ["model.p.m1"]),
        ],
    )
    # A cycle the tags force is split into stages by default (dbt.on_forced_cycle: split): a warning
    # that names the chain and the smallest tag change, not a refusal.
    assert main([*args, "check"]) == 0
    out = capsys.readouterr().out
    assert "cycle between dbt DAGs" in out and "dbt_finance into 2 stages" in out


def test_a_broken_manifest_exits_2_naming_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    args = _project(tmp_path, [])
    (tmp_path / "broken.json").write_text('{"metadata": {')
    assert main([*args, "check", "--manifest", str(tmp_path / "broken.json")]) == 2
    assert f"error: {tmp_path / 'broken.json'}: truncated or not valid JSON" in capsys.readouterr().err


def test_graph_is_mermaid_from_tick_to_dbt(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    args = _project(tmp_path, [model("a", ["core"], ["source.p.shop.orders"]), model("b", ["finance"], ["model.p.a"])])
    assert main([*args, "graph"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "flowchart LR"
    assert '    n_tick -- "tick" --> n_meltano_tap_shop' in out
    assert '    n_meltano_tap_shop -- "raw_shop.orders" --> n_dbt_core' in out
    assert '    n_dbt_core -- "analytics.a" --> n_dbt_finance' in out


def test_check_refuses_a_secret_in_the_routing_file(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    args = _project(tmp_path, [model("a", ["core"], ["source.p.shop.orders"])])
    (tmp_path / "alerting.yml").write_text("slack: {token: xoxb-123456}\n")
    assert main([*args, "check"]) == 2  # a file that cannot be validated
    err = capsys.readouterr().err
    assert "alerting.yml: slack.token: secrets do not belong in the routing config" in err
    assert "xoxb-123456" not in err


def test_plan_prints_whole_schedules_and_explains_every_node_placed_by_a_rule(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    nodes = [
        model("a", ["core"], ["source.p.shop.orders", "source.p.shop.customers", "source.p.crm.accounts"]),
        model("between", [], ["model.p.a"]),
        model("b", ["core"], ["model.p.between"]),
        model("c", ["finance", "core"], ["model.p.b"]),
        model("loose", [], ["model.p.c"]),
    ]
    args = _project(tmp_path, nodes)
    assert main([*args, "plan"]) == 0
    out = capsys.readouterr().out
    assert "raw_crm.accounts" not in out  # tap_crm loads schema tap_crm in this project
    for asset in ("raw_shop.customers", "& raw_shop.orders", "& tap_crm.accounts"):
        assert asset in out  # never cut off
    assert "model.p.between -> dbt_core: no orchestration tag, between models of dbt_core" in out
    assert "model.p.c -> dbt_core: orchestration tags core, finance: the first in precedence order" in out
    assert "1 node(s) with no orchestration tag -> dbt_untagged: catch-all stage 1" in out
    assert main([*args, "plan", "--json"]) == 0
    placement = json.loads(capsys.readouterr().out)["placement"]
    assert placement["model.p.loose"] == {
        "dag_id": "dbt_untagged",
        "rule": "catch_all",
        "reason": "no orchestration tag: catch-all stage 1",
    }
    assert set(placement) == {"model.p.between", "model.p.c", "model.p.loose"}
