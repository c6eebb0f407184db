"""What each import that orchestrator/ keeps inside a function saves: the time to import it on top
of what the module around it has already imported (its top-level imports), in a fresh Python each
time, the best of N runs. A local import stays only where this is worth a comment.

    .venv/bin/python bench/import_cost.py            # the table for BENCHMARKS.md
    .venv/bin/python bench/import_cost.py --runs 5
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (the module that imports it locally, what is already imported there, the local import)
CASES = [
    ("orchestrator/cli.py (`orchestrator up/down/status/run`)", "orchestrator.cli", "orchestrator.local.service"),
    ("orchestrator/cli.py (`orchestrator cycle`)", "orchestrator.cli", "orchestrator.local.direct"),
    ("orchestrator/init/__init__.py (`orchestrator init`)", "orchestrator.cli", "orchestrator.init.command"),
    ("orchestrator/check.py (rendering the DAG files)", "orchestrator.check", "airflow.sdk"),
    ("orchestrator/runners/dbt.py (run_dbt)", "orchestrator.runners.dbt", "dbt.cli.main"),
    ("orchestrator/local/direct.py (advance_sources)", "orchestrator.local.direct", "demo_data.writers"),
    # A DAG file's parse (every file every 30 s, each in a process of its own): what only building a
    # plan, running a task or one other DAG file needs.
    (
        "orchestrator/plan/__init__.py (a plan to build: no valid cache entry)",
        "orchestrator.plan",
        "orchestrator.plan.build, orchestrator.plan.manifest, orchestrator.plan.translator",
    ),
    (
        "orchestrator/airflow/tasks.py (meltano_run)",
        "orchestrator.airflow.tasks",
        "orchestrator.runners.meltano, orchestrator.runners.reconcile, orchestrator.plan.translator",
    ),
    (
        "orchestrator/airflow/state_dag.py (the state task)",
        "orchestrator.airflow.state_dag",
        "orchestrator.plan.translator",
    ),
    (
        "orchestrator/runners/meltano_state.py (a state action)",
        "orchestrator.runners.meltano_state",
        "orchestrator.runners.meltano",
    ),
    (
        "orchestrator/airflow/render.py (the Meltano DAGs)",
        "orchestrator.airflow.render",
        "orchestrator.runners.reconcile",
    ),
    ("orchestrator/airflow/render.py (the dbt DAGs)", "orchestrator.airflow.render", "orchestrator.airflow.dbt_task"),
    (
        "orchestrator/airflow/dag_files.py (the alerting DAG file's routing check)",
        "orchestrator.airflow.dag_files",
        "alerting.routing.config, alerting.routing.schema",
    ),
]

PROBE = "import time, {context}; t = time.perf_counter(); import {target}; print(time.perf_counter() - t)"


def marginal(context: str, target: str, runs: int) -> float:
    """The best of `runs` fresh interpreters: seconds to import `target` once `context` is imported."""
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(context=context, target=target)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per case (the best counts)")
    args = parser.parse_args()
    print(f"| where the import is local | already imported | the local import | its cost (best of {args.runs}) |")
    print("|---|---|---|---|")
    for where, context, target in CASES:
        seconds = marginal(context, target, args.runs)
        print(f"| {where} | `{context}` | `{target}` | {seconds * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
