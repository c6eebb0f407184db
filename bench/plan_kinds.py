"""What each DAG file of dags/ pays on each parse: the cached plan of its own kind, CPU time.

    .venv/bin/python bench/plan_kinds.py --models 10000 [--runs 5] [--rounds 2] [--checkout DIR]

Generates a project (bench/gen_dbt_project.py, 20 domain tags), then for each kind (tick, meltano,
dbt, meltano_state, alerting; "all" every kind, as `orchestrator check` reads it; "plan_errors.py"
what dags/plan_errors.py reads: the errors alone) stores its cached plan and times
`plan_from_config(config, kinds=(kind,))` loading it again: median of --runs loads (the plan kept
while timed, as a parse keeps it to render; freeing it is not a parse's cost). "dbt + Asset reads":
the dbt kind's load and then what its render reads of the Assets (a cached plan's Assets are
decoded when the first is read, so the load alone would not show their cost). With --checkout DIR the
same is measured with the plan code of DIR (a worktree of main: before a change), the two codes
in turn, --rounds times, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))


def measure(manifest: Path, runs: int) -> dict[str, float]:
    from orchestrator.config import load_config
    from orchestrator.plan import plan_from_config
    from orchestrator.plan.model import KINDS

    tags = tuple(sorted(f"domain_{i}" for i in range(20)))
    config = load_config().with_overrides(manifest=manifest, tags=tags)
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for kinds in [*((k,) for k in KINDS), KINDS]:
            plan_from_config(config, kinds=kinds, cache_dir=Path(cache))
            times, reads = [], []
            for _ in range(runs):
                c = time.process_time()
                plan = plan_from_config(config, kinds=kinds, cache_dir=Path(cache))  # kept: a parse renders it
                times.append(time.process_time() - c)
                if kinds == ("dbt",):
                    c = time.process_time()
                    _read_assets(plan)
                    reads.append(time.process_time() - c)
                del plan
            out[kinds[0] if len(kinds) == 1 else "all"] = statistics.median(times)
            if reads:
                out["dbt + Asset reads"] = statistics.median(t + r for t, r in zip(times, reads, strict=True))
        # What dags/plan_errors.py pays: the errors of the whole plan (a code before errors_only
        # read the whole plan for them: "all" again).
        times = []
        for _ in range(runs):
            c = time.process_time()
            try:
                plan_from_config(config, cache_dir=Path(cache), errors_only=True)
            except TypeError:
                plan_from_config(config, cache_dir=Path(cache))
            times.append(time.process_time() - c)
        out["plan_errors.py"] = statistics.median(times)
    return out


def _read_assets(plan) -> None:
    """What the dbt DAG file's render reads of the plan's Assets (orchestrator/airflow/render.py
    assets()): each Asset's URI, group and a copy of its extra, and the URI of each task's outlets."""
    for name in plan.assets:
        spec = plan.assets[name]
        (spec.uri, spec.group, dict(spec.extra))
    for dag in plan.dags:
        for task in dag.tasks:
            for name in task.outlets:
                plan.uri(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--checkout", help="also measure the plan code of this checkout")
    parser.add_argument("--code", help=argparse.SUPPRESS)  # internal: the checkout this process measures
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one manifest, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one), args.runs)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        gen = [sys.executable, str(ROOT / "bench" / "gen_dbt_project.py"), "--models", str(args.models)]
        subprocess.run([*gen, "--tags", "20", "--out", tmp], check=True, capture_output=True)
        manifest = Path(tmp) / "target" / "manifest.json"
        codes = [("before", Path(args.checkout)), ("after", ROOT)] if args.checkout else [("", ROOT)]
        rows: dict[str, list[dict[str, float]]] = {label: [] for label, _ in codes}
        for _ in range(args.rounds):
            for label, code in codes:
                one = [sys.executable, __file__, "--one", str(manifest), "--runs", str(args.runs), "--code", str(code)]
                out = subprocess.run(one, capture_output=True, text=True, check=True)
                rows[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    kinds = list(rows[codes[0][0]][0])
    print(f"| {args.models:,} models | " + " | ".join(f"{k} ms" for k in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for label, results in rows.items():
        cells = [" / ".join(f"{r[k] * 1000:.1f}" for r in results) for k in kinds]
        print(f"| {label or 'cached load'} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
