"""What making alerts safe costs, against what it cost before (issue 18): the redaction and bounds
every alert goes through (`sanitise_alert`), and the one YAML loader every configuration file goes
through, each measured side by side with the previous implementation, taken from git.

    .venv/bin/python bench/alert_safety.py [--repeats 20] [--json var/bench/alert_safety.json]

1. `sanitise_alert()` per alert, now (registered and environment secrets, detect-secrets'
   detectors, our own shapes, sizes bounded) and before (registered and environment secrets, URL
   passwords and xox* tokens, no bound on sizes; alerting/sanitise.py at BEFORE): a typical
   failure, a chatty one, and a huge one (2,000 dbt failures of 4 KB, a 1 MB blob), with the size
   of the outbox payload each makes;
2. loading this repository's configuration files, now (alerting/routing/yaml_file.py: an event
   scan, then libyaml) and before (orchestrator/profiles.py's load_yaml at BEFORE: libyaml with a
   duplicate-key check), and the time to refuse a 352-byte alias bomb.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerting.redaction.sanitise import sanitise_alert  # noqa: E402
from alerting.routing.yaml_file import YamlFileError, read_yaml  # noqa: E402

BEFORE = "9448287"  # main before issue 18's alerting work
CONFIG_FILES = [
    "orchestration.yml",
    "alerting.yml",
    "meltano/meltano.yml",
    "tests/fixtures/bikeshare/meltano/meltano.yml",
]
BOMB = "".join(
    f"{name}: &{name} [" + ", ".join([f"*{prev}" if prev else '"lol"'] * 9) + "]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def legacy_modules(tmp: Path) -> tuple[Any, Any]:
    """alerting's sanitise (with its events and redaction) and orchestrator's YAML loader, as
    they were at BEFORE, imported from a copy."""
    pkg = tmp / "legacy_alerting"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("events", "redaction", "sanitise"):
        source = subprocess.run(
            ["git", "show", f"{BEFORE}:alerting/{name}.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        (pkg / f"{name}.py").write_text(source)
    profiles = subprocess.run(
        ["git", "show", f"{BEFORE}:orchestrator/profiles.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    (tmp / "legacy_profiles.py").write_text(
        profiles.replace("from . import settings", "from orchestrator import settings")
    )
    sys.path.insert(0, str(tmp))
    return importlib.import_module("legacy_alerting.sanitise"), importlib.import_module("legacy_profiles")


def alerts(events: Any) -> dict[str, Any]:
    """The three alerts, built with the given events module (each version reads its own)."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    log = [f"2026-01-01 00:00:{i % 60:02d} | INFO | tap-shop | stream orders: batch {i} of 60 rows" for i in range(100)]
    return {
        "typical failure": events.Alert(
            kind="task_failed",
            dag_id="dbt_finance",
            task_id="dbt_build",
            run_id="scheduled__2026-01-01T00:00:00+00:00",
            error="Database Error in model fct_payments (models/marts/fct_payments.sql)\n  relation does not exist",
            dbt=events.DbtContext(tag="finance", failures=[events.DbtFailure("model.shop.fct_payments", message="x")]),
            occurred_at=when,
        ),
        "chatty failure (100 log lines, 20 dbt failures)": events.Alert(
            kind="task_failed",
            dag_id="meltano_tap_shop",
            task_id="run",
            run_id="manual__1",
            error="tap-shop failed: " + "y" * 2000,
            meltano=events.MeltanoContext("tap-shop", "dev:tap-shop-to-target-duckdb", log),
            dbt=events.DbtContext(
                failures=[events.DbtFailure(f"model.shop.m{i}", message="z" * 400) for i in range(20)]
            ),
            extra={"rows": 60, "stream": "orders"},
            occurred_at=when,
        ),
        "huge (2,000 dbt failures of 4 KB, a 1 MB blob)": events.Alert(
            kind="task_failed",
            dag_id="dbt_core",
            task_id="dbt_build",
            run_id="manual__2",
            error="dbt build failed",
            dbt=events.DbtContext(
                failures=[events.DbtFailure(f"model.shop.m{i}", message="w" * 4000) for i in range(2000)]
            ),
            extra={"blob": "b" * 1_000_000},
            occurred_at=when,
        ),
    }


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, float]:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), min(runs), max(runs)


def payload_size(alert: Any) -> int:
    return len(json.dumps(alert.to_dict(), default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"before": BEFORE, "sanitise": [], "yaml": []}
    with tempfile.TemporaryDirectory() as tmp:
        legacy_sanitise, legacy_profiles = legacy_modules(Path(tmp))
        legacy_events = sys.modules["legacy_alerting.events"]
        now_alerts = alerts(sys.modules["alerting.events"])
        old_alerts = alerts(legacy_events)
        print("| alert | now: median (min-max) | before | now / before | payload now | payload before |")
        print("|---|---|---|---|---|---|")
        for name in now_alerts:
            repeats = max(3, args.repeats // (10 if "huge" in name else 1))
            now = timed(lambda n=name: sanitise_alert(now_alerts[n]), repeats)
            old = timed(lambda n=name: legacy_sanitise.sanitise_alert(old_alerts[n]), repeats)
            size_now = payload_size(sanitise_alert(now_alerts[name]))
            size_old = payload_size(legacy_sanitise.sanitise_alert(old_alerts[name]))
            results["sanitise"].append({"alert": name, "now_s": now, "before_s": old, "payload": [size_now, size_old]})
            print(
                f"| {name} | {now[0] * 1e3:.2f} ms ({now[1] * 1e3:.2f}-{now[2] * 1e3:.2f}) | {old[0] * 1e3:.2f} ms "
                f"| {now[0] / old[0]:.1f}x | {size_now:,} B | {size_old:,} B |"
            )
        print()
        print("| file | now: median (min-max) | before | now / before |")
        print("|---|---|---|---|")
        for file in CONFIG_FILES:
            path = ROOT / file
            now = timed(lambda p=path: read_yaml(p), args.repeats * 5)
            old = timed(lambda p=path: legacy_profiles.load_yaml(p), args.repeats * 5)
            results["yaml"].append({"file": file, "bytes": path.stat().st_size, "now_s": now, "before_s": old})
            print(
                f"| {file} ({path.stat().st_size:,} B) | {now[0] * 1e3:.2f} ms ({now[1] * 1e3:.2f}-{now[2] * 1e3:.2f}) "
                f"| {old[0] * 1e3:.2f} ms | {now[0] / old[0]:.1f}x |"
            )
        bomb = Path(tmp) / "bomb.yml"
        bomb.write_text(BOMB)

        def refuse() -> None:
            try:
                read_yaml(bomb)
            except YamlFileError:
                return
            raise AssertionError("the alias bomb was not refused")

        refused = timed(refuse, args.repeats)
        results["bomb"] = {"bytes": len(BOMB), "refused_s": refused}
        print(f"\nA {len(BOMB)}-byte alias bomb is refused in {refused[0] * 1e3:.2f} ms (before: never: it hangs)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
