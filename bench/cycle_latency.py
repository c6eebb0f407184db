"""Cycle latency through a real Airflow 3, with trivial work: what the orchestration itself costs.

    .venv/bin/python bench/cycle_latency.py [--cycles 5] [--configs embedded,production,embedded-idle1s]

Builds a DAG folder in a temp dir with the SAME topology as this repo's plan (`orchestrator plan
--json`: tick -> the Meltano DAGs, each emitting its raw_* Assets -> the dbt DAGs, each scheduled
on the AND of the Assets its models read and emitting its relations), the same pools (the DuckDB
warehouse pool, 1 slot) and max_active_runs=1, but every task a PythonOperator that just succeeds
(its outlets emit the same Assets). The tick has no cron here: the benchmark triggers it.

Per configuration it starts Airflow with orchestrator.local.launcher.LocalAirflow, runs one warm-up
cycle (not counted: the first task of an instance forks the executor's workers), then --cycles
cycles one after the other, each: trigger `tick`, wait for every DAG (orchestrator.local.report).

  cycle  the tick's Asset event -> the end of the last dbt DAG run
  hop    an Asset event -> the start of the downstream DAG run it completes (RunReport.lag; for a
         DAG on several Assets, the last of its triggering events): 6 per cycle
  run    a trivial one-task DAG run that did not wait for the pool, start -> end: Airflow's own
         cost of running one task (schedule it, queue it, start the task process, Task SDK
         handshake, record success, end the run)
  step   runs of one pool (1 slot) ready at once run back to back (the 3 Meltano DAGs, dbt_finance
         and dbt_marketing): end of the task before -> end of the next one, i.e. what one more
         trivial task costs in a chain that runs one task at a time

Configurations:
  embedded         SQLite metadata, LocalExecutor: the embedded default (scheduler_idle_sleep_time 0.25 s)
  production       PostgreSQL metadata (database bench_cycle_latency, dropped and recreated),
                   CeleryExecutor, Redis broker (db 7, flushed first), 2 workers.
  embedded-idle1s  embedded with Airflow's default scheduler_idle_sleep_time (1 s)

Prints Markdown tables; writes everything (every cycle, hop and run) to --json
(default var/bench/cycle_latency.json). Needs the local PostgreSQL and Redis for `production`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.local.airflow_cycle import cycle_dag_ids  # noqa: E402
from orchestrator.local.launcher import (  # noqa: E402
    LocalAirflow,
    celery_env,
    cycle_report,
    parse_ts,
    utcnow,
)
from orchestrator.plan import build_plan  # noqa: E402

TARGET_HOP_S = 2.0
PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"
CONFIGS = {
    "embedded": {"label": "SQLite, LocalExecutor, idle sleep 0.25 s (the embedded default)"},
    "production": {
        "label": "PostgreSQL, CeleryExecutor + Redis, 2 workers, idle sleep 0.25 s",
        "executor": "CeleryExecutor",
        "database": "bench_cycle_latency",
        "redis_db": 7,
    },
    "embedded-idle1s": {
        "label": "SQLite, LocalExecutor, idle sleep 1 s (Airflow's default)",
        "extra": {"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1"},
    },
}

DAG_FILE = '''"""Synthetic DAGs for bench/cycle_latency.py: the plan's topology, trivial tasks."""
import json

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset

TOPOLOGY = json.loads(r"""{topology}""")


def _succeed():
    return None


def _assets(names):
    return [Asset(name=n, uri=TOPOLOGY["assets"][n]) for n in names]


for spec in TOPOLOGY["dags"]:
    with DAG(dag_id=spec["dag_id"], schedule=_assets(spec["schedule"]) or None, catchup=False,
             max_active_runs=1, tags=["bench"]) as dag:
        ops = {{t["task_id"]: PythonOperator(task_id=t["task_id"], python_callable=_succeed,
                                             outlets=_assets(t["outlets"]), pool=spec["pool"] or "default_pool")
               for t in spec["tasks"]}}
        for t in spec["tasks"]:
            for up in t["upstream"]:
                ops[up] >> ops[t["task_id"]]
    globals()[spec["dag_id"]] = dag
'''


def topology() -> dict:
    """The cycle's DAGs of this repo's plan (tick, Meltano, dbt): schedules, tasks, outlets, pools."""
    plan = build_plan(kinds=("tick", "meltano", "dbt"), cache_dir=None)
    by_id = {d.dag_id: d for d in plan.dags}
    dags = []
    for dag_id in cycle_dag_ids(plan):
        d = by_id[dag_id]
        dags.append(
            {
                "dag_id": dag_id,
                "kind": d.kind,
                "schedule": list(d.schedule.assets),
                "pool": d.pool,
                "tasks": [
                    {"task_id": t.task_id, "upstream": list(t.upstream), "outlets": list(t.outlets)} for t in d.tasks
                ],
            }
        )
    used = {a for d in dags for a in (*d["schedule"], *(o for t in d["tasks"] for o in t["outlets"]))}
    return {"profile": plan.profile, "dags": dags, "assets": {a: plan.assets[a] for a in sorted(used)}}


def write_dags(folder: Path, topo: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_cycle_dags.py").write_text(DAG_FILE.format(topology=json.dumps(topo, indent=1)))


# --------------------------------------------------------------------------- services


def reset_postgres(database: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return f"{PG_SERVER}/{database}"


def drop_postgres(database: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        engine.dispose()


def flush_redis(db: int) -> str:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    client.close()
    return f"redis://127.0.0.1:6379/{db}"


# --------------------------------------------------------------------------- one configuration


def _secs(a, b) -> float:
    return (b - a).total_seconds()


def one_cycle(af: LocalAirflow, topo: dict, timeout: float) -> dict:
    client = af.client
    dag_ids = [d["dag_id"] for d in topo["dags"]]
    kinds = {d["dag_id"]: d["kind"] for d in topo["dags"]}
    since = utcnow()
    client.trigger(dag_ids[0])
    reports = cycle_report(client, since, dag_ids, timeout=timeout)
    failed = [r.dag_id for r in reports if r.state != "success"]
    if failed:
        raise RuntimeError(f"runs not successful: {failed} (logs in {af.log_dir})")
    tick = reports[0]
    tick_event = min(parse_ts(e["timestamp"]) for e in tick.emitted)
    last_end = max(r.end for r in reports if kinds[r.dag_id] == "dbt")
    pools = {d["dag_id"]: d["pool"] for d in topo["dags"]}
    hops, runs = [], []
    for r in reports:
        ti = client.task_instances(r.dag_id, r.run_id)
        first_start = min(parse_ts(t["start_date"]) for t in ti if t["start_date"])
        runs.append(
            {
                "dag_id": r.dag_id,
                "run_id": r.run_id,
                "start": r.start,
                "end": r.end,
                "duration": r.duration,
                "pool": pools[r.dag_id],
                "queued": min(parse_ts(t["queued_when"]) for t in ti if t["queued_when"]),
                "task_end": max(parse_ts(t["end_date"]) for t in ti if t["end_date"]),
                "run_start_to_task_start": _secs(r.start, first_start),
                "task_durations": [t["duration"] for t in ti],
            }
        )
        if r.lag is not None:
            last = max(r.triggered_by, key=lambda e: parse_ts(e["timestamp"]))
            hops.append(
                {
                    "hop": f"{last['source_dag_id']} -> {r.dag_id}",
                    "lag": r.lag,
                    "events": sorted(e["name"] for e in r.triggered_by),
                }
            )
    # Runs of one pool (1 slot) that were ready together run back to back: a run that waited for
    # the slot starts its task only after the one before it ended. Its "serial step" (end of the task
    # before -> end of its own) is what one more trivial task costs in such a chain; the runs that
    # did not wait give the plain start -> end of a one-task run.
    for run in runs:
        before = [
            o["task_end"]
            for o in runs
            if o is not run
            and run["pool"]
            and o["pool"] == run["pool"]
            and run["start"] < o["task_end"] <= run["queued"]
        ]
        run["waited_for_pool"] = bool(before)
        run["serial_step"] = _secs(max(before), run["task_end"]) if before else None
    for run in runs:
        for key in ("start", "end", "queued", "task_end"):
            run[key] = run[key].isoformat()
    return {
        "cycle": _secs(tick_event, last_end),
        "trigger_to_last_end": _secs(since, last_end),
        "tick_event_at": tick_event.isoformat(),
        "hops": hops,
        "runs": runs,
    }


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(cycles: list[dict]) -> dict:
    hops = [h["lag"] for c in cycles for h in c["hops"]]
    per_hop: dict[str, list[float]] = {}
    for c in cycles:
        for h in c["hops"]:
            per_hop.setdefault(h["hop"], []).append(h["lag"])
    return {
        "cycle": _stats([c["cycle"] for c in cycles]),
        "trigger_to_last_end": _stats([c["trigger_to_last_end"] for c in cycles]),
        "hop": _stats(hops),
        "hops_under_target": sum(v < TARGET_HOP_S for v in hops),
        "per_hop": {k: _stats(v) for k, v in per_hop.items()},
        "trivial_run_duration": _stats([r["duration"] for c in cycles for r in c["runs"] if not r["waited_for_pool"]]),
        "serial_step": _stats([r["serial_step"] for c in cycles for r in c["runs"] if r["serial_step"] is not None]),
        "run_start_to_task_start": _stats([r["run_start_to_task_start"] for c in cycles for r in c["runs"]]),
        "task_duration": _stats([d for c in cycles for r in c["runs"] for d in r["task_durations"] if d is not None]),
    }


def run_config(
    name: str, topo: dict, dags: Path, work: Path, cycles: int, warmup: int, timeout: float, keep_db: bool
) -> dict:
    spec = CONFIGS[name]
    kwargs: dict = {"extra": dict(spec.get("extra", {}))}
    if spec.get("executor") == "CeleryExecutor":
        url = reset_postgres(spec["database"])
        broker = flush_redis(spec["redis_db"])
        kwargs.update(executor="CeleryExecutor", workers=2, metadata_db_url=url)
        kwargs["extra"].update(celery_env(url, broker))
    home = work / name
    shutil.rmtree(home, ignore_errors=True)
    load_before = os.getloadavg()
    af = LocalAirflow(home, dags, **kwargs)
    out: dict = {
        "label": spec["label"],
        "executor": af.executor,
        "workers": af.workers,
        "metadata": "postgresql" if af.metadata_db_url else "sqlite",
        "idle_sleep_s": float(af.env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"]),
        "loadavg_before": load_before,
    }
    try:
        with af:
            out["startup_s"] = af.startup_seconds
            print(
                f"[{name}] Airflow up in {af.startup_seconds:.1f}s ({af.url}, home {home})", file=sys.stderr, flush=True
            )
            client = af.client
            for pool in sorted({d["pool"] for d in topo["dags"] if d["pool"]}):
                client.create_pool(pool, 1, "as the plan's warehouse pool: one slot")
            dag_ids = [d["dag_id"] for d in topo["dags"]]
            client.wait_for_dags(dag_ids, timeout=180)
            for dag_id in dag_ids:
                client.unpause(dag_id)
            done = []
            for i in range(warmup + cycles):
                c = one_cycle(af, topo, timeout)
                c["warmup"] = i < warmup
                done.append(c)
                hops = [h["lag"] for h in c["hops"]]
                print(
                    f"[{name}] cycle {i + 1}{' (warm-up)' if c['warmup'] else ''}: {c['cycle']:.1f}s tick event "
                    f"-> last dbt end; hops median {statistics.median(hops):.2f}s max {max(hops):.2f}s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if spec.get("database") and not keep_db:
            drop_postgres(spec["database"])
    out["loadavg_after"] = os.getloadavg()
    out["cycles"] = done
    out["summary"] = summarize([c for c in done if not c["warmup"]])
    return out


# --------------------------------------------------------------------------- report


def _fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def tables(result: dict) -> str:
    configs = result["configs"]
    header = (
        "| configuration | setup | cycles | tick event → last dbt DAG end s | hop s (all hops) | hops < 2 s | "
        "one-task DAG run s | serial step s | Airflow start-up s |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for name, c in configs.items():
        s = c["summary"]
        lines.append(
            f"| {name} | {c['label']} | {s['cycle']['n']} | {_fmt(s['cycle'], 1)} | {_fmt(s['hop'])} | "
            f"{s['hops_under_target']}/{s['hop']['n']} | {_fmt(s['trivial_run_duration'])} | "
            f"{_fmt(s['serial_step'])} | {c['startup_s']:.0f} |"
        )
    hops = list(dict.fromkeys(h for c in configs.values() for h in c["summary"]["per_hop"]))
    lines += [
        "",
        "| hop (Asset event -> downstream DAG run start) | " + " | ".join(f"{n} s" for n in configs) + " |",
        "|---|" + "---|" * len(configs),
    ]
    for h in hops:
        cells = [_fmt(c["summary"]["per_hop"][h]) if h in c["summary"]["per_hop"] else "-" for c in configs.values()]
        lines.append(f"| {h.replace(' -> ', ' → ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict:
    from importlib.metadata import version

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {"python": platform.python_version()}
    for pkg in ("apache-airflow", "apache-airflow-providers-celery", "celery", "redis"):
        try:
            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            versions[pkg] = None
    try:
        pg = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "show server_version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pg = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "versions": versions,
        "postgresql": pg,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=5, help="measured cycles per configuration (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up cycles per configuration, not counted")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for one cycle")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "cycle_latency.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (Airflow homes, logs) and the database")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    for n in names:
        if n not in CONFIGS:
            parser.error(f"unknown configuration {n!r}")
    started = time.perf_counter()
    topo = topology()
    work = Path(tempfile.mkdtemp(prefix="bench_cycle_latency_"))
    dags = work / "dags"
    write_dags(dags, topo)
    result = {"argv": sys.argv[1:], "machine": machine(), "topology": topo, "configs": {}}
    try:
        for name in names:
            result["configs"][name] = run_config(
                name, topo, dags, work, args.cycles, args.warmup, args.timeout, args.keep
            )
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = time.perf_counter() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str))
    print(tables(result))
    print(f"\n(wrote {args.json}; {result['seconds']:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
