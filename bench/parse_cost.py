"""DAG parse cost: our dags/ against astronomer-cosmos and Meltano's classic DAG generator.

    .venv/bin/python bench/parse_cost.py [--manifests all|real|generated|NAME,...] [--generated 1000,5000,10000]
                                         [--repeats 5] [--slow-repeats 3] [--skip cosmos,classic,model,meltano,cold]
                                         [--model-max 5000] [--quick] [--prepare-only] [--out var/bench/parse_cost.json]
                                         [--checkout DIR] [--gc frozen|live] [--per-file]

Each measurement is one fresh process (bench/dagbag_probe.py) that imports Airflow, then loads
the DAG files in a DagBag. Per run it reports:
  DagBag s         the DagBag load alone, Airflow already imported (what a parse costs the DAG processor)
  DagBag CPU s     the same load's CPU time (the process's own): what a parse costs on a shared machine,
                   where the wall clock also counts the other processes' share of the cores
  whole process s  python start + imports + DagBag, by the wall clock of this script
  peak RSS MB      the process's peak resident set (VmHWM) when the DagBag is loaded
  DagBag +MB       how much of that peak the DagBag load added over Airflow's imports
  serialize s      then, outside both figures, DagSerialization.to_dict of every DAG (the DAG processor's next step)

dbt, for each real manifest in tests/data/manifests/ and generated projects (bench/gen_dbt_project.py, dbt parse):
  ours            dags/, every DAG file in it, the plan cache warm (the usual parse: nothing changed)
  ours, cold      the same with the cache off (ORCHESTRATOR_CACHE_DIR=""): manifest and meltano.yml read afresh
  ours, per model the same, warm, with dbt.task_granularity: model (one task per model, like cosmos;
                  up to --model-max models)
  ours, before    with --checkout DIR: DIR's dags/ and code (a worktree of an earlier commit, e.g.
                  `git worktree add --detach /tmp/before <commit>`), run by our Python with DIR first on
                  PYTHONPATH, cache warm: before and after side by side in one run
  cosmos          bench/cosmos/dags/cosmos_dbt_tags.py: one DbtDag per tag (LoadMode.DBT_MANIFEST, select tag:X),
                  plus one DbtDag of the models with none of the tags when ours has a catch-all DAG, in its own
                  virtualenv (bench/cosmos/make_venv.py)
Meltano, on a bench copy of meltano/ with three daily schedules (bench/meltano_classic/schedules.yml):
  ours            dags/meltano_sources.py (reads meltano.yml; plan cache warm), and cold
  classic         bench/meltano_classic/dags/meltano.py (runs `meltano schedule list --format=json`)

Tags: a generated project's 20 domain tags (highest domain first, so a model's folder tag wins, the
generator's "first-listed wins"); a real manifest's 20 most frequent tags, every one of them (the
lineage-aware placement renders them all; a plan error stops the benchmark). cosmos gets the same
list. Every run's DAGs and task counts are checked: ours against the plan, cosmos' dbt resource
tasks against the manifest.

Runs are interleaved (ours, cosmos, ours, ...) after one unmeasured warm-up run each, so load drift on
a shared machine hits every system alike. Results: JSON to --out, a Markdown table to stdout.

As the DAG processor parses (both systems alike):
- --gc frozen (the default): the probe calls gc.freeze() after importing Airflow, as the DAG
  processor's manager does before it forks a process per file (airflow/dag_processing/manager.py,
  `before_run`: "To prevent COW in forked process parsing dag file"). Without it (--gc live), the
  first full collection in the DagBag scans the ~200,000 objects of Airflow's imports (0.12-0.23 s
  here), a cost no real parse pays, charged to whichever DAG file happens to trigger it.
- --per-file: each DAG file of dags/ in a process of its own, the figures summed (peak RSS: the
  largest), as the DAG processor parses (a process per file); each then pays the imports of its
  own. Without it, one DagBag loads all of dags/ and the imports are paid once.
- Bytecode: every module a DAG file imports is compiled first (our packages with compileall, the
  cosmos virtualenv by uv --compile-bytecode). Where PYTHONDONTWRITEBYTECODE is set (this
  machine's shell) nothing caches it otherwise, and each parse compiled our ~80 modules from source
  (0.4 s of a 0.6 s DagBag) and cosmos' own.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.config import load_config  # noqa: E402
from orchestrator.plan import plan_from_config  # noqa: E402
from orchestrator.plan.manifest import load_manifest  # noqa: E402

BENCH = ROOT / "bench"
REAL_MANIFESTS = ROOT / "tests" / "data" / "manifests"  # vendored: tests/data/README.md
WORK = ROOT / "var" / "bench" / "parse_cost"
DEFAULT_OUT = ROOT / "var" / "bench" / "parse_cost.json"
PROBE = BENCH / "dagbag_probe.py"
PROBE_MARK = "@@dagbag_probe "
OUR_PYTHON = ROOT / ".venv" / "bin" / "python"
OUR_PACKAGES = ("orchestrator", "alerting", "dags")  # what a DAG parse imports of a checkout
COSMOS_DAG = BENCH / "cosmos" / "dags" / "cosmos_dbt_tags.py"
CLASSIC_DAG = BENCH / "meltano_classic" / "dags" / "meltano.py"
SCHEDULES = BENCH / "meltano_classic" / "schedules.yml"
N_TAGS = 20
SEED = 42

# Short names of the shared manifests (file name prefix -> name, label).
KNOWN = {
    "calitp": ("calitp", "calitp data-infra warehouse"),
    "cosmos": ("jaffle_shop", "cosmos jaffle_shop"),
    "flipside": ("flipside", "flipside ethereum-models (v4)"),
    "gitlab": ("gitlab", "gitlab snowflake-dbt"),
    "mattermost": ("mattermost", "mattermost analytics"),
    "tuva": ("tuva", "tuva integration_tests"),
}


def _load_gen():
    spec = importlib.util.spec_from_file_location("gen_dbt_project", BENCH / "gen_dbt_project.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_dbt_project"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def log(msg: str) -> None:
    print(f"[parse_cost {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- inputs


@dataclass
class Case:
    name: str
    label: str
    manifest: Path  # plain JSON (cosmos reads no .gz)
    project_dir: Path
    project_name: str
    generated: int | None = None
    models: int = 0
    tags: list[str] = field(default_factory=list)
    dropped_tags: list[str] = field(default_factory=list)  # always empty now (kept for old result files)
    placed_by_rule: int = 0
    catch_all: bool = False  # ours renders dbt_untagged: cosmos gets its catch-all DbtDag too
    note: str = ""


def _name_of(path: Path) -> tuple[str, str]:
    stem = path.name.removesuffix(".gz").removesuffix(".json")
    for prefix, (name, label) in KNOWN.items():
        if stem.startswith(prefix):
            return name, label
    return stem[:24], stem


def _materialize_project(manifest: dict, project_name: str, dest: Path) -> int:
    """A real manifest comes without its project: write the files cosmos looks at while parsing
    (dbt_project.yml, and the root package's SQL/Python/CSV files from the manifest's raw code), so
    it hashes a project of the real size. Seeds' CSV contents are not in a manifest: a header only."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "dbt_project.yml").write_text(
        f"name: {project_name}\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n", encoding="utf-8"
    )
    written = 0
    resources = [*manifest.get("nodes", {}).values(), *manifest.get("macros", {}).values()]
    for node in resources:
        rel = node.get("original_file_path") or ""
        if node.get("package_name") != project_name or not rel.endswith((".sql", ".py", ".csv")):
            continue
        if node.get("resource_type") == "test" and node.get("test_metadata"):
            continue  # a generic test lives in a .yml, not in a file of its own
        path = dest / rel
        if path.exists() and node.get("resource_type") != "macro":
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if node.get("resource_type") == "seed":
            text = ",".join(node.get("columns") or {}) + "\n"
        else:
            text = node.get("raw_code", node.get("raw_sql", node.get("macro_sql", ""))) or ""
        mode = "a" if node.get("resource_type") == "macro" and path.exists() else "w"
        with path.open(mode, encoding="utf-8") as fh:
            fh.write(text + "\n")
        written += 1
    return written


def prepare_real(src: Path) -> Case:
    name, label = _name_of(src)
    plain = WORK / "manifests" / f"{name}.json"
    plain.parent.mkdir(parents=True, exist_ok=True)
    if not plain.exists() or plain.stat().st_mtime < src.stat().st_mtime:
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin, open(plain, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    data = json.loads(plain.read_bytes())
    project_name = (data.get("metadata") or {}).get("project_name") or name
    project_dir = WORK / "projects" / name
    stamp = project_dir / ".bench-stamp"
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        files = _materialize_project(data, project_name, project_dir)
        stamp.write_text(digest)
        log(f"{name}: project stub with {files} files from the manifest in {project_dir}")
    return Case(name=name, label=label, manifest=plain, project_dir=project_dir, project_name=project_name)


def prepare_generated(n: int, tags: int = N_TAGS) -> Case:
    """A generated project of n models and its manifest from `dbt parse` (minutes for 10k; reused while the
    generator, the dbt version and the arguments are unchanged)."""
    gen = _load_gen()
    out = WORK / f"gen{n}"
    stamp = out / ".bench-stamp.json"
    from importlib.metadata import version

    want = {
        "generator_sha256": hashlib.sha256((BENCH / "gen_dbt_project.py").read_bytes()).hexdigest(),
        "models": n,
        "tags": tags,
        "seed": SEED,
        "dbt-core": version("dbt-core"),
        "dbt-duckdb": version("dbt-duckdb"),
    }
    manifest = out / "target" / "manifest.json"
    if not (stamp.exists() and manifest.exists() and json.loads(stamp.read_text()) == want):
        stamp.unlink(missing_ok=True)
        log(f"gen{n}: generating {n} models, {tags} tags")
        summary = gen.generate(n, tags, out, seed=SEED)
        log(f"gen{n}: dbt parse (the benchmark uses dbt's own manifest) ...")
        seconds = gen.run_dbt_parse(out)
        log(f"gen{n}: dbt parse took {seconds:.0f}s; {summary['models']} models, {summary['tests']} tests")
        stamp.write_text(json.dumps(want))
    return Case(
        name=f"gen{n}",
        label=f"generated, {n:,} models, {tags} tags",
        manifest=manifest,
        project_dir=out,
        project_name=gen.PROJECT,
        generated=n,
    )


_PATH_KEYS = ("config", "project_dir", "manifest")


def _absolute_paths(data: dict) -> None:
    """The bench config lives in var/bench/parse_cost/configs/: make the repo config's relative paths
    (which are relative to its own folder) absolute. Path keys: project_dir, manifest, config, *_dir,
    *_path, *_file in any section; in profiles' env, the variables the orchestrator resolves as paths
    and every relative sqlite:/// URL."""
    path_vars = {"DEMO_DATA_DIR", "WAREHOUSE_DUCKDB_PATH"}
    for name, section in data.items():
        if name == "profiles" or not isinstance(section, dict):
            continue
        for key, value in section.items():
            if (
                isinstance(value, str)
                and not os.path.isabs(value)
                and (key in _PATH_KEYS or key.endswith(("_dir", "_path", "_file")))
            ):
                section[key] = str(ROOT / value)
    for profile in (data.get("profiles") or {}).values():
        env = profile.get("env") or {}
        for key, value in env.items():
            value = str(value)
            if key in path_vars and value and not os.path.isabs(value):
                env[key] = str(ROOT / value)
            elif value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
                env[key] = f"sqlite:///{ROOT / value[len('sqlite:///') :]}"


def write_config(
    name: str,
    *,
    manifest: Path | None = None,
    project_dir: Path | None = None,
    tags: list[str] | None = None,
    granularity: str = "dag",
    meltano_project: Path | None = None,
) -> Path:
    """A copy of orchestration.yml pointed at the benchmark's inputs (absolute paths)."""
    data = yaml.safe_load((ROOT / "orchestration.yml").read_text(encoding="utf-8"))
    data.setdefault("dbt", {}).setdefault("project_dir", "dbt_project")
    data["dbt"].setdefault("manifest", "dbt_project/target/manifest.json")
    data.setdefault("meltano", {}).setdefault("project_dir", "meltano")
    _absolute_paths(data)
    dbt = data["dbt"]
    if manifest is not None:
        dbt.update(manifest=str(manifest), project_dir=str(project_dir), tags=list(tags or []), tag_prefix=None)
    dbt["task_granularity"] = granularity
    if meltano_project is not None:
        data["meltano"]["project_dir"] = str(meltano_project)
    path = WORK / "configs" / f"{name}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by bench/parse_cost.py: orchestration.yml pointed at a benchmark input.\n" + yaml.safe_dump(
        data, sort_keys=False
    )
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # unchanged: keep its mtime (plan cache)
        path.write_text(text, encoding="utf-8")
    return path


def choose_tags(case: Case) -> None:
    """The tags that become DAGs (see the module doc), checked against our plan."""
    dbt = load_manifest(case.manifest)
    case.models = sum(1 for n in dbt.buildable if n.resource_type == "model")
    counts = Counter(t for n in dbt.buildable for t in n.tags)
    if case.generated:
        tags = sorted((t for t in counts if t.startswith("domain_")), key=lambda t: -int(t.split("_", 1)[1]))
    else:
        tags = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:N_TAGS]]
    # No tag is dropped any more: lineage-aware placement renders every tag set of the real
    # manifests without a cycle. A plan error is a finding, not something to tune away.
    path = write_config(f"{case.name}-probe", manifest=case.manifest, project_dir=case.project_dir, tags=tags)
    plan = plan_from_config(load_config(path), kinds=("dbt",), cache_dir=None)
    if plan.errors:
        raise SystemExit(f"{case.name}: the plan has errors: {[str(e) for e in plan.errors]}")
    case.tags = tags
    case.catch_all = any(d.tag is None for d in plan.of_kind("dbt"))
    case.placed_by_rule = len(plan.placement)
    (WORK / "configs" / f"{case.name}-probe.yml").unlink(missing_ok=True)


def prepare_meltano_project() -> Path:
    """A bench copy of meltano/ (its YAML files only) with the schedules appended; meltano/ is untouched."""
    dest = WORK / "meltano_project"
    src = ROOT / "meltano"
    files = [
        src / "meltano.yml",
        *sorted((src / "extract").glob("*.meltano.yml")),
        *sorted((src / "load").glob("*.meltano.yml")),
        *sorted((src / "extract" / "streams").glob("*.json")),
    ]
    for f in files:
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = f.read_text(encoding="utf-8")
        if f.name == "meltano.yml":
            text += "\n" + SCHEDULES.read_text(encoding="utf-8")
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return dest


# --------------------------------------------------------------------------- expectations


def expected_ours(config: Path, kinds: tuple[str, ...] | None = None) -> dict[str, int]:
    """{dag_id: task count} of what dags/ must render, from the plan, kind by kind as the DAG files do."""
    from orchestrator.plan.model import KINDS

    cfg = load_config(config)
    out: dict[str, int] = {}
    for kind in kinds or KINDS:
        plan = plan_from_config(cfg, kinds=(kind,), cache_dir=None)
        if plan.errors:
            raise SystemExit(f"{config}: the plan has errors: {plan.errors[:3]}")
        # a cycle wait that is not one of the DAG's tasks is a sensor of its own (a per-model DAG's;
        # before f74891c, every waiting DAG's)
        out.update({d.dag_id: len(d.tasks) + _sensor(d) for d in plan.of_kind(kind)})
    return out


def _sensor(dag) -> int:
    """1 if the DAG's cycle wait (plan/cycles.py) is a sensor task before its own tasks, else 0."""
    wait = getattr(dag, "wait_task", None)
    return int(bool(wait) and wait not in {t.task_id for t in dag.tasks})


def expected_cosmos(case: Case) -> dict[str, int]:
    """{dag_id: dbt resources (models, seeds, snapshots)} each cosmos DbtDag must render a task for."""
    dbt = load_manifest(case.manifest)
    out = {f"cosmos_{_cosmos_slug(t)}": sum(1 for n in dbt.buildable if t in n.tags) for t in case.tags}
    if case.catch_all:
        out["cosmos_untagged"] = sum(1 for n in dbt.buildable if not set(n.tags) & set(case.tags))
    return out


def _cosmos_slug(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)


# --------------------------------------------------------------------------- measuring


@dataclass
class System:
    key: str  # ours | ours_cold | ours_model | cosmos | classic
    label: str
    python: Path
    paths: list[Path]
    env: dict[str, str]
    check: object  # callable(result) -> str | None (what is wrong)
    runs: list[dict] = field(default_factory=list)
    error: str | None = None


def _base_env(home: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "ORCHESTRAT", "COSMOS_", "DBT_", "MELTANO_")) and k != "PIPELINE_PROFILE"
    }
    # No DagBag import timeout: Airflow's default (30 s) would cut the slow cases short; the table
    # marks every DagBag slower than that default.
    env.update(
        AIRFLOW_HOME=str(WORK / home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="0",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
    )
    return env


GC_FROZEN = True  # main() sets it from --gc
PER_FILE = False  # main() sets it from --per-file


def probe(system: System, serialize: bool, log_path: Path) -> dict:
    """One measurement: the DagBag of the system's paths in one process, or (--per-file) of each DAG
    file in a process of its own, as the DAG processor parses them, the figures summed."""
    files = [f for p in system.paths for f in (sorted(p.glob("*.py")) if p.is_dir() else [p])]
    if not PER_FILE or len(files) < 2:
        return _probe(system, system.paths, serialize, log_path)
    runs = [_probe(system, [f], serialize, log_path.with_name(f"{log_path.stem}-{f.stem}.log")) for f in files]
    out = dict(runs[0])
    for key in ("started_s", "imports_s", "dagbag_s", "dagbag_cpu_s", "process_age_s", "serialize_s", "wall_s"):
        if all(key in r for r in runs):
            out[key] = sum(r[key] for r in runs)
    for key in ("rss_before_kib", "rss_peak_kib", "rss_peak_serialized_kib"):
        if all(key in r for r in runs):
            out[key] = max(r[key] for r in runs)
    out["dags"] = {k: v for r in runs for k, v in r["dags"].items()}
    out["tasks"] = sum(r["tasks"] for r in runs)
    out["import_errors"] = {k: v for r in runs for k, v in r["import_errors"].items()}
    out["per_file"] = {
        f.name: {k: r[k] for k in ("dagbag_s", "dagbag_cpu_s", "wall_s") if k in r}
        for f, r in zip(files, runs, strict=True)
    }
    return out


def _probe(system: System, paths: list[Path], serialize: bool, log_path: Path) -> dict:
    argv = [str(system.python), str(PROBE), *map(str, paths)] + (["--serialize"] if serialize else [])
    argv += ["--gc-frozen"] if GC_FROZEN else []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=system.env, stdout=subprocess.PIPE, stderr=err, text=True)
        result, wall = None, None
        for line in proc.stdout:
            if line.startswith(PROBE_MARK):
                if result is None:
                    wall = time.perf_counter() - t  # the wall clock stops when the DagBag is loaded
                    result = json.loads(line[len(PROBE_MARK) :])
                else:
                    result.update(json.loads(line[len(PROBE_MARK) :]))
        proc.wait()
    if result is None:
        raise RuntimeError(f"{system.label}: the probe failed (exit {proc.returncode}); see {log_path}")
    result["wall_s"] = wall
    result["loadavg"] = os.getloadavg()[0]
    return result


def check_ours(expected: dict[str, int]):
    def check(r: dict) -> str | None:
        if r["import_errors"]:
            return f"import errors: {r['import_errors']}"
        got = {d: v["tasks"] for d, v in r["dags"].items()}
        if got != expected:
            return f"rendered {got}, the plan has {expected}"
        return None

    return check


def check_cosmos(expected: dict[str, int]):
    def check(r: dict) -> str | None:
        if r["import_errors"]:
            return f"import errors: {r['import_errors']}"
        resources = {d: sum(c for cls, c in v["types"].items() if "Test" not in cls) for d, v in r["dags"].items()}
        if resources != expected:
            wrong = {
                d: (resources.get(d), expected.get(d))
                for d in set(resources) | set(expected)
                if resources.get(d) != expected.get(d)
            }
            return f"dbt resource tasks (rendered, expected) differ: {dict(list(wrong.items())[:5])}"
        return None

    return check


def check_classic(n_schedules: int):
    def check(r: dict) -> str | None:
        if r["import_errors"]:
            return f"import errors: {r['import_errors']}"
        if len(r["dags"]) != n_schedules or r["tasks"] != n_schedules:
            return f"expected {n_schedules} DAGs of one task, got {r['dags']}"
        return None

    return check


def measure(
    case_name: str, systems: list[System], repeats: int, slow_repeats: int, slow_s: float, serialize: bool
) -> None:
    """One warm-up run each (checked), then `repeats` interleaved runs (fewer for a system slower than slow_s)."""
    wanted = {}
    for s in systems:
        if s.error:
            continue
        log(f"{case_name}: {s.label}: warm-up")
        try:
            r = probe(s, serialize, WORK / "logs" / f"{case_name}-{s.key}.log")
        except RuntimeError as exc:
            s.error = str(exc)
            log(f"  FAILED: {s.error}")
            continue
        s.error = s.check(r)
        if s.error:
            log(f"  FAILED: {s.error}")
        wanted[s.key] = min(slow_repeats, repeats) if r["wall_s"] > slow_s else repeats
        log(
            f"  {r['dagbag_s']:.2f}s DagBag, {r['wall_s']:.2f}s process, {r['rss_peak_kib'] / 1024:.0f} MB, "
            f"{len(r['dags'])} DAGs, {r['tasks']} tasks; {wanted[s.key]} runs"
        )
    for i in range(max(wanted.values(), default=0)):
        for s in systems:
            if s.error or i >= wanted.get(s.key, 0):
                continue
            r = probe(s, serialize, WORK / "logs" / f"{case_name}-{s.key}.log")
            s.error = s.check(r)
            if s.error:
                log(f"{case_name}: {s.label}: FAILED: {s.error}")
                continue
            s.runs.append(r)
            log(
                f"{case_name}: {s.label} run {i + 1}: {r['dagbag_s']:.3f}s DagBag, {r['wall_s']:.3f}s process, "
                f"{r['rss_peak_kib'] / 1024:.0f} MB"
            )


def summarize(s: System) -> dict:
    out = {"system": s.key, "label": s.label, "runs": len(s.runs), "error": s.error, "raw": s.runs}
    if not s.runs:
        return out
    last = s.runs[-1]

    def stats(xs):
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}

    out.update(
        dags=len(last["dags"]),
        tasks=last["tasks"],
        dagbag_s=stats([r["dagbag_s"] for r in s.runs]),
        process_s=stats([r["wall_s"] for r in s.runs]),
        imports_s=stats([r["imports_s"] for r in s.runs]),
        rss_peak_mb=stats([r["rss_peak_kib"] / 1024 for r in s.runs]),
        rss_dagbag_mb=stats([(r["rss_peak_kib"] - r["rss_before_kib"]) / 1024 for r in s.runs]),
        loadavg=stats([r["loadavg"] for r in s.runs]),
    )
    if "serialize_s" in last:
        out["serialize_s"] = stats([r["serialize_s"] for r in s.runs])
    if all("dagbag_cpu_s" in r for r in s.runs):
        out["dagbag_cpu_s"] = stats([r["dagbag_cpu_s"] for r in s.runs])
    return out


# --------------------------------------------------------------------------- cases


def dbt_systems(
    case: Case,
    skip: set[str],
    cosmos_python: Path | None,
    profiles_yml: Path,
    model_max: int = 5000,
    checkout: Path | None = None,
) -> list[System]:
    config = write_config(case.name, manifest=case.manifest, project_dir=case.project_dir, tags=case.tags)
    expected = expected_ours(config)
    env = _base_env("airflow-home-ours") | {"ORCHESTRATION_CONFIG": str(config)}
    cache = WORK / "cache" / case.name
    systems = []
    if checkout is not None:  # the same DAGs and tasks are expected: a change must not alter them
        systems.append(
            System(
                "ours_before",
                f"ours, before ({_short_commit(checkout)})",
                OUR_PYTHON,
                [checkout / "dags"],
                env | {"ORCHESTRATOR_CACHE_DIR": str(cache) + "-before", "PYTHONPATH": str(checkout)},
                check_ours(expected),
            )
        )
    systems.append(
        System(
            "ours",
            "ours",
            OUR_PYTHON,
            [ROOT / "dags"],
            env | {"ORCHESTRATOR_CACHE_DIR": str(cache)},
            check_ours(expected),
        )
    )
    if "cold" not in skip:
        systems.append(
            System(
                "ours_cold",
                "ours, cache off",
                OUR_PYTHON,
                [ROOT / "dags"],
                env | {"ORCHESTRATOR_CACHE_DIR": ""},
                check_ours(expected),
            )
        )
    if "model" not in skip and case.models <= model_max:
        config_m = write_config(
            f"{case.name}-model",
            manifest=case.manifest,
            project_dir=case.project_dir,
            tags=case.tags,
            granularity="model",
        )
        model = System(
            "ours_model",
            "ours, one task per model",
            OUR_PYTHON,
            [ROOT / "dags"],
            env
            | {
                "ORCHESTRATION_CONFIG": str(config_m),
                "ORCHESTRATOR_CACHE_DIR": str(WORK / "cache" / f"{case.name}-model"),
            },
            None,
        )
        try:
            model.check = check_ours(expected_ours(config_m))
        except Exception as exc:  # noqa: BLE001 -- the plan itself fails: report it, measure the rest
            model.error = f"the plan fails: {type(exc).__name__}: {exc}"
            log(f"{case.name}: {model.label}: {model.error}")
        systems.append(model)
    if "cosmos" not in skip and cosmos_python:
        spec = WORK / "cosmos_specs" / f"{case.name}.json"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(
            json.dumps(
                {
                    "manifest": str(case.manifest),
                    "project_dir": str(case.project_dir),
                    "project_name": case.project_name,
                    "profiles_yml": str(profiles_yml),
                    "profile_name": "bench",
                    "target_name": "duckdb",
                    "tags": case.tags,
                    "catch_all": case.catch_all,
                },
                indent=1,
            )
        )
        systems.append(
            System(
                "cosmos",
                "cosmos",
                cosmos_python,
                [COSMOS_DAG],
                _base_env("airflow-home-cosmos")
                | {
                    "COSMOS_BENCH_SPEC": str(spec),
                    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
                    "AIRFLOW__COSMOS__CACHE_DIR": str(WORK / "cosmos-cache"),
                },
                check_cosmos(expected_cosmos(case)),
            )
        )
    return systems


def meltano_systems(skip: set[str]) -> tuple[list[System], Path]:
    project = prepare_meltano_project()
    config = write_config("meltano", meltano_project=project)
    expected = expected_ours(config, kinds=("meltano",))
    env = _base_env("airflow-home-ours") | {"ORCHESTRATION_CONFIG": str(config)}
    systems = [
        System(
            "ours",
            "ours (dags/meltano_sources.py)",
            OUR_PYTHON,
            [ROOT / "dags" / "meltano_sources.py"],
            env | {"ORCHESTRATOR_CACHE_DIR": str(WORK / "cache" / "meltano")},
            check_ours(expected),
        ),
        System(
            "ours_cold",
            "ours, cache off",
            OUR_PYTHON,
            [ROOT / "dags" / "meltano_sources.py"],
            env | {"ORCHESTRATOR_CACHE_DIR": ""},
            check_ours(expected),
        ),
    ]
    if "classic" not in skip:
        meltano_bin = ROOT / ".venv" / "bin"
        classic_env = _base_env("airflow-home-ours") | {
            "MELTANO_PROJECT_ROOT": str(project),
            "PATH": f"{meltano_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        # Meltano's first call in a project creates its system database: not part of any parse.
        subprocess.run(
            [str(meltano_bin / "meltano"), "--log-level=warning", "schedule", "list", "--format=json"],
            cwd=project,
            env=classic_env,
            check=True,
            capture_output=True,
        )
        systems.append(
            System(
                "classic",
                "Meltano classic generator",
                OUR_PYTHON,
                [CLASSIC_DAG],
                classic_env,
                check_classic(len(expected)),
            )
        )
    return systems, project


def schedule_list_cost(project: Path, env: dict[str, str], repeats: int) -> dict:
    """What the classic generator pays on every parse, alone: `meltano schedule list --format=json`
    (wall time, and the meltano process's own peak RSS, from a small parent so no fork inherits a big heap)."""
    code = (
        "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(json.dumps({'s': time.perf_counter() - t, "
        "'rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    argv = [
        sys.executable,
        "-I",
        "-S",
        "-c",
        code,
        str(ROOT / ".venv" / "bin" / "meltano"),
        "--log-level=warning",
        "schedule",
        "list",
        "--format=json",
    ]
    runs = [
        json.loads(subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, check=True).stdout)
        for _ in range(repeats)
    ]
    seconds, mb = [r["s"] for r in runs], [r["rss_kib"] / 1024 for r in runs]
    return {
        "runs": len(runs),
        "s": {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)},
        "rss_mb": {"median": statistics.median(mb), "min": min(mb), "max": max(mb)},
    }


def _profiles_yml() -> Path:
    path = WORK / "profiles.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"bench:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n"
        f"      path: {WORK / 'bench.duckdb'}\n      schema: main\n      threads: 1\n"
    )
    return path


def versions(cosmos_python: Path | None) -> dict:
    def pkgs(python: Path, names: list[str]) -> dict:
        code = f"import json, importlib.metadata as m; print(json.dumps({{n: m.version(n) for n in {names!r}}}))"
        return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)

    out = {"ours": pkgs(OUR_PYTHON, ["apache-airflow", "dbt-core", "dbt-duckdb", "meltano", "msgspec"])}
    if cosmos_python:
        out["cosmos_venv"] = pkgs(cosmos_python, ["apache-airflow", "astronomer-cosmos", "dbt-core", "dbt-duckdb"])
    return out


def _short_commit(checkout: Path) -> str:
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or checkout.name


def compile_packages(checkout: Path) -> None:
    """Bytecode for what a DAG parse imports of `checkout` (see the module doc; compileall redoes
    only what changed)."""
    subprocess.run(
        [str(OUR_PYTHON), "-m", "compileall", "-q", *OUR_PACKAGES], cwd=checkout, check=True, stdout=subprocess.DEVNULL
    )


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "modified_tracked_files": dirty}


def machine() -> dict:
    def first(path: str, prefix: str) -> str:
        try:
            with open(path) as fh:
                return next((line for line in fh if line.startswith(prefix)), "")
        except OSError:
            return ""

    model = first("/proc/cpuinfo", "model name").partition(":")[2].strip()
    kib = first("/proc/meminfo", "MemTotal").split()
    mem = f"{int(kib[1]) / 1024 / 1024:.0f} GiB" if len(kib) > 1 else ""
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip() or str(os.cpu_count())
    return {
        "nproc": nproc,
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


# --------------------------------------------------------------------------- report


def _fmt(st: dict | None, digits: int = 2) -> str:
    if not st:
        return "-"
    return f"{st['median']:.{digits}f} ({st['min']:.{digits}f}-{st['max']:.{digits}f})"


def _ratio(a: dict | None, b: dict | None, key: str) -> str:
    if not a or not b or key not in a or key not in b or not b[key]["median"]:
        return "-"
    return (
        f"{a[key]['median'] / b[key]['median']:.0f}×"
        if a[key]["median"] / b[key]["median"] >= 10
        else f"{a[key]['median'] / b[key]['median']:.1f}×"
    )


TIMEOUT_S = 30.0  # Airflow's default core.dagbag_import_timeout


def _dagbag(st: dict) -> str:
    return _fmt(st, 3) + (" †" if st["median"] > TIMEOUT_S else "")


def markdown(report: dict) -> str:
    lines = [
        "### dbt: our dags/ against cosmos (one DbtDag per tag)",
        "",
        f"Probe: gc {report.get('gc', 'live')}"
        + ("; each DAG file in a process of its own, summed" if report.get("per_file") else "")
        + (f"; 'ours, before' is {report['checkout']['path']}" if report.get("checkout") else ""),
        "",
        "| manifest | models | tag DAGs | system | DAGs | tasks | runs | DagBag s | DagBag CPU s | whole process s | "
        "peak RSS MB | DagBag +MB | serialize s | ×ours DagBag | ×ours CPU | ×ours process |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in report["dbt"]:
        by = {s["system"]: s for s in case["systems"]}
        ours = by.get("ours")
        tags = f"{len(case['tags'])}" + (f" (−{len(case['dropped_tags'])} on cycles)" if case["dropped_tags"] else "")
        for i, s in enumerate(case["systems"]):
            head = f"| {case['label']} | {case['models']:,} | {tags} |" if i == 0 else "| | | |"
            if s.get("error") and not s["runs"]:
                lines.append(f"{head} {s['label']} | FAILED: {s['error'][:200]} |||||||||||||")
                continue
            ratio = s["system"] != "ours"
            lines.append(
                f"{head} {s['label']} | {s['dags']} | {s['tasks']:,} | {s['runs']} | "
                f"{_dagbag(s['dagbag_s'])} | {_fmt(s.get('dagbag_cpu_s'), 3)} | {_fmt(s['process_s'])} | "
                f"{s['rss_peak_mb']['median']:.0f} | {s['rss_dagbag_mb']['median']:.0f} | "
                f"{_fmt(s.get('serialize_s'), 3)} | "
                + " | ".join(_ratio(s, ours, k) if ratio else "" for k in ("dagbag_s", "dagbag_cpu_s", "process_s"))
                + " |"
            )
    if any(s.get("dagbag_s", {}).get("median", 0) > TIMEOUT_S for c in report["dbt"] for s in c["systems"]):
        lines += [
            "",
            f"† slower than Airflow's default `dagbag_import_timeout` ({TIMEOUT_S:.0f} s): with default "
            "settings the DAG processor gives up on this file (measured here with the timeout off).",
        ]
    if report.get("meltano"):
        m = report["meltano"]
        lines += [
            "",
            f"### Meltano: dags/meltano_sources.py against the classic generator ({m['schedules']} schedules)",
            "",
            "| system | DAGs | tasks | runs | DagBag s | whole process s | peak RSS MB | DagBag +MB | "
            "serialize s | ×ours DagBag | ×ours process |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        by = {s["system"]: s for s in m["systems"]}
        for s in m["systems"]:
            if s.get("error") and not s["runs"]:
                lines.append(f"| {s['label']} | FAILED: {s['error'][:200]} |||||||||")
                continue
            ratio = s["system"] != "ours"
            lines.append(
                f"| {s['label']} | {s['dags']} | {s['tasks']} | {s['runs']} | {_fmt(s['dagbag_s'], 3)} | "
                f"{_fmt(s['process_s'])} | {s['rss_peak_mb']['median']:.0f} | {s['rss_dagbag_mb']['median']:.0f} | "
                f"{_fmt(s.get('serialize_s'), 3)} | "
                f"{_ratio(s, by.get('ours'), 'dagbag_s') if ratio else ''} | "
                f"{_ratio(s, by.get('ours'), 'process_s') if ratio else ''} |"
            )
        if m.get("schedule_list"):
            sl = m["schedule_list"]
            lines += [
                "",
                f"`meltano schedule list --format=json` alone (the subprocess the classic generator runs on "
                f"every parse): {_fmt(sl['s'])} s, the meltano process's peak RSS "
                f"{sl['rss_mb']['median']:.0f} MB ({sl['runs']} runs).",
            ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--manifests",
        default=None,
        help="all | real | generated | none | comma-separated names (jaffle_shop, gitlab, gen5000, ...)",
    )
    parser.add_argument(
        "--generated", default=None, help="model counts of generated projects (default 1000,5000,10000)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="measured runs per system (default 5; --quick 2)")
    parser.add_argument("--slow-repeats", type=int, default=3, help="runs for a system whose warm-up took > --slow-s")
    parser.add_argument("--slow-s", type=float, default=60.0)
    parser.add_argument(
        "--model-max",
        type=int,
        default=5000,
        help="'ours, one task per model' only up to this many models (5k: a minute a run)",
    )
    parser.add_argument("--skip", default="", help="comma-separated: cosmos, classic, model, meltano, cold")
    parser.add_argument(
        "--checkout",
        type=Path,
        default=None,
        help="also measure this checkout's dags/ and code as 'ours, before' (a worktree of an earlier commit)",
    )
    parser.add_argument(
        "--per-file",
        action="store_true",
        help="each DAG file in a process of its own, as the DAG processor parses, the figures summed",
    )
    parser.add_argument(
        "--gc",
        choices=("frozen", "live"),
        default="frozen",
        help="frozen: gc.freeze() after Airflow's imports, as the DAG processor does before it forks (default)",
    )
    parser.add_argument("--no-serialize", action="store_true", help="do not time DagSerialization after the DagBag")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 runs, jaffle_shop, mattermost and 1,000 generated models"
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="only prepare the inputs (generate + dbt parse the projects, the cosmos venv), then stop",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    global GC_FROZEN, PER_FILE
    GC_FROZEN = args.gc == "frozen"
    PER_FILE = args.per_file
    repeats = args.repeats or (2 if args.quick else 5)
    generated = args.generated if args.generated is not None else ("1000" if args.quick else "1000,5000,10000")
    counts = [int(x) for x in generated.split(",") if x]
    selection = args.manifests or ("jaffle_shop,mattermost,gen1000" if args.quick else "all")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    real = sorted(REAL_MANIFESTS.glob("*.json.gz"))
    wanted_real, wanted_gen = [], []
    if selection in ("all", "real"):
        wanted_real = real
    if selection in ("all", "generated"):
        wanted_gen = counts
    if selection not in ("all", "real", "generated", "none"):
        names = set(selection.split(","))
        wanted_real = [p for p in real if _name_of(p)[0] in names]
        wanted_gen = [n for n in counts if f"gen{n}" in names] + [
            int(x[3:]) for x in names if x.startswith("gen") and x[3:].isdigit() and int(x[3:]) not in counts
        ]

    WORK.mkdir(parents=True, exist_ok=True)
    cosmos_python = None
    if "cosmos" not in skip and (wanted_real or wanted_gen):
        spec = importlib.util.spec_from_file_location("bench_cosmos_venv", BENCH / "cosmos" / "make_venv.py")
        make_venv = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make_venv)
        cosmos_python = make_venv.ensure_venv()
    report = {
        "command": " ".join([".venv/bin/python", "bench/parse_cost.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "git": git_state(),
        "versions": versions(cosmos_python),
        "repeats": repeats,
        "slow_repeats": args.slow_repeats,
        "slow_s": args.slow_s,
        "gc": args.gc,
        "per_file": args.per_file,
        "checkout": {"path": str(args.checkout), "commit": _short_commit(args.checkout)} if args.checkout else None,
        "dbt": [],
        "meltano": None,
    }
    profiles = _profiles_yml()
    cases = [prepare_real(p) for p in wanted_real] + [prepare_generated(n) for n in wanted_gen]
    if args.prepare_only:
        for case in cases:
            log(f"{case.name}: {case.manifest} ({case.manifest.stat().st_size / 1e6:.1f} MB)")
        return 0
    for code in [ROOT, *([args.checkout] if args.checkout else [])]:
        compile_packages(code)
    for case in cases:
        choose_tags(case)
        log(
            f"{case.name}: {case.models} models, tags {case.tags}"
            + (f", dropped on cycles: {case.dropped_tags}" if case.dropped_tags else "")
            + (", + catch-all" if case.catch_all else "")
        )
        systems = dbt_systems(case, skip, cosmos_python, profiles, args.model_max, args.checkout)
        measure(case.name, systems, repeats, args.slow_repeats, args.slow_s, not args.no_serialize)
        report["dbt"].append(
            {
                "name": case.name,
                "label": case.label,
                "manifest": str(case.manifest),
                "manifest_mb": case.manifest.stat().st_size / 1e6,
                "models": case.models,
                "tags": case.tags,
                "dropped_tags": case.dropped_tags,
                "catch_all": case.catch_all,
                "systems": [summarize(s) for s in systems],
            }
        )
    if "meltano" not in skip:
        systems, project = meltano_systems(skip)
        measure("meltano", systems, repeats, args.slow_repeats, args.slow_s, not args.no_serialize)
        report["meltano"] = {
            "project": str(project),
            "schedules": len(expected_ours(WORK / "configs" / "meltano.yml", kinds=("meltano",))),
            "systems": [summarize(s) for s in systems],
        }
        classic = next((s for s in systems if s.key == "classic"), None)
        if classic is not None:
            log("meltano: `meltano schedule list` alone")
            report["meltano"]["schedule_list"] = schedule_list_cost(project, classic.env, repeats)
    report["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(markdown(report))
    print(f"\n(JSON: {args.out})")
    failed = [f"{c['name']}/{s['system']}" for c in report["dbt"] for s in c["systems"] if s.get("error")]
    failed += [f"meltano/{s['system']}" for s in (report["meltano"] or {}).get("systems", []) if s.get("error")]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
