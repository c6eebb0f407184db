"""bench/parse_cost.py's machinery, fast: the probe loads our dags/ on a foreign manifest and
renders exactly the plan; the classic Meltano generator renders one DAG per schedule; tag choice
leaves a plan without errors. (The cosmos side runs only in bench/parse_cost.py: its own venv.)"""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_MANIFESTS = REPO / "tests" / "data" / "manifests"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pc = _load("bench_parse_cost", REPO / "bench" / "parse_cost.py")


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setattr(pc, "WORK", tmp_path)
    return tmp_path


def _jaffle() -> Path:
    found = sorted(REAL_MANIFESTS.glob("cosmos_*jaffle_shop*.json.gz"))
    assert found, f"no jaffle_shop manifest in {REAL_MANIFESTS} (vendored: tests/data/README.md)"
    return found[0]


@pytest.mark.subprocess
def test_probe_renders_the_plan_on_a_foreign_manifest(work):
    case = pc.prepare_real(_jaffle())
    assert (case.project_dir / "dbt_project.yml").exists() and case.project_name == "jaffle_shop"
    assert list(case.project_dir.rglob("*.sql"))  # models written from the manifest's raw code
    pc.choose_tags(case)
    assert case.tags == ["customers"] and case.catch_all
    assert pc.expected_cosmos(case) == {"cosmos_customers": 1, "cosmos_untagged": 7}  # 5 models + 3 seeds
    systems = pc.dbt_systems(case, skip={"cosmos", "model"}, cosmos_python=None, profiles_yml=work / "p.yml")
    warm = systems[0]
    result = pc.probe(warm, serialize=True, log_path=work / "probe.log")
    assert warm.check(result) is None, (work / "probe.log").read_text()[-3000:]
    assert {"dbt_customers", "dbt_untagged", "tick", "meltano_state"} <= set(result["dags"])
    assert result["dagbag_s"] > 0 and result["wall_s"] > result["dagbag_s"] and result["serialize_s"] > 0
    assert result["rss_peak_kib"] >= result["rss_before_kib"] > 0
    assert list((work / "cache" / case.name).glob("plan-*.msgpack"))  # the warm system really caches


def test_choose_tags_leaves_a_plan_without_errors(work):
    """Treated as a real manifest (tags by frequency), a generated project has cycles between tag DAGs:
    tags on them are dropped until the plan renders."""
    gen = pc._load_gen()
    out = work / "gen"
    gen.generate(400, 8, out, seed=1)
    case = pc.Case(
        name="g", label="g", manifest=out / "target" / "manifest.json", project_dir=out, project_name=gen.PROJECT
    )
    pc.choose_tags(case)
    config = pc.write_config("g", manifest=case.manifest, project_dir=out, tags=case.tags)
    plan = pc.plan_from_config(pc.load_config(config), kinds=("dbt",), cache_dir=None)
    assert not plan.errors
    assert len(case.tags) + len(case.dropped_tags) >= 8


@pytest.mark.subprocess
def test_classic_generator_builds_one_dag_per_schedule(tmp_path, monkeypatch):
    """The classic DAG file with a stand-in `meltano` that prints a schedule export (no real Meltano)."""
    export = {
        "schedules": {
            "job": [
                {
                    "name": f"daily-{s}",
                    "interval": "@daily",
                    "cron_interval": "0 0 * * *",
                    "env": {},
                    "job": {"name": f"{s}-to-duckdb", "tasks": [f"tap-{s} target-duckdb"]},
                }
                for s in ("shop", "crm")
            ],
            "elt": [],
        }
    }
    fake = tmp_path / ".meltano" / "run" / "bin"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(export)}\nEOF\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(pc.CLASSIC_DAG))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["meltano_daily-crm_crm-to-duckdb", "meltano_daily-shop_shop-to-duckdb"]
    task = bag.dags["meltano_daily-shop_shop-to-duckdb"].tasks[0]
    assert task.bash_command == f"cd {tmp_path}; .meltano/run/bin run tap-shop target-duckdb"


def test_cosmos_dag_template_compiles():
    compile(pc.COSMOS_DAG.read_text(encoding="utf-8"), str(pc.COSMOS_DAG), "exec")
