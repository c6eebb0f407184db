"""Every environment variable the orchestrator reads, in one place (the README's table is
`python -m orchestrator.settings`).

Variables that Meltano, dbt or the profile's `env` define for the tools themselves
(WAREHOUSE_*, SOURCE_*, DBT_TARGET, MELTANO_*) are not settings of ours: they pass through.
The alerting package reads its own ALERTING_* variables (alerting/routing_file.py, the outbox's
in alerting/outbox_tables.py, ALERTING_CONFIG in alerting/airflow.py); they are listed here too,
for the table. The orchestrator reads the few it needs (where the outbox is, the local mail sink's
SMTP host and port) through these Settings, never by a string of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    doc: str
    read_by: str = "orchestrator"

    def get(self, env: Mapping[str, str] | None = None) -> str:
        """The value, or the default when unset or empty."""
        value = (os.environ if env is None else env).get(self.name)
        return value if value else self.default

    def is_set(self, env: Mapping[str, str] | None = None) -> bool:
        return self.name in (os.environ if env is None else env)


ORCHESTRATION_CONFIG = Setting(
    "ORCHESTRATION_CONFIG",
    "",
    "the orchestration config file (default: orchestration.yml of this repo; a deployment's DAG file sets it)",
)
PIPELINE_PROFILE = Setting(
    "PIPELINE_PROFILE",
    "",
    "the profile of orchestration.yml to run (default: its `default_profile`, else its only profile)",
)
VAR_DIR = Setting(
    "ORCHESTRATOR_VAR_DIR",
    "",
    "where the orchestrator writes (default: `paths.var` of the config, "
    "`var/` beside it): plan cache, dbt runs, state backups, the local Airflow",
)
CACHE_DIR = Setting(
    "ORCHESTRATOR_CACHE_DIR", "", "the plan cache (default: <var>/cache); `off` (or set and empty) disables it"
)
MANIFEST_MAX_BYTES = Setting(
    "ORCHESTRATOR_MANIFEST_MAX_BYTES",
    "",
    "the most a gzipped manifest (.json.gz) may expand to, in bytes: a larger one is refused (default: "
    "its plausible size, 50x the .gz, at least 64 MiB, at most 512 MiB; a 10,000-model manifest is 144 MB)",
)
DBT_RUNS_DIR = Setting("DBT_RUNS_DIR", "", "each dbt DAG's private target directory (default: <var>/dbt)")
STATE_BACKUP_DIR = Setting(
    "MELTANO_STATE_BACKUP_DIR",
    "",
    "backups the Meltano State DAG writes before a change (default: <var>/meltano_state_backups)",
)
AIRFLOW_HOME = Setting(
    "ORCHESTRATOR_AIRFLOW_HOME", "", "the local Airflow of `orchestrator run`/`up` (default: <var>/airflow)"
)
AIRFLOW_EXECUTOR = Setting("ORCHESTRATOR_AIRFLOW_EXECUTOR", "", "overrides the profile's airflow.executor")
AIRFLOW_WORKERS = Setting("ORCHESTRATOR_AIRFLOW_WORKERS", "", "overrides the profile's airflow.workers")
AIRFLOW_METADATA_DB_URL = Setting("ORCHESTRATOR_AIRFLOW_METADATA_DB_URL", "", "overrides airflow.metadata_db_url")
AIRFLOW_BROKER_URL = Setting("ORCHESTRATOR_AIRFLOW_BROKER_URL", "", "overrides airflow.broker_url")
DBT_PROFILES_DIR = Setting(
    "DBT_PROFILES_DIR", "", "dbt's own: where profiles.yml is, when `dbt.profiles_dir` is not configured", read_by="dbt"
)
PRELOAD_DBT_PARSE = Setting(
    "ORCHESTRATOR_PRELOAD_DBT_PARSE",
    "1",
    "0: the task processes (embedded Airflow, Celery workers) start without the preload's `dbt parse` "
    "(dbt's serialisers compiled once per Airflow start, orchestrator/airflow/preload.py); each dbt task "
    "then compiles them itself",
)
DBT_SEND_ANONYMOUS_USAGE_STATS = Setting(
    "DBT_SEND_ANONYMOUS_USAGE_STATS",
    "",
    "dbt's own: set to false for the preload's `dbt parse` only (no tracker in a process that forks the tasks)",
    read_by="dbt",
)

ALERTING_CONFIG = Setting(
    "ALERTING_CONFIG", "alerting.yml", "the routing file when no orchestration config names it", "alerting"
)
ALERTING_OUTBOX_URL = Setting(
    "ALERTING_OUTBOX_URL",
    "",
    "the alert outbox database (a profile's env sets it; default: a SQLite file, see ALERTING_OUTBOX_PATH)",
    "alerting",
)
ALERTING_OUTBOX_PATH = Setting(
    "ALERTING_OUTBOX_PATH",
    "",
    "the outbox's SQLite file when ALERTING_OUTBOX_URL is unset, relative to the orchestration config "
    "(default: <var>/alerting/outbox.sqlite)",
    "alerting",
)
ALERTING_SMTP_HOST = Setting(
    "ALERTING_SMTP_HOST", "", "overrides email.smtp_host (the local mail sink sets it)", "alerting"
)
ALERTING_SMTP_PORT = Setting("ALERTING_SMTP_PORT", "", "overrides email.smtp_port", "alerting")
ALERTING = (
    ALERTING_CONFIG,
    ALERTING_OUTBOX_URL,
    ALERTING_OUTBOX_PATH,
    Setting("ALERTING_QUIET", "", "1/true: record alerts, send nothing (overrides `quiet:`)", "alerting"),
    Setting("ALERTING_SLACK_BASE_URL", "", "a Slack-compatible API base URL (tests, proxies)", "alerting"),
    ALERTING_SMTP_HOST,
    ALERTING_SMTP_PORT,
    Setting("SLACK_BOT_TOKEN", "", "the Slack bot token (the default slack.token_env)", "alerting"),
)

ALL = (
    ORCHESTRATION_CONFIG,
    PIPELINE_PROFILE,
    VAR_DIR,
    CACHE_DIR,
    MANIFEST_MAX_BYTES,
    DBT_RUNS_DIR,
    STATE_BACKUP_DIR,
    AIRFLOW_HOME,
    AIRFLOW_EXECUTOR,
    AIRFLOW_WORKERS,
    AIRFLOW_METADATA_DB_URL,
    AIRFLOW_BROKER_URL,
    DBT_PROFILES_DIR,
    PRELOAD_DBT_PARSE,
    DBT_SEND_ANONYMOUS_USAGE_STATS,
    *ALERTING,
)
_AIRFLOW = {
    "executor": AIRFLOW_EXECUTOR,
    "workers": AIRFLOW_WORKERS,
    "metadata_db_url": AIRFLOW_METADATA_DB_URL,
    "broker_url": AIRFLOW_BROKER_URL,
}


def airflow_override(key: str, env: Mapping[str, str] | None = None) -> str:
    """ORCHESTRATOR_AIRFLOW_<KEY>, or ""."""
    return _AIRFLOW[key].get(env)


def markdown_table() -> str:
    rows = ["| variable | read by | default | what |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.read_by} | {s.default or '-'} | {s.doc} |" for s in ALL]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
