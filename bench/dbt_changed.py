"""dbt work follows new data (`dbt.build: changed`), measured on the demo's embedded profile.

    .venv/bin/python bench/dbt_changed.py

1. A real cycle (a new demo day, Meltano and `dbt build`, orchestrator/local/direct.py), not counted.
2. On that warehouse, the project-wide `dbt build` the direct cycle runs, for each kind of day,
   its selection made by the rule the dbt DAGs follow (orchestrator/plan/changed.py) from the
   events such a day's loads emit: every table with rows (the full cycle), only one source's tables
   (marketing; the CRM), none. Per case: models built, tests run, dbt's wall time (median of 3 back to back, in this
   process: dbt imported once).
3. Real cycles under `changed` (`orchestrator cycle`'s path): a one-source day (a new demo day
   for marketing only: the other sources' files put back) and a no-new-data day: what the taps
   report, what the rule reads, what dbt builds.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3
sys.path.insert(0, str(ROOT))

from orchestrator.config import load_config  # noqa: E402
from orchestrator.local.direct import advance_sources, project_selection, run_cycle  # noqa: E402
from orchestrator.plan import plan_from_config  # noqa: E402
from orchestrator.runners.dbt import DbtProjectRef, run_dbt  # noqa: E402


def _config(build: str):
    config = load_config(ROOT / "orchestration.yml", "embedded")
    return config.model_copy(update={"dbt": config.dbt.model_copy(update={"build": build})})


def main() -> None:
    run_cycle(_config("all"), new_day=True, log=lambda line: None)
    config = _config("changed")
    env = config.profile.environment()
    plan = plan_from_config(config, cache_dir=None)
    tables = {a for d in plan.meltano_dags() for a in d.outlets}
    days = {
        "full cycle (every table new)": tables,
        "one source (marketing) new": {t for t in tables if t.startswith("raw_marketing.")},
        "one source (crm) new": {t for t in tables if t.startswith("raw_crm.")},
        "no new rows": set(),
    }
    target = config.dbt_runs_dir(env) / "bench"
    print(f"{'day':<32}{'models':>7}{'tests':>7}{'dbt s':>8}  dbt arguments")
    for name, new in days.items():
        events = [(t, {"records_extracted": 5 if t in new else 0}) for t in sorted(tables)]
        args, _ = project_selection(plan, tables, events)
        if args is None:
            print(f"{name:<32}{0:>7}{0:>7}{0.0:>8}  (dbt not started: every dbt event marked nothing_new)")
            continue
        walls = []
        for _ in range(REPEATS):  # the median: the first run of a target directory parses from scratch
            started = time.monotonic()
            result = run_dbt(args, env=env, project=DbtProjectRef.of(config, env), target_path=target)
            walls.append(time.monotonic() - started)
        wall = statistics.median(walls)
        models = sum(1 for m in result.of_type("model") if m.status == "success")
        print(f"{name:<32}{models:>7}{len(result.of_type('test')):>7}{wall:>8.2f}  {' '.join(args)}")
    print("\nreal cycles under changed (Meltano and dbt, orchestrator cycle's path):")
    _real(config, env, "one-source day (a new demo day for marketing only)", only="marketing")
    _real(config, env, "no-new-data day (no new demo day)", only=None)


def _real(config, env: dict[str, str], name: str, only: str | None) -> None:
    """A real cycle; `only`: write a new demo day, then put the other sources' files back as they
    were, so only that source has new rows (they skip that day: the next day's rows still agree)."""
    if only is not None:
        data = Path(env["DEMO_DATA_DIR"])
        kept = {f: f.read_bytes() for f in data.glob("*/*.jsonl") if f.parent.name != only}
        advance_sources(config.profile, env)
        for f, content in kept.items():
            f.write_bytes(content)
    report = run_cycle(config, new_day=False, log=lambda line: None)
    extracted = {f"{e}/{s}": n for e, r in report.loads.items() for s, n in sorted(r.records.items())}
    dbt = report.dbt
    built = sum(1 for m in dbt.of_type("model") if m.status == "success") if dbt else 0
    print(f"  {name}: extracted {extracted}")
    print(f"    new rows in: {', '.join(report.dbt_changed or []) or 'none'}")
    args = " ".join(dbt.args) if dbt else "-"
    print(f"    models built: {built}, dbt wall {dbt.duration_s if dbt else 0:.2f} s, args: {args}")


if __name__ == "__main__":
    main()
