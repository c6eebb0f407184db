"""`orchestrator`: the command line of the pipeline.

The local launcher is imported by the commands that run it, when they run: `orchestrator plan`
must not pay for it. On top of this module, bench/import_cost.py measured local.service 4.9 s and
local.direct 3.0 s (2 cores under a load of ~10; BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
from pathlib import Path

from alerting import Alert

from . import settings
from .airflow.callbacks import airflow_alerts
from .check import run_check
from .config import ConfigError, load_config
from .config.schema import ENV_NAME_RE
from .init import add_init_command
from .plan import plan_from_config
from .plan.mermaid import mermaid
from .plan.text import plan_table


def _cycle(args: argparse.Namespace) -> int:
    from .local.direct import run_cycle
    from .runners.dbt import DbtError
    from .runners.meltano import MeltanoError
    from .runners.reconcile import ReconcileError

    config = load_config(args.config, args.profile)
    try:
        report = run_cycle(config, new_day=not args.no_new_day, meltano_log=print if args.verbose else None)
    except (MeltanoError, DbtError, ReconcileError) as exc:
        print(f"cycle failed: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _run(args: argparse.Namespace) -> int:
    from .local.airflow_env import AirflowLocalError
    from .local.service import run_airflow_cycle

    config = load_config(args.config, args.profile)
    try:
        cycle = run_airflow_cycle(config, new_day=not args.no_new_day)
    except AirflowLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"\nCycle through Airflow on profile '{config.profile.name}' "
        f"(source day(s) written: {', '.join(map(str, cycle.source_days)) or 'none'})\n"
    )
    print(cycle.summary())
    return 0 if cycle.ok else 1


def _service(args: argparse.Namespace) -> int:
    from .local import service
    from .local.airflow_env import AirflowLocalError

    config = load_config(args.config, args.profile)
    env = config.profile.environment()
    env.setdefault(settings.AIRFLOW_HOME.name, str(config.airflow_home()))
    if args.command == "up":
        try:
            return service.up(config, env, detach=args.detach)
        except AirflowLocalError as exc:  # did not start, or a component exited
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.command == "down":
        return service.down(config, env)
    return service.status(config, env)


def _env(args: argparse.Namespace) -> int:
    """`export NAME='value'` lines for `eval`: every name a shell identifier (else nothing is
    printed), every value single-quoted by shlex (no expansion, no command substitution)."""
    config = load_config(args.config, args.profile)
    profile = config.profile
    env = profile.environment()  # resolved against this shell: its own values win
    keys = {*profile.env_defaults, settings.PIPELINE_PROFILE.name, "DBT_TARGET", "MELTANO_SEND_ANONYMOUS_USAGE_STATS"}
    bad = sorted(k for k in keys if not ENV_NAME_RE.fullmatch(k))
    unsafe = sorted(k for k in keys if k not in bad and "\0" in env.get(k, ""))
    if bad or unsafe:
        where = f"{config.path}: profiles.{profile.name}.env"
        raise ConfigError(
            "\n".join(
                [f"{where}.{k}: {k!r} is not a shell variable name: nothing exported" for k in bad]
                + [
                    f"{where}.{k}: the value holds a NUL byte, which no shell variable can: nothing exported"
                    for k in unsafe
                ]
            )
        )
    for key in sorted(keys):
        print(f"export {key}={shlex.quote(env[key])}")
    return 0


def _config(args: argparse.Namespace):
    """The config file with the command's flags (--tags, --mode, --manifest, --meltano-project) on top."""
    return load_config(args.config, args.profile).with_overrides(
        tags=tuple(t.strip() for t in args.tags.split(",") if t.strip()) if args.tags is not None else None,
        mode=args.mode,
        manifest=Path(args.manifest).resolve() if args.manifest else None,
        meltano_project=Path(args.meltano_project).resolve() if args.meltano_project else None,
    )


def _load_plan(args: argparse.Namespace):
    return plan_from_config(_config(args), cache_dir=None)  # the CLI always reads the files afresh


def _plan(args: argparse.Namespace) -> int:
    plan = _load_plan(args)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
        return 0
    print(plan_table(plan))
    return 1 if plan.errors else 0


def _check(args: argparse.Namespace) -> int:
    """Exit 2: a file cannot be read or validated; 1: the plan has errors or a DAG file would not
    import (rendered here as Airflow would, unless --no-render); 0: every DAG file imports."""
    folder = Path(args.dags_folder).expanduser().resolve() if args.dags_folder else None
    report = run_check(_config(args), render=not args.no_render, dags_folder=folder)
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"error: {e}", file=sys.stderr)
    for n in report.notes:
        print(f"note: {n}")
    if report.dag_files:
        failing = sorted(f for f, e in report.dag_files.items() if e)
        print(
            f"DAG files: {len(report.dag_files) - len(failing)} of {len(report.dag_files)} import"
            + (f"; failing: {', '.join(failing)}" if failing else "")
        )
    counts = f"{len(report.warnings)} warning(s), {len(report.errors)} error(s)"
    if report.n_dags is None:
        print(f"no plan (a file cannot be read), {counts}")
    else:
        print(f"{report.n_dags} DAGs ({report.n_dbt_dags} dbt), {counts}")
    return report.exit_code


def _alerts(args: argparse.Namespace) -> int:
    """The alert outbox from the command line: what is pending or open, redeliver it, or send a test."""
    config = load_config(args.config, args.profile)
    notifier = airflow_alerts(config).notifier()
    if args.action == "redeliver":
        results = notifier.redeliver(include_future=args.all)
        for r in results:
            print(f"{r.status:<8} {r.kind:<12} route {r.route:<12} {r.error or ''}")
        print(f"{len(results)} delivery attempt(s)")
        return 0 if all(r.status == "sent" for r in results) else 1
    if args.action == "test":
        result = notifier.notify(
            Alert(
                "task_failed",
                "alerting_test",
                "send_test",
                run_id="manual",
                error="A test alert from `orchestrator alerts test`: routing works.",
            )
        )
        for d in result.deliveries:
            print(f"{d.status:<8} {d.kind:<12} route {d.route:<12} {d.error or ''}")
        return 0 if result.delivered else 1
    rows = [row for row in notifier.outbox.rows() if row["status"] in ("pending", "sending", "failed")]
    for row in rows:
        print(
            f"{row['status']:<8} {row['kind']:<12} {row['route']:<12} {row['dag_id'] or '-'}.{row['task_id'] or '-'} "
            f"attempts={row['attempts']} next={row['next_attempt_at']:%Y-%m-%d %H:%M:%S} {row['last_error'] or ''}"
        )
    open_ = [i for i in notifier.outbox.incidents() if i["resolved_at"] is None]
    for i in open_:
        print(
            f"open     {i['alert_kind']:<12} {i['route']:<12} {i['dag_id']}.{i['task_id'] or '-'} "
            f"since {i['opened_at']:%Y-%m-%d %H:%M:%S} x{i['count']}"
        )
    print(f"{len(rows)} undelivered, {len(open_)} open incident(s)")
    return 0


def _graph(args: argparse.Namespace) -> int:
    print(mermaid(_load_plan(args)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description="Meltano + dbt on Airflow 3, wired by Assets.")
    parser.add_argument("--config", help="orchestration config file (default: orchestration.yml of this repo)")
    parser.add_argument("--profile", help="profile to use (default: $PIPELINE_PROFILE or the file's default_profile)")
    sub = parser.add_subparsers(dest="command", required=True)
    # --config and --profile also after the command (`orchestrator check --config x.yml`); there
    # they win over the ones before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="orchestration config file")
    common.add_argument("--profile", default=argparse.SUPPRESS, help="profile to use")
    command = functools.partial(sub.add_parser, parents=[common])

    run = command(
        "run",
        help="run one pipeline cycle through a local Airflow: new source day, "
        "trigger the tick, wait for every DAG, report",
    )
    run.add_argument("--no-new-day", action="store_true", help="load what the sources hold; write no new day")
    run.set_defaults(func=_run)

    cycle = command("cycle", help="run one pipeline cycle directly: new source day, Meltano loads, dbt build")
    cycle.add_argument("--no-new-day", action="store_true", help="load what the sources hold; write no new day")
    cycle.add_argument("-v", "--verbose", action="store_true", help="stream Meltano's log")
    cycle.set_defaults(func=_cycle)

    up = command(
        "up",
        help="start the profile's Airflow (and mail sink) as a service: foreground, or in the background with --detach",
    )
    up.add_argument("--detach", action="store_true", help="run in the background; return once healthy")
    up.set_defaults(func=_service)
    command("down", help="stop what `up` started").set_defaults(func=_service)
    command("status", help="is it up, where, and the health of each component").set_defaults(func=_service)

    for name, func, text in (
        ("plan", _plan, "print the plan: every DAG, its schedule and outlets"),
        (
            "check",
            _check,
            "list warnings and errors, rendering every DAG file as Airflow would: "
            "exit 2 if a file cannot be read or validated, 1 on errors, 0 when every DAG file imports",
        ),
        ("graph", _graph, "print the tick -> Meltano -> dbt flow as a Mermaid diagram"),
    ):
        p = command(name, help=text)
        p.add_argument("--manifest", help="dbt manifest.json or .json.gz (default: the config's dbt.manifest)")
        p.add_argument("--meltano-project", help="a Meltano project directory or its meltano.yml")
        p.add_argument("--tags", help="orchestration tags, comma-separated, in precedence order (overrides the config)")
        p.add_argument("--mode", choices=["multi", "monolith"], help="one DAG per tag, or one for the project")
        if name == "plan":
            p.add_argument(
                "--json", action="store_true", help='JSON: {"dags": [...], "warnings": [...], "errors": [...]}'
            )
        if name == "check":
            p.add_argument(
                "--no-render",
                action="store_true",
                help="check the plan only: do not render the DAG files through Airflow (for machines without it)",
            )
            p.add_argument(
                "--dags-folder",
                metavar="DIR",
                help="the DAG folder Airflow will import, your own DAG files included (default: the config's "
                "paths.dags, which init writes, else this repo's dags/)",
            )
        p.set_defaults(func=func)

    alerts = command(
        "alerts",
        help="the alert outbox: status (undelivered, open incidents), "
        "redeliver, or send a test alert through the routing",
    )
    alerts.add_argument("action", choices=["status", "redeliver", "test"], nargs="?", default="status")
    alerts.add_argument("--all", action="store_true", help="redeliver: also rows whose backoff has not expired")
    alerts.set_defaults(func=_alerts)

    env = command(
        "env",
        help="print the profile's variables as shell exports, "
        'for running meltano or dbt by hand: eval "$(orchestrator env)"',
    )
    env.set_defaults(func=_env)
    add_init_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `orchestrator plan | head`: the reader left early, which is fine
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - what Python's docs advise: no flush error at exit
        return 0
    except (ConfigError, ValueError) as exc:  # ManifestError and MeltanoProjectError name their file
        for line in str(exc).splitlines() or [repr(exc)]:  # one problem a line, each naming its file
            print(f"error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
