"""The text of the files `orchestrator init` writes: orchestration.yml (with comments), a
starter alerting.yml, and the two DAG files. Pure functions of their inputs: the same inputs
give the same bytes (no time stamps), which is what makes init idempotent."""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from .. import settings

PLACEHOLDER = "CHANGE-ME"
OUTBOX_VAR, OUTBOX_URL = settings.ALERTING_OUTBOX_URL.name, "sqlite:///var/alerting/outbox.sqlite"
OTHER_TAGS = 40  # listed in the config's comment at most
DAG_FILE = "orchestrator_dags.py"
ERRORS_FILE = "orchestrator_plan_errors.py"


def scalar(value: object) -> str:
    """A YAML scalar as safe_dump writes it (quoted only when it must be)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def flow_list(values: tuple[str, ...] | list[str]) -> str:
    """`[a, b]`, quoted where a flow sequence needs it (a comma, a bracket...)."""
    return yaml.safe_dump(list(values), default_flow_style=True, allow_unicode=True, width=1 << 30).strip()


@dataclass(frozen=True)
class ConfigText:
    profile: str
    dbt_project_dir: str
    dbt_profiles_dir: str | None
    manifest: str
    manifest_exists: bool
    tags: tuple[str, ...]
    tags_given: bool
    other_tags: list[tuple[str, int, str]]  # tag, nodes carrying it, why it was left out (a few words)
    meltano_project_dir: str
    meltano_environment: str
    loader: str
    extractors: tuple[str, ...]
    dbt_target: str | None
    warehouse_uri: str
    uri_note: str
    adapter: str
    env_vars: dict[str, list[str]]  # name -> where it is read
    dags_folder: str = "dags"  # where init wrote the DAG files, as the config names it


def places_text(places: list[str]) -> str:
    """`a.yml: x; a.yml: y; b.yml: z` as `a.yml: x, y; b.yml: z`."""
    by_file: dict[str, list[str]] = {}
    for place in places:
        file, _, what = place.partition(": ")
        by_file.setdefault(file, []).append(what)
    return "; ".join(f"{f}: {', '.join(w for w in whats if w)}" if any(whats) else f for f, whats in by_file.items())


def _comment(text: str, indent: str, width: int = 100) -> list[str]:
    """`text` as comment lines of at most `width` characters."""
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + 2 + len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return [f"{indent}# {line}" for line in lines]


def config_text(c: ConfigText) -> str:
    out = [
        "# How Airflow runs this dbt project and Meltano project: written by `orchestrator init`, yours to",
        "# edit. Every key and its default: orchestrator/config/schema.py of the orchestrator. Relative paths",
        "# are relative to this file. Check it with `orchestrator --config <this file> check`.",
        f"default_profile: {scalar(c.profile)}",
        "",
        "dbt:",
        f"  project_dir: {scalar(c.dbt_project_dir)}",
    ]
    if c.dbt_profiles_dir:
        out.append(f"  profiles_dir: {scalar(c.dbt_profiles_dir)}      # where profiles.yml is")
    out += [
        "  # Written by `dbt parse`: run it in your deploy, before Airflow parses the DAG files.",
        f"  manifest: {scalar(c.manifest)}",
    ]
    if c.tags_given:
        out.append("  # Orchestration tags (--tags), in precedence order: one dbt DAG per tag.")
    elif c.manifest_exists:
        out += _comment(
            "Orchestration tags, in precedence order: one dbt DAG per tag, untagged nodes in dbt_untagged. "
            "Proposed by `orchestrator init`: the tags that split the models into domains (many models, little "
            "overlap; not labels such as daily or pii), most frequent first, each kept if it builds a DAG of its "
            "own and adds no error (at most 8).",
            "  ",
        )
    else:
        out += _comment(
            "No manifest yet, so no tags: every node runs in dbt_untagged. Run `dbt parse`, then "
            "`orchestrator init ... --force` to have tags proposed (or list them here).",
            "  ",
        )
    out.append(f"  tags: {flow_list(c.tags)}")
    if c.other_tags:
        noted = any(note for _, _, note in c.other_tags)
        others = ", ".join(f"{t} ({n}{': ' + note if note else ''})" for t, n, note in c.other_tags[:OTHER_TAGS])
        if len(c.other_tags) > OTHER_TAGS:
            others += f" and {len(c.other_tags) - OTHER_TAGS} more"
        what = "nodes carrying them: why left out" if noted else "nodes carrying them"
        out += _comment(f"Other tags in the manifest ({what}): {others}", "  ")
    out += [
        "",
        "meltano:",
        f"  project_dir: {scalar(c.meltano_project_dir)}",
        "",
        "alerting:",
        "  config: alerting.yml        # who hears about failures (names only: secrets never go there)",
        "",
        "paths:",
        "  var: var                    # what the orchestrator writes: plan cache, dbt runs, state backups",
        f"  {'dags: ' + scalar(c.dags_folder):<27} # the DAG files init wrote: what `check` imports, as Airflow will",
        "",
        "profiles:",
        f"  {scalar(c.profile)}:",
        f"    meltano_environment: {scalar(c.meltano_environment)}",
        f"    loader: {scalar(c.loader)}",
        f"    extractors: {flow_list(c.extractors)}",
    ]
    if c.dbt_target:
        out.append(f"    dbt_target: {scalar(c.dbt_target)}")
    out += _comment(f"Asset URIs are <warehouse_uri>/<schema>/<table>; proposed {c.uri_note}.", "    ")
    out.append(f"    warehouse_uri: {scalar(c.warehouse_uri)}")
    if c.adapter == "duckdb":
        out.append(
            "    warehouse_pool: null        # DuckDB's single writer: a file lock serialises the writes already"
        )
    else:
        out.append("    warehouse_pool: null        # or an Airflow pool that limits concurrent warehouse writes")
    out.append("    env:")
    out += _comment(
        "The alert outbox (undelivered alerts, dedup, incidents): SQLite in the var dir (a relative sqlite:/// "
        "path is relative to this file); a PostgreSQL URL when tasks run on several machines.",
        "      ",
    )
    out.append(f"      {OUTBOX_VAR}: {OUTBOX_URL}")
    if c.env_vars:
        out += _comment(
            f"Read by meltano.yml or profiles.yml with no default. {PLACEHOLDER} is a placeholder: set each "
            "variable in Airflow's environment (which wins over this file) or write its value here. "
            "Never put secrets in this file.",
            "      ",
        )
        width = max(len(n) for n in c.env_vars) + len(PLACEHOLDER) + 2
        for name in sorted(c.env_vars):
            entry = f"{name}: {PLACEHOLDER}"
            out.append(f"      {entry:<{width}}  # {places_text(c.env_vars[name])}")
    else:
        out.append("      # meltano.yml and profiles.yml read no variable without a default")
    return "\n".join(out) + "\n"


ALERTING_TEXT = """\
# Who hears about a failed, retried, recovered or late DAG (written by `orchestrator init`; yours
# to edit). Names only: the Slack bot token comes from $SLACK_BOT_TOKEN or the Airflow connection
# slack_api_default, SMTP credentials from email.username_env/password_env or email.conn_id.
# Until you name a destination and set quiet to false, alerts are only recorded in the outbox
# (ALERTING_OUTBOX_URL, default: SQLite under the var dir). The format: the orchestrator's README,
# section "Alerts", and its alerting.yml.
quiet: true
default: {}
#  slack_channel: "#data-alerts"
#  emails: [data-platform@example.com]
# routes:
#  - name: ingestion
#    match: {dag_tag: meltano}
#    slack_channel: "#data-ingestion"
"""


def _config_expr(config_ref: str, relative: bool) -> str:
    if relative:
        return f"Path(__file__).resolve().parent.joinpath({json.dumps(config_ref)}).resolve()"
    return f"Path({json.dumps(config_ref)})"


def dag_file_text(config_ref: str, relative: bool) -> str:
    return f'''"""Every Airflow DAG of the Meltano + dbt orchestrator for one orchestration config: the tick,
one DAG per Meltano source, one per dbt tag, the Meltano State DAG and the alerting DAG.
Written by `orchestrator init`; copy it (with {ERRORS_FILE}) into your dags folder.

A problem that leaves DAGs out (a broken manifest, a cycle the dbt tags force...) does not stop
the other DAGs: it shows as the import error of {ERRORS_FILE}.
"""

# Airflow parses only files that mention both "airflow" and "dag" (safe mode): this one does.
from pathlib import Path

from orchestrator.airflow.dag_files import render_dags

CONFIG = {_config_expr(config_ref, relative)}

globals().update(render_dags(config_path=CONFIG))
'''


def errors_file_text(config_ref: str, relative: bool) -> str:
    return f'''"""Problems of the orchestration plan, shown by Airflow as this file's import error: whatever
leaves DAGs out of {DAG_FILE} (a broken config, manifest or meltano.yml, a cycle the dbt tags
force, an invalid Asset URI...). No DAG is defined here. Written by `orchestrator init`.
"""

# Airflow parses only files that mention both "airflow" and "dag" (safe mode): this one does.
from pathlib import Path

from orchestrator.airflow.dag_files import raise_plan_errors

CONFIG = {_config_expr(config_ref, relative)}

raise_plan_errors(CONFIG, whole_kinds=True)
'''
