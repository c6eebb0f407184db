"""The alerting housekeeping DAG: redeliver what the outbox holds, and check the lateness of the
dbt DAGs (when the manifest could be read: redelivery must not depend on it)."""

from __future__ import annotations

import fnmatch
from datetime import timedelta

from alerting.lateness import Expectation

from ..config import OrchestrationConfig
from .model import AlertingDag, DbtDag, Issue, Schedule, TaskSpec
from .translator import Translator


def expectations(config: OrchestrationConfig, dbt_dags: list[DbtDag]) -> list[Expectation]:
    """When each dbt DAG counts as late: `alerting.lateness.after_minutes`, or the first matching
    `alerting.lateness.dags` glob (null: never)."""
    out = []
    for d in dbt_dags:
        minutes = config.alerting.lateness.after_minutes
        for pattern, value in config.alerting.lateness.dags.items():
            if fnmatch.fnmatchcase(d.dag_id, pattern):
                minutes = value
                break
        if not minutes:
            continue
        # Any event of its Assets since the tick means it ran; a few suffice (a run emits them all).
        outlets = d.outlets[:3]
        if not outlets:  # a tests-only DAG emits nothing to see it by
            continue
        out.append(
            Expectation(
                dag_id=d.dag_id,
                upstream=d.schedule.assets,
                outlets=outlets,
                within=timedelta(minutes=minutes),
                dag_tags=d.tags,
                dbt_tag=d.tag,
            )
        )
    return out


def lateness_warnings(config: OrchestrationConfig, dbt_dags: list[DbtDag]) -> list[Issue]:
    """An `alerting.lateness.dags` key that names no dbt DAG of the plan: a typo or a renamed tag
    would otherwise silently leave that DAG on the default (or on no lateness check at all)."""
    ids = [d.dag_id for d in dbt_dags]
    return [
        Issue(
            str(config.path),
            f"alerting.lateness.dags.{pattern}",
            "matches no dbt DAG of this plan, so it sets no lateness; dbt DAGs: "
            + (", ".join(ids[:12]) or "none")
            + (f" (+{len(ids) - 12} more)" if len(ids) > 12 else ""),
        )
        for pattern in config.alerting.lateness.dags
        if not any(fnmatch.fnmatchcase(i, pattern) for i in ids)
    ]


def plan_alerting(config: OrchestrationConfig, dbt_dags: list[DbtDag] | None, names: Translator) -> AlertingDag:
    late = expectations(config, dbt_dags or [])
    tasks = [TaskSpec(task_id=names.task_id("redeliver"), kind="alerts_redeliver")]
    if late:
        tick = names.tick_asset()
        inlets = {tick, *(a for e in late for a in (*e.upstream, *e.outlets))}
        tasks.append(
            TaskSpec(
                task_id=names.task_id("check_lateness"),
                kind="alerts_lateness",
                args=(tick,),
                inlets=tuple(sorted(inlets)),
            )
        )
    listed = "\n".join(f"- `{e.dag_id}`: {int(e.within.total_seconds()) // 60} min after the tick" for e in late)
    return AlertingDag(
        dag_id=names.alerting_dag_id(),
        schedule=Schedule(cron=config.alerting.cron),
        outlets=(),
        tasks=tuple(tasks),
        description="Alerting housekeeping: redelivery and lateness",
        doc_md=(
            "### Alerting housekeeping\n\n`redeliver` sends what the alert outbox still holds (Slack or "
            "e-mail was down). `check_lateness` alerts about a dbt DAG that has not run in time after the "
            "tick, naming the upstream Assets that have not arrived. Trigger it with "
            '`{"as_of": "<ISO time>"}` to ask what would be late then.\n\n**Triggered by:** its cron '
            f"`{config.alerting.cron}` (UTC).\n\n**Expected:**\n\n" + (listed or "- none")
        ),
        tags=("alerting",),
        owner=config.defaults.owner,
        max_active_runs=1,
        lateness=tuple(e.to_dict() for e in late),
    )
