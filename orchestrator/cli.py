"""`orchestrator`: the command line of the pipeline."""

from __future__ import annotations

import argparse
import sys

from .profiles import ConfigError, load_profile


def _cycle(args: argparse.Namespace) -> int:
    from .cycle import run_cycle
    from .runners.dbt import DbtError
    from .runners.meltano import MeltanoError

    profile = load_profile(args.profile, args.config)
    try:
        report = run_cycle(profile, new_day=not args.no_new_day,
                           meltano_log=print if args.verbose else None)
    except (MeltanoError, DbtError) as exc:
        print(f"cycle failed: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _env(args: argparse.Namespace) -> int:
    import shlex

    profile = load_profile(args.profile, args.config)
    env = profile.environment()  # resolved against this shell: its own values win
    keys = {*profile.env_defaults, "PIPELINE_PROFILE", "DBT_TARGET", "MELTANO_SEND_ANONYMOUS_USAGE_STATS"}
    for key in sorted(keys):
        print(f"export {key}={shlex.quote(env[key])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orchestrator", description="Meltano + dbt on Airflow 3, wired by Assets.")
    parser.add_argument("--config", help="orchestration config file (default: orchestration.yml of this repo)")
    parser.add_argument("--profile", help="profile to use (default: $PIPELINE_PROFILE or the file's default_profile)")
    sub = parser.add_subparsers(dest="command", required=True)

    cycle = sub.add_parser("cycle", help="run one pipeline cycle directly: new source day, Meltano loads, dbt build")
    cycle.add_argument("--no-new-day", action="store_true", help="load what the sources hold; write no new day")
    cycle.add_argument("-v", "--verbose", action="store_true", help="stream Meltano's log")
    cycle.set_defaults(func=_cycle)

    env = sub.add_parser("env", help="print the profile's variables as shell exports, "
                                      "for running meltano or dbt by hand: eval \"$(orchestrator env)\"")
    env.set_defaults(func=_env)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
