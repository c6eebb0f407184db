"""The benchmark suite, one command.

    .venv/bin/python bench/run.py [--quick] [--only plan,parse,dbt,cycle,alerts] [--list]

Runs each section's script in its own process, streams its progress (stderr) to the terminal,
and writes its Markdown result to var/bench/<section>.md (the scripts write their JSON beside it);
var/bench/run.json records per section the command, its status, how long it took and the
machine's load. A --quick run writes all of it under var/bench/quick/ instead, so it never
overwrites a full run's results. A section that cannot run here is skipped with the reason; a
failed section does not stop the others (exit status 1).

Sections (in this order):
  imports what each import kept inside a function saves: bench/import_cost.py
  plan    the plan on every manifest: bench/plan_time.py (needs `make setup`: dbt_project's manifest)
  parse   DAG parse cost, ours against cosmos and Meltano's classic generator: bench/parse_cost.py
          (also var/bench/parse_cost.json; creates the cosmos virtualenv and the generated projects)
  dbt     a dbt DAG's task against a bare `dbt build` (demo project, a generated one, per-model
          tasks): bench/dbt_overhead.py --prepare-demo (loads its own warehouse; var/bench/dbt_overhead.json)
  cycle   cycle latency through a real Airflow with trivial tasks: bench/cycle_latency.py
          (the `production` configuration only when PostgreSQL and Redis answer on localhost)
  ratio   the demo's cycle through Airflow against the direct run, back to back: bench/cycle_ratio.py
  alerts  alert latency, faults and noise: bench/alert_latency.py (var/bench/alerts.json)

--quick runs each with fewer repeats and smaller inputs (a smoke test of the suite, minutes).

To add a section: write a function `name(ctx) -> Section`
returning the command to run (or a skip reason) and register it in SECTIONS.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "bench"
PYTHON = str(ROOT / ".venv" / "bin" / "python")


@dataclass
class Context:
    quick: bool

    @property
    def out(self) -> Path:
        """Where results go: a --quick run never overwrites a full run's (var/bench/quick/)."""
        return OUT / "quick" if self.quick else OUT

    def json(self, name: str) -> str:
        return str((self.out / f"{name}.json").relative_to(ROOT))


@dataclass
class Section:
    argv: list[str] = field(default_factory=list)  # the command; its stdout is the section's Markdown
    skip: str | None = None  # why it cannot run here
    env: dict[str, str] = field(default_factory=dict)


def plan(ctx: Context) -> Section:
    if not (ROOT / "dbt_project" / "target" / "manifest.json").exists():
        return Section(skip="dbt_project/target/manifest.json is missing: run `make setup` first")
    extra = ["--runs", "2", "--generated", "1000"] if ctx.quick else ["--runs", "5"]
    return Section([PYTHON, "bench/plan_time.py", *extra])


def parse(ctx: Context) -> Section:
    return Section(
        [PYTHON, "bench/parse_cost.py", *(["--quick"] if ctx.quick else []), "--out", ctx.json("parse_cost")]
    )


def dbt(ctx: Context) -> Section:
    if ctx.quick:
        return Section(
            [
                PYTHON,
                "bench/dbt_overhead.py",
                "--parts",
                "demo",
                "--prepare-demo",
                "--runs",
                "1",
                "--json",
                ctx.json("dbt_overhead"),
            ]
        )
    return Section(
        [
            PYTHON,
            "bench/dbt_overhead.py",
            "--parts",
            "demo,generated,per-model",
            "--prepare-demo",
            "--runs",
            "3",
            "--models",
            "500",
            "--tag",
            "domain_0",
            "--json",
            ctx.json("dbt_overhead"),
        ]
    )


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def cycle(ctx: Context) -> Section:
    configs = ["embedded", "embedded-idle1s"]
    if _listening(5432) and _listening(6379):
        configs.insert(1, "production")
    if ctx.quick:
        return Section(
            [
                PYTHON,
                "bench/cycle_latency.py",
                "--cycles",
                "1",
                "--configs",
                "embedded",
                "--json",
                ctx.json("cycle_latency"),
            ]
        )
    return Section(
        [
            PYTHON,
            "bench/cycle_latency.py",
            "--cycles",
            "5",
            "--configs",
            ",".join(configs),
            "--json",
            ctx.json("cycle_latency"),
        ]
    )


def ratio(ctx: Context) -> Section:
    rounds = "1" if ctx.quick else "2"
    return Section([PYTHON, "bench/cycle_ratio.py", "--rounds", rounds, "--json", ctx.json("cycle_ratio")])


def alerts(ctx: Context) -> Section:
    return Section(
        [PYTHON, "bench/alert_latency.py", "--repeats", "5" if ctx.quick else "30", "--json", ctx.json("alerts")]
    )


def safety(ctx: Context) -> Section:
    return Section(
        [PYTHON, "bench/alert_safety.py", "--repeats", "3" if ctx.quick else "20", "--json", ctx.json("alert_safety")]
    )


def retry(ctx: Context) -> Section:
    models = "100" if ctx.quick else "500"
    return Section(
        [
            PYTHON,
            "bench/dbt_retry.py",
            "--models",
            models,
            "--runs",
            "1" if ctx.quick else "3",
            "--json",
            ctx.json("dbt_retry"),
        ]
    )


def changed(ctx: Context) -> Section:
    return Section([PYTHON, "bench/dbt_changed.py"])


def imports(ctx: Context) -> Section:
    return Section([PYTHON, "bench/import_cost.py", "--runs", "1" if ctx.quick else "5"])


SECTIONS: dict[str, Callable[[Context], Section]] = {
    "imports": imports,
    "plan": plan,
    "parse": parse,
    "dbt": dbt,
    "retry": retry,
    "changed": changed,
    "cycle": cycle,
    "ratio": ratio,
    "alerts": alerts,
    "safety": safety,
}


def _shown(argv: list[str]) -> str:
    return " ".join(a.replace(PYTHON, ".venv/bin/python").replace(str(ROOT) + "/", "") for a in argv)


def run_section(name: str, section: Section, out: Path) -> dict:
    md = out / f"{name}.md"
    record: dict = {"section": name, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "loadavg_start": os.getloadavg()}
    if not section.skip and len(section.argv) > 1 and not (ROOT / section.argv[1]).exists():
        section.skip = f"{section.argv[1]} does not exist"
    if section.skip:
        print(f"== {name}: skipped: {section.skip}", file=sys.stderr, flush=True)
        return record | {"status": "skipped", "reason": section.skip}
    command = _shown(section.argv)
    print(f"== {name}: {command}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    proc = subprocess.run(
        section.argv, cwd=ROOT, env=os.environ | section.env, stdout=subprocess.PIPE, text=True, check=False
    )
    seconds = time.perf_counter() - t
    md.write_text(f"<!-- {command} -->\n{proc.stdout}", encoding="utf-8")
    print(proc.stdout, flush=True)
    status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    print(f"== {name}: {status} in {seconds:.0f}s -> {md.relative_to(ROOT)}", file=sys.stderr, flush=True)
    return record | {
        "status": status,
        "command": command,
        "seconds": round(seconds, 1),
        "loadavg_end": os.getloadavg(),
        "markdown": str(md.relative_to(ROOT)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller inputs")
    parser.add_argument("--only", default="", help=f"comma-separated sections ({', '.join(SECTIONS)}); default all")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, fn in SECTIONS.items():
            section = fn(Context(quick=args.quick))
            print(f"{name:8} " + (f"skip: {section.skip}" if section.skip else _shown(section.argv)))
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    ctx = Context(quick=args.quick)
    ctx.out.mkdir(parents=True, exist_ok=True)
    records = [run_section(name, SECTIONS[name](ctx), ctx.out) for name in names]
    index = ctx.out / "run.json"  # the latest record of every section (a run with --only keeps the others')
    previous = json.loads(index.read_text()).get("sections", {}) if index.exists() else {}
    index.write_text(
        json.dumps({"sections": previous | {r["section"]: r | {"quick": args.quick} for r in records}}, indent=1)
    )
    print(
        "\n".join(
            f"{r['section']:8} {r['status']}" + (f" ({r['seconds']:.0f}s)" if "seconds" in r else "") for r in records
        ),
        file=sys.stderr,
    )
    return 0 if all(r["status"] in ("ok", "skipped") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
