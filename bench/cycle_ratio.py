"""The demo's cycle through Airflow against the direct run, back to back on one checkout.

    .venv/bin/python bench/cycle_ratio.py [--rounds 1] [--config orchestration.yml] [--json PATH]

Each round runs `orchestrator cycle` (Meltano and dbt directly, no Airflow) and then `orchestrator
run` (the same cycle through a local Airflow started for it), each writing the next source day,
and prints:

  ratio      Airflow's cycle wall time (first run start -> last run end, start-up not counted) over
             the direct run's wall time: the issue's goal is at most 1.5
  hop        Asset event -> downstream run start, median (goal under 0.5 s)
  start-up   Airflow's start-up and its parts (db migrate, components healthy with every DAG parsed
             again and the pools made, scheduler healthy), from the run's own console
  where      from the metadata DB after the run, summed over every task try: waiting for a pool
             slot (the DuckDB writer's single slot), the executor's queue -> the task's start
             (process start-up), and each task's run time against what its runner reported
             (Meltano's and dbt's own duration_s in the Asset events): the task process's overhead
             (imports, plan load, Task SDK calls); the dbt tasks' share; the API server's slowest
             task-start call (one is slow after each API server start)

Only the embedded profile (SQLite, LocalExecutor), which is what `make run` uses. Writes the figures
to --json (default var/bench/cycle_ratio.json). Run it on an otherwise quiet machine, or compare
ratios taken in the same run: absolute times swing with load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.config import load_config  # noqa: E402


def _cli(config: Path, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--config", str(config), *args],
        cwd=ROOT,
        env={**os.environ, "PIPELINE_PROFILE": "embedded"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.monotonic() - t0
    if done.returncode:
        tail = done.stdout[-3000:] + done.stderr[-3000:]
        sys.exit(f"orchestrator {' '.join(args)} failed ({done.returncode}):\n{tail}")
    return wall, done.stdout


def _float(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def where_the_time_goes(db: Path, since: str) -> dict[str, float]:
    """Seconds summed over the task tries of runs started since `since` (SQLite's text stamp)."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        tis = conn.execute(
            "SELECT ti.dag_id, ti.task_id, ti.run_id, ti.pool, ti.queued_dttm, ti.scheduled_dttm, ti.start_date,"
            " ti.end_date FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id"
            " WHERE r.start_date >= ? AND ti.start_date IS NOT NULL",
            (since,),
        ).fetchall()
        events = conn.execute(
            "SELECT source_dag_id, source_task_id, source_run_id, extra FROM asset_event WHERE timestamp >= ?",
            (since,),
        ).fetchall()
    reported: dict[tuple[str, str, str], float] = {}
    for e in events:
        extra = json.loads(e["extra"] or "{}")
        key = (e["source_dag_id"], e["source_task_id"], e["source_run_id"])
        if e["source_dag_id"].startswith("meltano_"):  # one run for every table: its duration once
            reported[key] = max(reported.get(key, 0.0), float(extra.get("duration_s") or 0))
        else:  # dbt: per model; the models of one task run one after the other (threads 1 on DuckDB)
            reported[key] = reported.get(key, 0.0) + float(extra.get("duration_s") or 0)
    pool_wait = queue_to_start = run = overhead = dbt_run = 0.0
    for ti in tis:
        scheduled, queued, start, end = (
            _ts(ti["scheduled_dttm"]),
            _ts(ti["queued_dttm"]),
            _ts(ti["start_date"]),
            _ts(ti["end_date"]),
        )
        if scheduled and queued and ti["pool"] != "default_pool":
            pool_wait += max(0.0, (queued - scheduled).total_seconds())
        if queued and start:
            queue_to_start += max(0.0, (start - queued).total_seconds())
        if start and end:
            took = (end - start).total_seconds()
            run += took
            if ti["task_id"] == "dbt_build":
                dbt_run += took
            if (key := (ti["dag_id"], ti["task_id"], ti["run_id"])) in reported:
                overhead += max(0.0, took - reported[key])
    return {
        "task tries": float(len(tis)),
        "pool slot wait (scheduled -> queued), s": round(pool_wait, 1),
        "executor queue -> task start, s": round(queue_to_start, 1),
        "task run time, s": round(run, 1),
        "of which not Meltano's or dbt's own time, s": round(overhead, 1),
        "dbt tasks' run time, s": round(dbt_run, 1),
    }


def slowest_task_start_call(log: Path, since: str) -> float | None:
    """The longest the API server took for a task start (`PATCH /execution/task-instances/<id>/run`)
    logged since `since`, s: the first after its start took 8-25 s on 2 loaded cores, every later one
    under 0.5 s, and it delays whichever task starts first (BENCHMARKS.md). The access log line is
    written when a request ends, so the slow first one is not always the first line."""
    pattern = re.compile(r"^(\S+)Z .*duration_us=(\d+) .*method=PATCH path=/execution/task-instances/\S+/run ")
    took = [
        int(m.group(2)) / 1e6
        for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])
        if (m := pattern.match(line)) and m.group(1).replace("T", " ") >= since
    ]
    return round(max(took), 1) if took else None


def one_round(config_path: Path) -> dict:
    config = load_config(config_path, "embedded")
    direct_wall, direct_out = _cli(config_path, "cycle")
    print(f"direct: {direct_wall:.1f}s", file=sys.stderr)
    since = datetime.now(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    run_wall, out = _cli(config_path, "run")
    result = {
        "direct_wall_s": round(direct_wall, 1),
        "airflow_run_wall_s": round(run_wall, 1),
        "airflow_startup_s": _float(r"up in ([\d.]+)s", out),
        "airflow_cycle_s": _float(r"Cycle wall time \(first run start -> last run end\): ([\d.]+)s", out),
        "hop_median_s": _float(r"median ([\d.]+)s", out),
        "startup_parts": dict(re.findall(r"(db migrate|before scheduler|healthy) ([\d.]+)s", out)),
        "where": where_the_time_goes(config.airflow_home() / "airflow.db", since),
        "slowest_task_start_call_s": slowest_task_start_call(config.airflow_home() / "logs" / "api-server.log", since),
        "retried": _float(r"(\d+) task try\(s\) failed and were retried", out) or 0,
    }
    if result["airflow_cycle_s"]:
        result["ratio"] = round(result["airflow_cycle_s"] / direct_wall, 2)
    print(f"airflow: {json.dumps(result)}", file=sys.stderr)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--config", type=Path, default=ROOT / "orchestration.yml")
    ap.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "cycle_ratio.json")
    args = ap.parse_args()
    rounds = [one_round(args.config.resolve()) for _ in range(args.rounds)]
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| round | direct | Airflow cycle | ratio | hop median | Airflow start-up (parts) | retried tries |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(rounds, 1):
        parts = ", ".join(f"{k} {v}s" for k, v in r["startup_parts"].items())
        print(
            f"| {i} | {r['direct_wall_s']}s | {r['airflow_cycle_s']}s | {r.get('ratio')} | {r['hop_median_s']}s "
            f"| {r['airflow_startup_s']}s ({parts}) | {r['retried']:.0f} |"
        )
    print("\nWhere the Airflow cycle's task time went (summed over task tries):\n")
    for i, r in enumerate(rounds, 1):
        print(f"round {i}: " + "; ".join(f"{k} {v:g}" for k, v in r["where"].items()))
        print(f"  the API server's slowest task start (PATCH .../run): {r['slowest_task_start_call_s']} s")
    if len(rounds) > 1:
        print(f"\nmedian ratio {statistics.median(r['ratio'] for r in rounds if r.get('ratio')):.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rounds, indent=1))


if __name__ == "__main__":
    main()
