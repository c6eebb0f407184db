"""dbt DAG task vs a bare `dbt build` of the same models, on the embedded warehouse.

    .venv/bin/python bench/dbt_overhead.py [--runs 5]

Needs a loaded warehouse (`make run` or `orchestrator cycle` first). For each of
the plan's dbt DAGs, medians (min-max) of wall time in seconds:
  bare    `dbt build <the DAG's selector>` as a CLI process (project target dir, partial parse)
  ours    what the DAG's task runs: a fresh Python process calling orchestrator.tasks' runner
          (in-process dbtRunner, private target dir seeded with the partial-parse state)
The task's Airflow overhead on top (process start, Task SDK) is in the e2e cycle report.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.plan import build_plan  # noqa: E402
from orchestrator.profiles import load_profile  # noqa: E402


def _time(argv: list[str], env: dict, cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = load_profile().environment()
    plan = build_plan(cache_dir=None)
    dbt = str(Path(sys.executable).with_name("dbt"))
    print("| DAG | selector | bare dbt build s | our task runner s | ratio |")
    print("|---|---|---|---|---|")
    for spec in plan.of_kind("dbt"):
        task = spec.tasks[0]
        bare_argv = [dbt, *task.args, "--target", env["DBT_TARGET"], "--profiles-dir", ".", "--quiet"]
        code = ("from orchestrator.runners.dbt import run_dbt; import os, sys; "
                f"run_dbt({list(task.args) + ['--target', env['DBT_TARGET'], '--quiet']!r}, env=dict(os.environ), "
                f"target_path={str(ROOT / 'var' / 'dbt' / 'bench' / spec.dag_id)!r})")
        ours_argv = [sys.executable, "-c", code]
        _time(ours_argv, env, ROOT)  # seed the private target once, as the first DAG run does
        bare, ours = [], []
        for _ in range(args.runs):  # interleaved, so drift in machine load hits both alike
            bare.append(_time(bare_argv, env, ROOT / "dbt_project"))
            ours.append(_time(ours_argv, env, ROOT))
        mb, mo = statistics.median(bare), statistics.median(ours)
        print(f"| {spec.dag_id} | `{' '.join(task.args[1:])}` | {mb:.2f} ({min(bare):.2f}-{max(bare):.2f}) | "
              f"{mo:.2f} ({min(ours):.2f}-{max(ours):.2f}) | {mo / mb:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
