"""The restructuring of the code (layers, translator, per-kind specs, typed config) changed no
behaviour: the same DAGs, kinds, schedules, outlets and Asset URIs as the snapshot taken before
it (tests/golden/plan_before_refactor.json.gz), on the demo's two profiles and on the six real
manifests with their tag sets.

Updated once on purpose since (issue 17, a relation is its database, schema and name): on the real
manifests every dbt Asset's URI names the database its manifest gives (`duckdb://analytics/...`
where the demo profile's `warehouse_uri` names `warehouse`), and GitLab's dbt_untagged no longer
waits for the SNAPSHOTS.snapshots.* snapshots when it reads the RAW.snapshots.* sources. Asset names,
DAGs and every other schedule are unchanged."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from test_placement import MANIFESTS, REAL_MANIFESTS

from orchestrator.config import REPO_ROOT, load_config
from orchestrator.plan import plan_from_config

GOLDEN = json.loads(gzip.decompress((Path(__file__).parent / "golden" / "plan_before_refactor.json.gz").read_bytes()))


def _snapshot(plan) -> dict:
    dags = {
        d.dag_id: {
            "kind": d.kind,
            "schedule": {"cron": d.schedule.cron, "assets": list(d.schedule.assets)},
            "outlets": sorted(d.outlets),
        }
        for d in plan.dags
    }
    return {"dags": dags, "assets": {n: a.uri for n, a in sorted(plan.assets.items())}}


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_the_plan_is_what_it_was_before_the_restructuring(case, monkeypatch, installed):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    expected = GOLDEN[case]
    name, variant = case.split("/")
    if name == "demo":
        config = load_config(REPO_ROOT / "orchestration.yml", variant)
    else:
        [manifest] = sorted(REAL_MANIFESTS.glob(MANIFESTS[name]))
        config = load_config(REPO_ROOT / "orchestration.yml", "embedded").with_overrides(
            manifest=manifest, tags=tuple(expected["tags"])
        )
    actual = _snapshot(plan_from_config(config, cache_dir=None))
    assert actual["dags"] == expected["dags"]
    assert actual["assets"] == expected["assets"]
