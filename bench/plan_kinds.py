"""What each DAG file of dags/ pays on each parse: the cached plan of its own kind, CPU time.

    .venv/bin/python bench/plan_kinds.py --models 10000 [--runs 5] [--rounds 2] [--checkout DIR]

Generates a project (bench/gen_dbt_project.py, 20 domain tags), then for each kind (tick, meltano,
dbt, meltano_state, alerting; "all" every kind, as `orchestrator check` reads it; "plan_errors.py"
what dags/plan_errors.py reads: the errors alone) stores its cached plan and times
`plan_from_config(config, kinds=(kind,))` loading it again: median of --runs loads, the garbage
collector's own pass after the load included (as in a DAG-file parse). With --checkout DIR the
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
            times = []
            for _ in range(runs):
                c = time.process_time()
                plan_from_config(config, kinds=kinds, cache_dir=Path(cache))
                times.append(time.process_time() - c)
            out[kinds[0] if len(kinds) == 1 else "all"] = statistics.median(times)
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
