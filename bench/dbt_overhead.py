"""dbt DAG task vs a bare `dbt build` of the same models; per-model tasks vs one invocation.

    .venv/bin/python bench/dbt_overhead.py [--runs 5]                        # (a) the demo project, as before
    .venv/bin/python bench/dbt_overhead.py --parts demo,generated,per-model \\
        --prepare-demo --runs 3 --models 500 --tag domain_0                 # everything (bench/results_cycle_dbt.md)

Parts (medians, min-max, of wall time in seconds; the two sides of a comparison run interleaved,
so drift in the load of a shared machine hits both alike):

  demo        (a) For each of the plan's dbt DAGs of this repo's project on the embedded DuckDB
              warehouse: `bare` = `dbt build <the DAG's selector>` as a CLI process vs `ours` = what
              the DAG's task runs, a fresh Python process calling orchestrator.runners.dbt.run_dbt
              (in-process dbtRunner, private target dir seeded with the project's partial-parse state).
              Needs a loaded warehouse: `make run` / `orchestrator cycle` first, or --prepare-demo
              (loads a private one under var/bench/dbt_overhead/demo/ with two `orchestrator cycle`s,
              i.e. day-2 data, without touching var/warehouse.duckdb).
  generated   (b) The same comparison on a generated project of --models models (bench/gen_dbt_project.py,
              then a real `dbt parse`) on DuckDB, for the DAG of --tag. The generator's SQL is only
              meant to compile, so its intermediate and mart models are rewritten to runnable SQL
              with the same ref()s, config() (materialization, tags, alias, incremental) and documented
              columns (so every test still runs, and passes); staging models and sources are kept as
              generated; `dbt parse` runs after the rewrite and the orchestration-facing fields of its
              manifest are checked against the generator's. Raw tables get --rows synthetic rows each.
  per-model   (c) `dbt.task_granularity: model`: the plan renders one task per model
              (`dbt build --select <model> --indirect-selection cautious`, plus one `dbt test` for the
              tests spanning several models). Sum of these tasks run one after the other in
              topological order, each in a fresh process with its task's private target dir (what
              the Airflow tasks run, the warehouse pool allowing one at a time), vs the single
              invocation of `generated`. --per-model-runs passes (each pass is N invocations).
              Airflow's own per-task cost is not in it: it is estimated as N x the "serial step" of
              trivial tasks measured by bench/cycle_latency.py (var/bench/cycle_latency.json), when
              that file exists.

Bare runs use a private --target-path too (seeded with the same partial-parse state), so that the
benchmark never rewrites the project's published target/manifest.json. Results also go to
--json (default var/bench/dbt_overhead.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from orchestrator.config import load_config  # noqa: E402
from orchestrator.plan import build_plan, plan_from_config  # noqa: E402

BENCH_DIR = ROOT / "var" / "bench" / "dbt_overhead"


# --------------------------------------------------------------------------- helpers


def _time(argv: list[str], env: dict, cwd: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    if done.returncode:
        raise RuntimeError(
            f"{' '.join(argv)[:300]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return elapsed


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def _fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def _seed_target(project_dir: Path, target: Path) -> Path:
    """A fresh private target dir with the project's partial-parse state (what run_dbt's
    private_target does for a new one)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    published = project_dir / "target" / "partial_parse.msgpack"
    if published.exists():
        shutil.copy2(published, target / "partial_parse.msgpack")
    return target


def _fresh(target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    return target


def _ours_argv(args: list[str], project_dir: Path, target: Path) -> list[str]:
    code = (
        "import os; from pathlib import Path; from orchestrator.runners.dbt import DbtProjectRef, run_dbt; "
        f"run_dbt({args!r}, env=dict(os.environ), project=DbtProjectRef(Path({str(project_dir)!r}), "
        f"Path({str(project_dir)!r}), None), target_path={str(target)!r})"
    )
    return [sys.executable, "-c", code]


def _bare_argv(dbt: str, args: list[str], target: Path) -> list[str]:
    return [dbt, *args, "--profiles-dir", ".", "--target-path", str(target), "--log-path", str(target)]


def compare(
    label: str, selector: str, bare_argv: list[str], ours_argv: list[str], env: dict, project_dir: Path, runs: int
) -> dict:
    """One warm-up of each side, then `runs` interleaved pairs. The warm-up is the first run in a fresh
    private target: dbt re-parses there when the seeded partial-parse state does not match (it was
    written without `--target`, and dbt's state check counts the CLI target); it is kept apart."""
    warm = {"bare": _time(bare_argv, env, project_dir), "ours": _time(ours_argv, env, ROOT)}
    bare, ours = [], []
    for _ in range(runs):
        bare.append(_time(bare_argv, env, project_dir))
        ours.append(_time(ours_argv, env, ROOT))
    b, o = _stats(bare), _stats(ours)
    return {
        "dag": label,
        "selector": selector,
        "bare": b,
        "ours": o,
        "ratio": o["median"] / b["median"],
        "first_run_in_fresh_target": warm,
    }


# --------------------------------------------------------------------------- (a) the demo project


def prepare_demo(env: dict) -> dict:
    """A private demo warehouse with day-2 data: two `orchestrator cycle`s (Meltano + dbt) into
    var/bench/dbt_overhead/demo/ (warehouse, demo data, Meltano state, alert outbox)."""
    home = BENCH_DIR / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {
        **env,
        "WAREHOUSE_DUCKDB_PATH": str(home / "warehouse.duckdb"),
        "DEMO_DATA_DIR": str(home / "demo_data"),
        "MELTANO_DATABASE_URI": f"sqlite:///{home / 'meltano.db'}",
        "ALERTING_OUTBOX_URL": f"sqlite:///{home / 'outbox.sqlite'}",
        "DBT_RUNS_DIR": str(home / "dbt_runs"),
    }
    orchestrator = str(Path(sys.executable).with_name("orchestrator"))
    for day in (1, 2):
        for attempt in (1, 2):  # the machine is shared: retry a cycle once (no new day on the retry)
            t = time.perf_counter()
            done = subprocess.run(
                [orchestrator, "cycle", *(("--no-new-day",) if attempt > 1 else ())],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if not done.returncode:
                break
            print(
                f"  demo warehouse: cycle {day} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                f"{done.stderr[-3000:]}",
                file=sys.stderr,
                flush=True,
            )
        else:
            raise SystemExit("could not load the demo warehouse")
        print(f"  demo warehouse: cycle {day} loaded in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    return env


def bench_demo(runs: int, prepare: bool) -> list[dict]:
    env = load_config().profile.environment()
    if prepare:
        env = prepare_demo(env)
    if not Path(env["WAREHOUSE_DUCKDB_PATH"]).exists():
        raise SystemExit(
            f"no warehouse at {env['WAREHOUSE_DUCKDB_PATH']}: `make run` / `orchestrator cycle` "
            "first, or pass --prepare-demo"
        )
    plan = build_plan(cache_dir=None)
    project = ROOT / "dbt_project"
    dbt = str(Path(sys.executable).with_name("dbt"))
    rows = []
    print("\n| DAG | selector | bare dbt build s | our task runner s | ratio |")
    print("|---|---|---|---|---|", flush=True)
    for spec in plan.of_kind("dbt"):
        task = spec.tasks[0]
        args = [*task.args, "--target", env["DBT_TARGET"], "--quiet"]
        bare_t = _seed_target(project, BENCH_DIR / "bare" / spec.dag_id)
        ours_t = _fresh(BENCH_DIR / "ours" / spec.dag_id)  # run_dbt seeds it
        r = compare(
            spec.dag_id,
            " ".join(task.args[1:]),
            _bare_argv(dbt, args, bare_t),
            _ours_argv(args, project, ours_t),
            env,
            project,
            runs,
        )
        rows.append(r)
        print(
            f"| {r['dag']} | `{r['selector']}` | {_fmt(r['bare'])} | {_fmt(r['ours'])} | {r['ratio']:.2f} |", flush=True
        )
    return rows


# --------------------------------------------------------------------------- (b) a generated project


def _gen_env() -> dict:
    """The environment `gen_dbt_project.run_dbt_parse` parses with: no inherited DBT_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", DBT_VERSION_CHECK="false")
    return env


_CONFIG = re.compile(r"\A(\{\{ config\(.*?\) \}\}\n)", re.DOTALL)
_REF = re.compile(r"\{\{ ref\('([^']+)'\) \}\}")


def _literal(col: str, cast: str, first_id: str) -> str:
    if col.endswith(("_id", "_key")) or cast == "bigint":
        return f"p0.{first_id}"
    if col == "status":
        return "'active'"
    return {"timestamp": "timestamp '2025-01-01'", "boolean": "false", "decimal(18, 2)": "1.0"}.get(cast, "'x'")


def make_runnable(out: Path, manifest: dict) -> int:
    """Rewrite the intermediate and mart models (see the module doc); returns how many."""
    from gen_dbt_project import _cast

    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    cols = {name: list(n["columns"]) for name, n in models.items()}
    count = 0
    for name, node in models.items():
        path = out / node["original_file_path"]
        sql = path.read_text()
        refs = list(dict.fromkeys(_REF.findall(sql)))
        if not refs:  # staging: reads sources, kept as generated
            continue
        head = (_CONFIG.match(sql) or [""])[0]
        first_id = cols[refs[0]][0]
        select = []
        for c in cols[name]:
            owner = next((i for i, r in enumerate(refs) if c in cols[r]), None)
            expr = f"p{owner}.{c}" if owner is not None else _literal(c, _cast(c), first_id)
            select.append(f"    {expr} as {c}")
        joins = "".join(
            f"left join {{{{ ref('{r}') }}}} as p{i} on p{i}.{cols[r][0]} = p0.{first_id}\n"
            for i, r in enumerate(refs[1:], 1)
        )
        columns = ",\n".join(select)
        path.write_text(
            f"{head}\n-- rewritten by bench/dbt_overhead.py to run: same refs, config and columns\n"
            f"select\n{columns}\nfrom {{{{ ref('{refs[0]}') }}}} as p0\n{joins}"
        )
        count += 1
    return count


def load_raw(out: Path, rows: int) -> float:
    """A fresh warehouse.duckdb with every source table, `rows` rows each (id = 1..rows; every *_id
    column = id, so joins are 1:1 and relationships tests pass; no nulls)."""
    import duckdb
    from gen_dbt_project import _cast

    manifest = json.loads((out / "target" / "manifest.json").read_text())
    # A staging model reading several tables (`union all by name`) casts columns only some of them
    # document: every table it reads gets them all, or the deduplicated row may hold nulls.
    wanted = {uid: list(s["columns"]) for uid, s in manifest["sources"].items()}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model":
            used = re.findall(r"cast\((\w+) as ", node["raw_code"])
            for uid in node["depends_on"]["nodes"]:
                if uid in wanted:
                    wanted[uid] += [c for c in used if c not in wanted[uid]]
    path = out / "warehouse.duckdb"
    path.unlink(missing_ok=True)
    t = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        for uid, s in manifest["sources"].items():
            con.execute(f'create schema if not exists "{s["schema"]}"')
            exprs = []
            for c in wanted[uid]:
                cast = "bigint" if c == "id" else _cast(c)
                value = (
                    "i"
                    if c == "id" or c.endswith(("_id", "_key")) or cast == "bigint"
                    else "timestamp '2025-01-01' + to_minutes(i)"
                    if cast == "timestamp"
                    else "false"
                    if cast == "boolean"
                    else "i * 1.5"
                    if cast.startswith("decimal")
                    else "'active'"
                    if c == "status"
                    else "'v' || i"
                )
                exprs.append(f'cast({value} as {cast}) as "{c}"')
            con.execute(
                f'create table "{s["schema"]}"."{s["identifier"]}" as '
                f"select {', '.join(exprs)} from range(1, {rows + 1}) t(i)"
            )
    finally:
        con.close()
    return time.perf_counter() - t


def prepare_generated(n_models: int, n_tags: int, rows: int, tags: list[str]) -> tuple[Path, dict]:
    """Generate, make runnable, `dbt parse` (real), check, load raw data, then `dbt run` what the DAGs
    of `tags` read from outside themselves (a DAG may read another DAG's models)."""
    import gen_dbt_project as gen

    out = BENCH_DIR / f"gen{n_models}"
    info: dict = {"models": n_models, "tags": n_tags, "rows_per_source": rows, "dir": str(out)}
    t = time.perf_counter()
    summary = gen.generate(n_models, n_tags, out)
    direct = json.loads((out / "target" / "manifest.json").read_text())
    (out / "target" / "manifest.json").replace(out / "target" / "manifest.direct.json")
    info["rewritten_models"] = make_runnable(out, direct)
    info["dbt_parse_s"] = gen.run_dbt_parse(out)
    parsed = json.loads((out / "target" / "manifest.json").read_text())
    diffs = gen.compare_manifests(direct, parsed)
    if diffs:
        raise SystemExit(
            "the rewritten project's manifest differs from the generator's in orchestration "
            "fields:\n  " + "\n  ".join(diffs)
        )
    info.update(enabled_models=summary["models"], tests=summary["tests"], sources=summary["sources"])
    info["load_raw_s"] = load_raw(out, rows)
    plan = _gen_plan(out, n_tags, "dag")
    select = []
    for tag in tags:
        args = _spec(plan, tag).tasks[0].args
        select += ["+" + a for a in args[args.index("--select") + 1 : args.index("--indirect-selection")]]
    dbt = str(Path(sys.executable).with_name("dbt"))
    upstream = _seed_target(out, BENCH_DIR / "gen_upstream")
    info["upstream_run_s"] = _time(
        [
            dbt,
            "run",
            "--select",
            *select,
            "--profiles-dir",
            ".",
            "--target-path",
            str(upstream),
            "--log-path",
            str(upstream),
            "--quiet",
        ],
        _gen_env(),
        out,
    )
    info["prepare_s"] = time.perf_counter() - t
    print(
        f"  generated project: {summary['models']} models, {summary['tests']} tests, {info['rewritten_models']} "
        f"rewritten; dbt parse {info['dbt_parse_s']:.1f}s; upstream dbt run {info['upstream_run_s']:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    return out, info


def _gen_plan(out: Path, n_tags: int, granularity: str):
    config = load_config().with_overrides(
        tags=tuple(f"domain_{k}" for k in range(n_tags)), manifest=out / "target" / "manifest.json"
    )
    config = config.model_copy(update={"dbt": config.dbt.model_copy(update={"task_granularity": granularity})})
    return plan_from_config(config, kinds=("dbt",), cache_dir=None)


def _spec(plan, tag: str):
    for spec in plan.of_kind("dbt"):
        if spec.tag == tag:
            return spec
    raise SystemExit(f"no dbt DAG for tag {tag!r}")


def _ours_target(dag_id: str) -> Path:
    return BENCH_DIR / "gen_ours" / dag_id


def bench_generated(out: Path, n_tags: int, tag: str, runs: int) -> dict:
    spec = _spec(_gen_plan(out, n_tags, "dag"), tag)
    task = spec.tasks[0]
    args = [*task.args, "--target", "duckdb", "--quiet"]
    dbt = str(Path(sys.executable).with_name("dbt"))
    bare_t = _seed_target(out, BENCH_DIR / "gen_bare" / spec.dag_id)
    r = compare(
        spec.dag_id,
        " ".join(task.args[1:]),
        _bare_argv(dbt, args, bare_t),
        _ours_argv(args, out, _fresh(_ours_target(spec.dag_id))),
        _gen_env(),
        out,
        runs,
    )
    # What dbt built and tested (the plan's test list is not used by a tag selector: dbt's
    # indirect selection picks the tests).
    r.update(tag=tag, plan_models=len(spec.models), **_ran(_ours_target(spec.dag_id)))
    return r


def _ran(target: Path) -> dict:
    """Models built and tests run by the last dbt invocation in `target`, and dbt's own elapsed time."""
    results = json.loads((target / "run_results.json").read_text())
    kinds = [x["unique_id"].split(".", 1)[0] for x in results["results"]]
    return {"models": kinds.count("model"), "tests": kinds.count("test"), "dbt_elapsed_s": results["elapsed_time"]}


def _topological(tasks) -> list:
    done, order, todo = set(), [], list(tasks)
    while todo:
        ready = [t for t in todo if set(t.upstream) <= done]
        if not ready:
            raise RuntimeError("the per-model tasks have a cycle")
        for t in ready:  # plan order (sorted by unique_id) within a wave
            order.append(t)
            done.add(t.task_id)
        todo = [t for t in todo if t.task_id not in done]
    return order


def bench_per_model(out: Path, n_tags: int, tag: str, passes: int) -> dict:
    """Steady state, as on every DAG run but the first after a manifest change: each task's private
    target already holds a partial-parse state valid for the task's own flags. (The single-invocation
    runs of `generated` left one in the DAG's target; every task dir starts from a copy of it.)"""
    spec = _spec(_gen_plan(out, n_tags, "model"), tag)
    tasks = _topological(spec.tasks)
    env = _gen_env()
    runs_dir = BENCH_DIR / "gen_per_model" / spec.dag_id
    warm = _ours_target(spec.dag_id) / "partial_parse.msgpack"
    if not warm.exists():
        raise SystemExit(f"{warm} missing: run the `generated` part for tag {tag} first")
    shutil.rmtree(runs_dir, ignore_errors=True)
    for task in tasks:
        (runs_dir / task.task_id).mkdir(parents=True)
        shutil.copy2(warm, runs_dir / task.task_id / "partial_parse.msgpack")
    totals, per_task = [], []
    for i in range(passes):
        t0 = time.perf_counter()
        for task in tasks:
            per_task.append(
                _time(
                    _ours_argv([*task.args, "--target", "duckdb", "--quiet"], out, runs_dir / task.task_id), env, ROOT
                )
            )
        totals.append(time.perf_counter() - t0)
        print(f"  per-model pass {i + 1}: {len(tasks)} tasks in {totals[-1]:.1f}s", file=sys.stderr, flush=True)
    return {
        "dag": spec.dag_id,
        "tag": tag,
        "tasks": len(tasks),
        "model_tasks": sum(t.kind == "dbt_build" for t in tasks),
        "total": _stats(totals),
        "per_task": _stats(per_task),
    }


def airflow_task_cost() -> dict | None:
    """Airflow's own cost of one more task in a chain run one task at a time (the "serial step" of
    trivial tasks sharing a 1-slot pool), per configuration, from bench/cycle_latency.py's JSON if
    it was run."""
    path = ROOT / "var" / "bench" / "cycle_latency.json"
    try:
        data = json.loads(path.read_text())
        return {name: c["summary"]["serial_step"] for name, c in data["configs"].items()}
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------- CLI


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in ("dbt-core", "dbt-duckdb", "duckdb"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per side (default 5)")
    parser.add_argument("--parts", default="demo", help="comma-separated: demo, generated, per-model (default: demo)")
    parser.add_argument(
        "--prepare-demo", action="store_true", help="load a private demo warehouse first (two `orchestrator cycle`s)"
    )
    parser.add_argument("--models", type=int, default=500, help="generated project size (default 500)")
    parser.add_argument("--tags", type=int, default=20, help="generated project's domain tags (default 20)")
    parser.add_argument("--tag", default="domain_0", help="the generated project's tag to build (default domain_0)")
    parser.add_argument("--rows", type=int, default=1000, help="rows per generated source table (default 1000)")
    parser.add_argument("--per-model-tag", help="the tag whose DAG runs per model (default: --tag)")
    parser.add_argument("--per-model-runs", type=int, default=1, help="passes of the per-model tasks (default 1)")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "dbt_overhead.json")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"demo", "generated", "per-model"}
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    result: dict = {"argv": sys.argv[1:], "nproc": os.cpu_count(), "versions": _versions(), "runs": args.runs}
    if "demo" in parts:
        result["demo"] = bench_demo(args.runs, args.prepare_demo)
    if parts & {"generated", "per-model"}:
        pm_tag = args.per_model_tag or args.tag
        tags = list(dict.fromkeys([args.tag, pm_tag]))
        out, info = prepare_generated(args.models, args.tags, args.rows, tags)
        result["generated_project"] = info
        # (b) for --tag, and for the per-model tag too (the per-model comparison needs its single run)
        rows = result["generated"] = [bench_generated(out, args.tags, tag, args.runs) for tag in tags]
        print(
            f"\nGenerated project: {info['enabled_models']} models, {info['tests']} tests, DuckDB, "
            f"{args.rows} rows per source table\n"
        )
        print("| DAG | models / tests run | selector | bare dbt build s | our task runner s | ratio |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['dag']} | {r['models']} / {r['tests']} | `{r['selector'][:60]}` | {_fmt(r['bare'])} | "
                f"{_fmt(r['ours'])} | {r['ratio']:.2f} |",
                flush=True,
            )
        if "per-model" in parts:
            single = next(r for r in rows if r["tag"] == pm_tag)
            pm = result["per_model"] = bench_per_model(out, args.tags, pm_tag, args.per_model_runs)
            cost = result["airflow_task_cost"] = airflow_task_cost()
            print(
                f"\nPer-model tasks (`task_granularity: model`) vs one invocation, `{pm['dag']}` "
                f"({single['models']} models)\n"
            )
            print("| mode | dbt invocations | dbt wall s | vs single | + Airflow's own per-task cost (estimate) |")
            print("|---|---|---|---|---|")
            one = ", ".join(f"{name}: +{c['median']:.1f}s" for name, c in (cost or {}).items())
            print(
                f"| single (`task_granularity: dag`, our runner) | 1 | {_fmt(single['ours'])} | 1.00 | {one or 'n/a'} |"
            )
            est = "; ".join(
                f"{name}: +{pm['tasks'] * c['median']:.0f}s ({pm['tasks']} x {c['median']:.2f}s)"
                for name, c in (cost or {}).items()
            )
            print(
                f"| per model: {pm['model_tasks']} model tasks + {pm['tasks'] - pm['model_tasks']} test task, "
                f"fresh processes in topological order | {pm['tasks']} | {_fmt(pm['total'], 1)} | "
                f"{pm['total']['median'] / single['ours']['median']:.1f} | "
                f"{est or 'n/a (run bench/cycle_latency.py first)'} |"
            )
            print(f"| (one per-model task's invocation) | 1 | {_fmt(pm['per_task'])} | | |", flush=True)
    result["seconds"] = time.perf_counter() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\n(wrote {args.json}; {result['seconds']:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
