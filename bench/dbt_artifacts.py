"""What dbt's per-run artifacts cost a dbt task: `dbt build` with dbt's default artifacts against
`--no-write-json` (what a DAG's dbt task passes: runners/dbt.py `run_dbt(manifest_json=False)`).

    .venv/bin/python bench/dbt_artifacts.py [--select tag:core] [--runs 7]

Both in one process, alternating, after one unmeasured run of each (dbt compiles its serialisers on
first use, as the Airflow tasks inherit from the preload); prints each side's times and median.
Builds the selection in the embedded profile's warehouse: run it with no Airflow running.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.config import load_config  # noqa: E402
from orchestrator.runners.dbt import DbtProjectRef, run_dbt  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", default="exec_daily_summary")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    config = load_config(None, "embedded")
    env = config.profile.environment()
    project = DbtProjectRef.of(config, env)
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for manifest_json in (True, False):
                t0 = time.perf_counter()
                done = run_dbt(
                    ["build", "--select", args.select, "--quiet"],
                    env=env,
                    project=project,
                    target_path=Path(tmp) / str(manifest_json),
                    raise_on_failure=False,
                    manifest_json=manifest_json,
                )
                if not done.success:
                    sys.exit(f"dbt build --select {args.select} failed: {done.summary()}")
                if i:
                    times[manifest_json].append(time.perf_counter() - t0)
    for manifest_json, label in ((True, "dbt's artifacts"), (False, "--no-write-json")):
        t = sorted(times[manifest_json])
        print(f"{label:16s} median {statistics.median(t):.3f} s  ({', '.join(f'{x:.2f}' for x in t)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
