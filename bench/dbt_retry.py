"""A dbt task's retry from the point of failure (`dbt retry`) against rebuilding the whole selection.

    .venv/bin/python bench/dbt_retry.py [--models 500] [--runs 3] [--at 0.9]

On a generated project of --models models (bench/gen_dbt_project.py, made runnable and loaded with
raw data as bench/dbt_overhead.py does, DuckDB), one model about --at of the way through the build
(topological order of the enabled, non-ephemeral models, with at least one model downstream) fails
while the table `bench_ctl.gate` does not exist: a transient failure, with no project file changed
between tries (so dbt's partial-parse state stays valid, as between a task's tries).

Each repetition, in one private target directory (what the dbt task's target dir is):
  1. drop the gate; `dbt build` of the project: the failing try (timed, for reference);
  2. create the gate; `dbt retry` on try 1's artifacts: what our task's retry runs;
  3. `dbt build` of the whole project again: what a retry without retry-from-failure runs.
Each invocation is what a task runs: a fresh Python process calling
orchestrator.runners.dbt.run_dbt (in-process dbtRunner, private target dir). One full build first,
untimed (warm-up: the target's partial-parse state). Prints medians (min-max) and the ratio of the
retry to the full rebuild (target: <= 0.20); JSON to --json (default var/bench/dbt_retry.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BENCH_DIR = ROOT / "var" / "bench" / "dbt_retry"
GATE = "bench_ctl.gate"


def _order(manifest: dict) -> list[str]:
    """Enabled, non-ephemeral models in topological order (depth from the sources, then id)."""
    nodes = {u: n for u, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    depth: dict[str, int] = {}

    def d(u: str) -> int:
        if u not in depth:
            ups = [p for p in nodes[u]["depends_on"]["nodes"] if p in nodes]
            depth[u] = 1 + max((d(p) for p in ups), default=0)
        return depth[u]

    built = [u for u, n in nodes.items() if n["config"].get("materialized") != "ephemeral"]
    return sorted(built, key=lambda u: (d(u), u))


def _descendants(manifest: dict, uid: str) -> set[str]:
    children, seen, todo = manifest["child_map"], set(), [uid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


def prepare(n_models: int, n_tags: int, rows: int, at: float) -> tuple[Path, dict]:
    import gen_dbt_project as gen
    from dbt_overhead import load_raw, make_runnable

    out = BENCH_DIR / f"gen{n_models}"
    info: dict = {"models": n_models, "rows_per_source": rows}
    summary = gen.generate(n_models, n_tags, out)
    direct = json.loads((out / "target" / "manifest.json").read_text())
    (out / "target" / "manifest.json").replace(out / "target" / "manifest.direct.json")
    make_runnable(out, direct)
    order = _order(direct)
    start = int(len(order) * at)
    failing = next(
        u
        for u in order[start:]
        if "-- rewritten" in (out / direct["nodes"][u]["original_file_path"]).read_text()
        and any(c.startswith("model.") for c in _descendants(direct, u))
    )
    path = out / direct["nodes"][failing]["original_file_path"]
    sql = path.read_text()
    head = (re.match(r"\A(\{\{ config\(.*?\) \}\}\n)", sql, re.DOTALL) or [""])[0]
    path.write_text(
        f"{head}-- bench/dbt_retry.py: fails while {GATE} does not exist\n"
        f"select * from (\n{sql[len(head) :]}) as t\nwhere exists (select 1 from {GATE})\n"
    )
    info["dbt_parse_s"] = gen.run_dbt_parse(out)
    info["load_raw_s"] = load_raw(out, rows)
    info.update(
        enabled_models=summary["models"],
        tests=summary["tests"],
        failing_model=failing,
        failing_position=f"{order.index(failing) + 1} of {len(order)}",
        failing_model_descendants=len(_descendants(direct, failing)),
    )
    return out, info


def _gate(out: Path, present: bool) -> None:
    import duckdb

    with duckdb.connect(str(out / "warehouse.duckdb")) as con:
        con.execute("create schema if not exists bench_ctl")
        con.execute(f"create or replace table {GATE} as select 1 as ok" if present else f"drop table if exists {GATE}")


def _task(args: list[str], out: Path, target: Path, expect_success: bool) -> dict:
    """One dbt invocation as the task runs it, in a fresh process; wall time and what dbt ran."""
    code = (
        "import os, sys; from pathlib import Path; "
        "from orchestrator.runners.dbt import DbtProjectRef, run_dbt; "
        f"r = run_dbt({args!r}, env=dict(os.environ), project=DbtProjectRef(Path({str(out)!r}), "
        f"Path({str(out)!r}), None), target_path={str(target)!r}, raise_on_failure=False); "
        "sys.exit(0 if r.success else 3)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", DBT_VERSION_CHECK="false")
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode not in (0, 3) or (done.returncode == 0) != expect_success:
        raise RuntimeError(f"dbt {args[0]}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    results = json.loads((target / "run_results.json").read_text())
    statuses = [r["status"] for r in results["results"] if not r["unique_id"].startswith("operation.")]
    return {
        "wall_s": wall,
        "dbt_elapsed_s": results["elapsed_time"],
        "nodes": len(statuses),
        "by_status": {s: statuses.count(s) for s in sorted(set(statuses))},
    }


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def _fmt(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1000, help="rows per raw table (default 1000)")
    parser.add_argument("--at", type=float, default=0.9, help="where in the build the failing model is (0-1)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "dbt_retry.json")
    args = parser.parse_args()
    started = time.perf_counter()
    out, info = prepare(args.models, args.tags, args.rows, args.at)
    print(f"project: {info}", file=sys.stderr, flush=True)
    target = BENCH_DIR / "target"
    build = ["build", "--quiet"]
    _gate(out, True)
    info["warm_up"] = _task(build, out, target, True)
    runs: list[dict] = []
    for i in range(args.runs):
        _gate(out, False)
        failing = _task(build, out, target, False)
        _gate(out, True)
        retry = _task(["retry", "--quiet"], out, target, True)
        full = _task(build, out, target, True)
        runs.append({"failing_try": failing, "retry": retry, "full_rebuild": full})
        print(
            f"run {i + 1}: failing try {failing['wall_s']:.1f}s {failing['by_status']}; "
            f"retry {retry['wall_s']:.1f}s ({retry['nodes']} nodes); "
            f"full {full['wall_s']:.1f}s ({full['nodes']} nodes)",
            file=sys.stderr,
            flush=True,
        )
    result = {"argv": sys.argv[1:], "nproc": os.cpu_count(), "project": info, "runs": runs}
    for key in ("failing_try", "retry", "full_rebuild"):
        result[key] = {m: _stats([r[key][m] for r in runs]) for m in ("wall_s", "dbt_elapsed_s")}
    result["ratio_wall"] = result["retry"]["wall_s"]["median"] / result["full_rebuild"]["wall_s"]["median"]
    result["ratio_dbt"] = result["retry"]["dbt_elapsed_s"]["median"] / result["full_rebuild"]["dbt_elapsed_s"]["median"]
    result["wall_s"] = time.perf_counter() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    r0 = runs[0]
    print("\n| invocation | nodes run | wall s (task process) | dbt's elapsed s |\n|---|---|---|---|")
    for key, label in (
        ("full_rebuild", "full rebuild (`dbt build`)"),
        ("retry", "retry (`dbt retry`)"),
        ("failing_try", "the failing try"),
    ):
        print(
            f"| {label} | {r0[key]['nodes']} | {_fmt(result[key]['wall_s'])} | {_fmt(result[key]['dbt_elapsed_s'])} |"
        )
    print(
        f"\nretry / full rebuild: {result['ratio_wall']:.1%} of the wall time, "
        f"{result['ratio_dbt']:.1%} of dbt's elapsed"
    )
    return 0 if result["ratio_wall"] <= 0.20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
