"""dbt work follows new data (`dbt.build: changed`), measured on the demo's embedded profile.

    .venv/bin/python bench/dbt_changed.py

Direct path (orchestrator/local/direct.py run_cycle: Meltano, then one dbt invocation), with the
rule the dbt DAGs follow (orchestrator/plan/changed.py). Back to back, on this checkout's var/:

1. a warm-up cycle (a new demo day, `dbt.build: all`), not counted;
2. full cycle: a new demo day, every source has new rows (`all`);
3. full cycle under `changed` (every input changed: the plan's exact selection, the same build);
4. one-source day: a new demo day, only tap-crm runs (its rows are the only new ones), `changed`;
5. no-new-data day: no new demo day, tap-crm runs again, `changed`.

Per case: the dbt arguments, models built, tests run, and dbt's wall time (the runner's own).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.config import load_config  # noqa: E402
from orchestrator.local.direct import run_cycle  # noqa: E402


def _config(build: str, extractors: tuple[str, ...] | None = None):
    config = load_config(ROOT / "orchestration.yml", "embedded")
    config = config.model_copy(update={"dbt": config.dbt.model_copy(update={"build": build})})
    if extractors is not None:
        config._profile = config.profile.model_copy(update={"extractors": extractors})
    return config


def _case(name: str, config, new_day: bool) -> dict:
    started = time.monotonic()
    report = run_cycle(config, new_day=new_day, log=lambda line: None)
    wall = time.monotonic() - started
    dbt = report.dbt
    models = sum(1 for m in dbt.of_type("model") if m.status == "success") if dbt else 0
    tests = len(dbt.of_type("test")) if dbt else 0
    return {
        "case": name,
        "args": " ".join(dbt.args) if dbt else "(dbt not run)",
        "changed": ", ".join(report.dbt_changed or []) if report.dbt_changed is not None else "(all)",
        "models": models,
        "tests": tests,
        "dbt_s": round(dbt.duration_s, 2) if dbt else 0.0,
        "cycle_s": round(wall, 1),
    }


def main() -> None:
    _case("warm-up", _config("all"), new_day=True)
    rows = [
        _case("full cycle, dbt.build: all", _config("all"), new_day=True),
        _case("full cycle, dbt.build: changed", _config("changed"), new_day=True),
        _case("one-source day (tap-crm), changed", _config("changed", ("tap-crm",)), new_day=True),
        _case("no-new-data day (tap-crm), changed", _config("changed", ("tap-crm",)), new_day=False),
    ]
    print(f"{'case':<38}{'models':>7}{'tests':>7}{'dbt s':>8}{'cycle s':>9}  new rows in / dbt args")
    for r in rows:
        print(f"{r['case']:<38}{r['models']:>7}{r['tests']:>7}{r['dbt_s']:>8}{r['cycle_s']:>9}  {r['changed']}")
        print(f"{'':<69}{r['args']}")


if __name__ == "__main__":
    main()
