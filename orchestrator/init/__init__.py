"""`orchestrator init`: an orchestration config and one Airflow DAG file for your own dbt and Meltano projects.

    orchestrator init --dbt-project ../analytics --meltano-project ../ingest --dags-folder ~/airflow/dags

Reads dbt_project.yml, the dbt profile (by dbt's rules), meltano.yml and, when there is one, the
dbt manifest; proposes a profile (Meltano environment, loader, extractors, dbt target, warehouse
URI, placeholders for the variables both projects read) and the orchestration tags; writes
orchestration.yml, alerting.yml (only if absent) and the DAG files; prints the plan and the next
steps. Idempotent: the same inputs write the same bytes; a file that differs is refused
without --force (which keeps a .bak).

This module only registers the command (cheap: the CLI imports it at every start); the work is
in `command`. The DAG files it writes call orchestrator/airflow/dag_files.py, as dags/ does.
"""

from __future__ import annotations

import argparse
from typing import Any

TAGS_RULE = (
    "default: the manifest's tags, most frequent first (a tag on more nodes comes first, and "
    "first is the precedence for a node with several), each kept only if it adds a dbt DAG and the "
    "plan stays free of errors with it (no cycle forced between dbt DAGs, even one split into stages; "
    "no DAG id collision...), at most 8"
)


def _run(args: argparse.Namespace) -> int:
    # Only `orchestrator init` pays for it: 1.3 s on top of the CLI (bench/import_cost.py, BENCHMARKS.md).
    from .command import run_init

    return run_init(args)


def add_init_command(sub: Any) -> None:
    """Register `init` on the CLI's subparsers."""
    p = sub.add_parser(
        "init",
        help="write orchestration.yml and an Airflow DAG file for your own dbt and Meltano projects",
        description="Write an orchestration config (orchestration.yml), an alerting.yml if there is none, and "
        "one Airflow DAG file (plus a tiny file that shows plan errors) for an existing dbt project "
        "and Meltano project. Running it again with the same inputs changes nothing; a file that "
        "would change is refused unless --force (which keeps a .bak).",
    )
    p.add_argument("--dbt-project", required=True, metavar="DIR", help="the dbt project (holds dbt_project.yml)")
    p.add_argument("--meltano-project", required=True, metavar="DIR", help="the Meltano project (holds meltano.yml)")
    p.add_argument(
        "--config",
        dest="init_config",
        metavar="PATH",
        help="the orchestration config to write (default: ./orchestration.yml)",
    )
    p.add_argument(
        "--dags-folder",
        metavar="DIR",
        help="where to write the DAG files orchestrator_dags.py and orchestrator_plan_errors.py "
        "(default: dags/ beside the config). A folder inside the config's folder names the config relative "
        "to the DAG file (deploy them together); any other folder, e.g. your Airflow's dags folder, by its "
        "absolute path",
    )
    p.add_argument(
        "--profile",
        dest="init_profile",
        metavar="NAME",
        help="the name of the profile to write (default: the Meltano environment's name)",
    )
    p.add_argument(
        "--dbt-profiles-dir",
        metavar="DIR",
        help="where profiles.yml is (written as dbt.profiles_dir; default: dbt's rules: $DBT_PROFILES_DIR, "
        "the dbt project, ~/.dbt)",
    )
    p.add_argument("--target", metavar="NAME", help="the dbt target (default: the profile's `target:`)")
    p.add_argument(
        "--meltano-environment",
        metavar="NAME",
        help="default: meltano.yml's default_environment, else its first environment",
    )
    p.add_argument(
        "--loader",
        metavar="NAME",
        help="default: the only loader of meltano.yml, else the one its schedules and jobs use most",
    )
    p.add_argument(
        "--extractors",
        metavar="A,B",
        help="comma-separated (default: every extractor of meltano.yml that is not only a base that others "
        "inherit_from)",
    )
    p.add_argument("--tags", metavar="A,B", help=f"orchestration tags, in precedence order ({TAGS_RULE})")
    p.add_argument(
        "--parse",
        action="store_true",
        help="run `dbt deps` (if packages.yml) and `dbt parse` first, writing the project's own target/ "
        "(needs the variables profiles.yml reads); without it, an existing manifest is read and, if "
        "there is none, no tags are proposed",
    )
    p.add_argument("--force", action="store_true", help="overwrite files that differ (each kept as <file>.bak)")
    p.set_defaults(func=_run)
