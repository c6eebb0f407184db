"""Time the plan on real and generated manifests.

    .venv/bin/python bench/plan_time.py [--runs 7] [--generated 1000,5000,10000] [--markdown]
        [--both-ways 0.3] [--only-generated] [--gc-on] [--checkout DIR]

For each manifest, three numbers (medians of --runs, seconds):
  cold   a fresh Python process: import the plan, read the inputs, build every kind (no cache)
  warm   the same, repeated in one process (imports done, no cache); also its CPU time
         (process_time), which a busy shared machine inflates far less than the wall clock
  cached a parse of plan_errors.py when nothing changed: stat the inputs and load the cached
         plan of every kind; also its CPU time
  dbt    what dags/dbt_tags.py pays on each parse: the cached plan of the dbt kind alone (CPU),
         its DAGs' node lists left undecoded (model.Deferred: a task reads its own when it runs);
         bench/plan_kinds.py adds what the render reads of the Assets
  floor  the least any warm build pays for the manifest: read its bytes (gunzip a .gz) and let
         msgspec walk the JSON into a Struct with no fields (every byte scanned, nothing kept; CPU)
Tags: the manifest's 20 most frequent tags (generated projects: their domain tags; ours: orchestration.yml's).
--both-ways SHARE also generates each size with domains that reference each other both ways
(bench/gen_dbt_project.py --both-ways: forced cycles, split into stages). --gc-on leaves the
garbage collector on while the plan is built or loaded (the figure before it was paused).
--checkout DIR also measures the plan code of another checkout (a worktree of main: the figures
before a change) on the same manifests, each manifest's two rows one after the other (each code
in a process of its own), so the before and after columns are taken side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
# The code measured: this checkout's, or (--code, in the subprocess --checkout starts) another's.
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

from orchestrator.config import load_config  # noqa: E402
from orchestrator.plan import plan_from_config  # noqa: E402
from orchestrator.plan.manifest import _read_bytes, load_manifest  # noqa: E402

REAL_MANIFESTS = ROOT / "tests" / "data" / "manifests"  # vendored: tests/data/README.md
GC_ON = False


class _Nothing(msgspec.Struct):
    """A manifest with none of its fields: what decoding costs when it keeps nothing (the floor)."""


def _tags(path: Path, n: int = 20) -> tuple[str, ...]:
    if path == ROOT / "dbt_project" / "target" / "manifest.json":
        return tuple(load_config().dbt.tags)  # our own project: its configured tags
    counts = Counter(t for node in load_manifest(path).buildable for t in node.tags)
    domains = sorted(t for t in counts if t.startswith("domain_"))
    return tuple(domains) if domains else tuple(t for t, _ in counts.most_common(n))


def _cold(path: Path, tags: tuple[str, ...]) -> float:
    code = (
        f"import time; t=time.perf_counter(); from pathlib import Path; "
        f"from orchestrator.config import load_config; from orchestrator.plan import plan_from_config; "
        f"plan_from_config(load_config().with_overrides(manifest=Path({str(path)!r}), tags={tags!r}), cache_dir=None); "
        f"print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=CODE)
    return float(out.stdout.strip())


def measure(path: Path, runs: int) -> dict:
    tags = _tags(path)
    config = load_config().with_overrides(manifest=path, tags=tags)
    cold = [_cold(path, tags) for _ in range(runs)]
    warm, warm_cpu = [], []
    if GC_ON:
        import contextlib

        import orchestrator.plan as plan_module

        plan_module.gc_paused = contextlib.nullcontext  # type: ignore[attr-defined,assignment]
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        plan = plan_from_config(config, cache_dir=None)
        warm.append(time.perf_counter() - t)
        warm_cpu.append(time.process_time() - c)
    with tempfile.TemporaryDirectory() as cache:
        plan_from_config(config, cache_dir=Path(cache))
        plan_from_config(config, kinds=("dbt",), cache_dir=Path(cache))
        cached, cached_cpu, dbt_cpu = [], [], []
        for _ in range(runs):
            t, c = time.perf_counter(), time.process_time()
            plan_from_config(config, cache_dir=Path(cache))
            cached.append(time.perf_counter() - t)
            cached_cpu.append(time.process_time() - c)
            c = time.process_time()
            plan_from_config(config, kinds=("dbt",), cache_dir=Path(cache))
            dbt_cpu.append(time.process_time() - c)
    floor = []
    for _ in range(runs):
        c = time.process_time()
        msgspec.json.decode(_read_bytes(path), type=_Nothing)
        floor.append(time.process_time() - c)
    dbt = load_manifest(path)
    return {
        "manifest": path.name,
        "mb": path.stat().st_size / 1e6,
        "models": len(dbt.buildable),
        "sources": len(dbt.sources),
        "dags": len(plan.of_kind("dbt")),
        "warnings": len(plan.warnings),
        "errors": len(plan.errors),
        "cold": cold,
        "warm": warm,
        "warm_cpu": warm_cpu,
        "cached": cached,
        "cached_cpu": cached_cpu,
        "dbt_cpu": dbt_cpu,
        "floor": floor,
    }


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--generated", default="1000,5000,10000", help="model counts to generate ('' for none)")
    parser.add_argument("--tags", type=int, default=20, help="domain tags of generated projects")
    parser.add_argument("--both-ways", type=float, default=0.0, help="also generate each size with both-ways refs")
    parser.add_argument("--only-generated", action="store_true", help="skip the real manifests")
    parser.add_argument("--gc-on", action="store_true", help="leave the garbage collector on while building")
    parser.add_argument("--checkout", help="also measure the plan code of this checkout (e.g. a worktree of main)")
    parser.add_argument("--code", help=argparse.SUPPRESS)  # internal: the checkout this process measures
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one manifest, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one), args.runs)))
        return 0
    global GC_ON
    GC_ON = args.gc_on
    manifests = [] if args.only_generated else sorted(REAL_MANIFESTS.glob("*.json.gz"))
    manifests += [] if args.only_generated else [ROOT / "dbt_project" / "target" / "manifest.json"]
    shapes = [(n, 0.0) for n in [int(x) for x in args.generated.split(",") if x]]
    shapes += [(n, args.both_ways) for n, _ in shapes] if args.both_ways else []
    with tempfile.TemporaryDirectory() as tmp:
        for n, both in shapes:
            out = Path(tmp) / f"gen{n}_{both}"
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "gen_dbt_project.py"),
                    "--models",
                    str(n),
                    "--tags",
                    str(args.tags),
                    "--out",
                    str(out),
                    "--both-ways",
                    str(both),
                ],
                check=True,
                capture_output=True,
            )
            suffix = f"_both_ways_{both}" if both else ""
            generated = out / "target" / f"manifest_{n}_models{suffix}.json"
            (out / "target" / "manifest.json").rename(generated)
            manifests.append(generated)
        print(
            "| manifest | MB | nodes | sources | dbt DAGs | warnings | errors | cold process s | warm s | warm CPU s "
            "| cached s | cached CPU s | dbt file CPU s | floor CPU s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        codes = [("before", Path(args.checkout)), ("after", ROOT)] if args.checkout else [("", ROOT)]
        for path, (label, code) in ((p, c) for p in manifests for c in codes):
            one = [sys.executable, __file__, "--one", str(path), "--runs", str(args.runs), "--code", str(code)]
            out = subprocess.run(one + (["--gc-on"] if args.gc_on else []), capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"| {label} {r['manifest'][:48]} | {r['mb']:.1f} | {r['models']} | {r['sources']} | {r['dags']} | "
                f"{r['warnings']} | {r['errors']} | {_fmt(r['cold'])} | {_fmt(r['warm'])} | "
                f"{_fmt(r['warm_cpu'])} | {_fmt(r['cached'])} | {_fmt(r['cached_cpu'])} | {_fmt(r['dbt_cpu'])} | "
                f"{_fmt(r['floor'])} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
