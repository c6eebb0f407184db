"""astronomer-cosmos, the way its docs render a dbt project from a manifest: one DbtDag per tag.

The DAG file bench/parse_cost.py times against our dags/ (in its own virtualenv, see
bench/cosmos/make_venv.py). What it renders comes from a JSON spec named by $COSMOS_BENCH_SPEC:

    {"manifest": "/abs/manifest.json",        # plain JSON (cosmos reads no .gz)
     "project_dir": "/abs/project",           # ExecutionConfig.dbt_project_path
     "project_name": "jaffle_shop",
     "profiles_yml": "/abs/profiles.yml",     # a duckdb profile: nothing is touched at parse time
     "profile_name": "bench", "target_name": "duckdb",
     "tags": ["finance", ...],                # one DbtDag per tag: select tag:<tag>
     "catch_all": true}                       # plus one DbtDag of the models with none of the tags
                                              # (like our dbt_untagged DAG), by exclude

Everything else is cosmos' default (ExecutionMode.LOCAL, TestBehavior.AFTER_EACH, emit_datasets=True).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime

from airflow.sdk import DAG  # noqa: F401  (Airflow's safe mode parses files that mention "airflow" and "dag")
from cosmos import (
    DbtDag,
    ExecutionConfig,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
)

with open(os.environ["COSMOS_BENCH_SPEC"], encoding="utf-8") as fh:
    SPEC = json.load(fh)

profile_config = ProfileConfig(profile_name=SPEC.get("profile_name", "bench"),
                               target_name=SPEC.get("target_name", "duckdb"),
                               profiles_yml_filepath=SPEC["profiles_yml"])


def _dag(dag_id: str, render_config: RenderConfig) -> DbtDag:
    return DbtDag(
        dag_id=dag_id,
        project_config=ProjectConfig(manifest_path=SPEC["manifest"], project_name=SPEC["project_name"]),
        profile_config=profile_config,
        execution_config=ExecutionConfig(dbt_project_path=SPEC["project_dir"]),
        render_config=render_config,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,
    )


def _slug(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)


for tag in SPEC["tags"]:
    dag_id = f"cosmos_{_slug(tag)}"
    globals()[dag_id] = _dag(dag_id, RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=[f"tag:{tag}"]))

if SPEC.get("catch_all"):
    globals()["cosmos_untagged"] = _dag("cosmos_untagged", RenderConfig(
        load_method=LoadMode.DBT_MANIFEST, exclude=[f"tag:{t}" for t in SPEC["tags"]]))
