"""Compute the plan: every DAG, its schedule, tasks and outlet Assets, plus warnings and errors.

Assets are warehouse relations, lower-case `schema.table`: what a Meltano
extractor loads and what a dbt source reads are the same Asset, so wiring
falls out of names both tools already know.

The plan is built per kind (tick, meltano, dbt, meltano_state) so that each DAG
file reads only the inputs it needs: a broken manifest breaks the dbt DAGs'
file, not the Meltano DAGs'.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from .config import OrchestrationConfig
from .dbt_dags import bullets, slug
from .dbt_specs import plan_dbt
from .manifest import DbtProject
from .meltano_project import MeltanoProject, extractor_tables
from .model import KINDS, DagSpec, Issue, Plan, Schedule, TaskSpec

_NO_INTERVAL = {None, "", "@once", "@manual", "@none"}


def asset_uri(config: OrchestrationConfig, relation: str) -> str:
    """`<warehouse_uri>/<schema>/<table>`, e.g. postgres://host:5432/warehouse/raw_shop/orders."""
    base = config.profile.warehouse_uri.rstrip("/")
    if not base:
        return relation
    schema, _, table = relation.partition(".")
    return f"{base}/{schema}/{table}"


# --------------------------------------------------------------------------- tick


def plan_tick(config: OrchestrationConfig) -> DagSpec:
    return DagSpec(
        dag_id=config.tick_dag_id,
        kind="tick",
        schedule=Schedule(cron=config.tick_cron),
        outlets=(config.tick_asset,),
        tasks=(TaskSpec(task_id="emit_tick", kind="emit_tick", outlets=(config.tick_asset,)),),
        description=f"Starts every cycle: emits the `{config.tick_asset}` Asset on `{config.tick_cron}`",
        doc_md=(
            f"### The tick\n\n**Triggered by:** the cron `{config.tick_cron}` (or by hand).\n\n"
            f"**Emits:** the Asset `{config.tick_asset}`, which the Meltano DAGs (and any dbt DAG that reads "
            f"nothing produced upstream) are scheduled on. Everything downstream is data-aware."
        ),
        tags=("tick",),
        owner=config.owner,
        max_active_runs=1,
    )


# ------------------------------------------------------------------------ meltano


def _state_id(config: OrchestrationConfig, extractor: str, loader: str) -> str:
    return f"{config.profile.meltano_environment}:{extractor}-to-{loader}"


def plan_meltano(
    config: OrchestrationConfig, project: MeltanoProject
) -> tuple[list[DagSpec], list[Issue], list[Issue]]:
    """One DAG per extractor of the profile, or per Meltano schedule that runs them."""
    profile, file = config.profile, project.path
    warnings: list[Issue] = []
    errors: list[Issue] = []
    loader = project.loaders.get(profile.loader)
    if loader is None:
        errors.append(
            Issue(
                file, profile.loader, f"profile {profile.name!r} loads with it, but no loader of that name is defined"
            )
        )
    for extractor in profile.extractors:
        if extractor not in project.extractors:
            errors.append(
                Issue(file, extractor, f"profile {profile.name!r} runs it, but no extractor of that name is defined")
            )
    if errors:
        return [], warnings, errors
    env = profile.environment()
    tables: dict[str, tuple[str, ...]] = {}
    for name in profile.extractors:
        ext = project.extractors[name]
        t = extractor_tables(ext, loader, override=config.meltano_tables.get(name, ()), env=env)
        if t.problem:
            warnings.append(Issue(ext.file, name, t.problem))
        tables[name] = t.tables

    # Meltano schedules that run this profile's extractors keep their own name and interval.
    runs: list[tuple[str, tuple[str, ...], tuple[str, ...], str | None, str]] = []  # id, argv, extractors, cron, why
    covered: set[str] = set()
    for s in project.schedules:
        if s.job:
            blocks = project.jobs.get(s.job)
            if blocks is None:
                warnings.append(Issue(s.file, s.name, f"schedule runs job {s.job!r}, which is not defined"))
                continue
            plugins = [p for block in blocks for p in block]
            extractors = tuple(p for p in plugins if p in project.extractors)
            loaders = {p for p in plugins if p in project.loaders}
            argv = ("run", s.job)
        else:
            extractors, loaders = ((s.extractor,) if s.extractor else ()), {s.loader}
            argv = ("run", s.extractor or "", s.loader or "")
        if not extractors or not set(extractors) <= set(profile.extractors) or loaders != {profile.loader}:
            continue  # a schedule of another profile
        cron = None if s.interval in _NO_INTERVAL else s.interval
        runs.append((s.name, argv, extractors, cron, f"Meltano schedule `{s.name}` ({s.file})"))
        covered.update(extractors)
    for name in profile.extractors:
        if name not in covered:
            runs.append((name, ("run", name, profile.loader), (name,), None, f"extractor `{name}`"))

    dags = []
    for run_name, argv, extractors, cron, origin in runs:
        outlets = tuple(t for e in extractors for t in tables[e])
        schedule = Schedule(cron=cron) if cron else Schedule(assets=(config.tick_asset,))
        trigger = f"the cron `{cron}` (kept from the Meltano schedule)" if cron else f"the `{config.tick_asset}` Asset"
        state_ids = tuple(_state_id(config, e, profile.loader) for e in extractors)
        dag_id = config.meltano_dag_id_prefix + slug(run_name)
        dags.append(
            DagSpec(
                dag_id=dag_id,
                kind="meltano",
                schedule=schedule,
                outlets=outlets,
                tasks=(TaskSpec(task_id="meltano_run", kind="meltano_run", args=argv, outlets=outlets),),
                description=f"meltano {' '.join(argv)} ({profile.meltano_environment})",
                doc_md=(
                    f"### Meltano: {origin}\n\n**Runs:** `meltano --environment {profile.meltano_environment} "
                    f"{' '.join(argv)}` in `{config.meltano_project}`.\n\n**Triggered by:** {trigger}.\n\n"
                    f"**Emits** one Asset per warehouse table it loads:\n\n{bullets(outlets)}\n\n"
                    f"**State:** {', '.join(f'`{s}`' for s in state_ids)}. One run at a time (state is "
                    f"incremental); read or reset it with the `{config.state_dag_id}` DAG."
                ),
                tags=("meltano", *(f"extractor:{e}" for e in extractors)),
                owner=config.owner,
                max_active_runs=1,
                pool=profile.warehouse_pool,
                extractor=extractors[0] if len(extractors) == 1 else None,
                loader=profile.loader,
                state_ids=state_ids,
            )
        )
    return dags, warnings, errors


def plan_state(config: OrchestrationConfig, meltano_dags: list[DagSpec]) -> DagSpec:
    state_ids = tuple(s for d in meltano_dags for s in d.state_ids)
    sources = {s: d.dag_id for d in meltano_dags for s in d.state_ids}
    return DagSpec(
        dag_id=config.state_dag_id,
        kind="meltano_state",
        schedule=Schedule(),
        outlets=(),
        tasks=(TaskSpec(task_id="meltano_state", kind="meltano_state"),),
        description="Read or overwrite Meltano state (backfills), safely",
        doc_md=(
            "### Meltano state\n\n**Triggered by:** hand only, from the trigger form.\n\n"
            "Actions: `list`, `get`, `set`, `merge`, `clear` for one state ID. The default is a dry run that "
            "shows the diff; a real `set`, `merge` or `clear` first writes a backup of the previous state, and is "
            "refused while that source's DAG is running or queued.\n\n**State IDs:**\n\n"
            + "\n".join(f"- `{s}` (DAG `{d}`)" for s, d in sources.items())
        ),
        tags=("meltano", "state"),
        owner=config.owner,
        max_active_runs=1,
        state_ids=state_ids,
        state_dags=sources,
    )


# ---------------------------------------------------------------------------- alerting


def plan_alerting(config: OrchestrationConfig, dbt_dags: list[DagSpec] | None) -> DagSpec:
    """The alerting housekeeping DAG: redeliver what the outbox holds, and check lateness of the
    dbt DAGs (when the manifest could be read: redelivery must not depend on it)."""
    lateness = []
    for d in dbt_dags or []:
        minutes = config.late_after_minutes
        for pattern, value in config.late_after_overrides.items():
            if fnmatch.fnmatchcase(d.dag_id, pattern):
                minutes = value
                break
        if minutes is None:
            continue
        # Any event of its Assets since the tick means it ran; a few suffice (a run emits them all).
        lateness.append(
            {
                "dag_id": d.dag_id,
                "upstream": list(d.schedule.assets),
                "outlets": list(d.outlets[:3]),
                "within_s": minutes * 60,
                "dag_tags": list(d.tags),
                "dbt_tag": d.tag,
            }
        )
    tasks = [TaskSpec(task_id="redeliver", kind="alerts_redeliver")]
    inlets: set[str] = set()
    if lateness:
        inlets = {config.tick_asset, *(a for e in lateness for a in (*e["upstream"], *e["outlets"]))}
        tasks.append(
            TaskSpec(
                task_id="check_lateness",
                kind="alerts_lateness",
                args=(config.tick_asset,),
                inlets=tuple(sorted(inlets)),
            )
        )
    late = "\n".join(f"- `{e['dag_id']}`: {e['within_s'] // 60} min after the tick" for e in lateness) or "- none"
    return DagSpec(
        dag_id=config.alerting_dag_id,
        kind="alerting",
        schedule=Schedule(cron=config.alerting_cron),
        outlets=(),
        tasks=tuple(tasks),
        description="Alerting housekeeping: redelivery and lateness",
        doc_md=(
            "### Alerting housekeeping\n\n`redeliver` sends what the alert outbox still holds (Slack or "
            "e-mail was down). `check_lateness` alerts about a dbt DAG that has not run in time after the "
            "tick, naming the upstream Assets that have not arrived. Trigger it with "
            '`{"as_of": "<ISO time>"}` to ask what would be late then.\n\n**Triggered by:** its cron '
            f"`{config.alerting_cron}` (UTC).\n\n**Expected:**\n\n" + late
        ),
        tags=("alerting",),
        owner=config.owner,
        max_active_runs=1,
        lateness=tuple(lateness),
    )


# ---------------------------------------------------------------------------- all


def assemble(
    config: OrchestrationConfig,
    *,
    kinds: Iterable[str] = KINDS,
    meltano: MeltanoProject | None = None,
    dbt: DbtProject | None = None,
) -> Plan:
    """Assemble the plan of the given kinds from already-loaded inputs."""
    kinds = set(kinds)
    plan = Plan(profile=config.profile.name)
    plan.assets[config.tick_asset] = config.tick_asset
    if "tick" in kinds:
        plan.dags.append(plan_tick(config))
    meltano_dags: list[DagSpec] = []
    if meltano is not None:
        meltano_dags, w, e = plan_meltano(config, meltano)
        plan.warnings += w
        plan.errors += e
        if "meltano" in kinds:
            plan.dags += meltano_dags
        if "meltano_state" in kinds:
            plan.dags.append(plan_state(config, meltano_dags))
    produced = {t: d.dag_id for d in meltano_dags for t in d.outlets}
    dbt_dags: list[DagSpec] | None = None
    if dbt is not None and ({"dbt", "alerting"} & kinds):
        dbt_dags, w, e, placed = plan_dbt(config, dbt, produced)
        if "dbt" in kinds:
            plan.dags += dbt_dags
            plan.warnings += w
            plan.errors += e
            plan.placement = placed
    if "alerting" in kinds:
        plan.dags.append(plan_alerting(config, dbt_dags))
    for d in plan.dags:
        for name in (*d.outlets, *d.schedule.assets, *(a for t in d.tasks for a in t.inlets)):
            plan.assets.setdefault(name, asset_uri(config, name) if name != config.tick_asset else name)
    seen: dict[str, str] = {}
    for d in plan.dags:
        if d.dag_id in seen:
            plan.errors.append(
                Issue(str(config.path), d.dag_id, f"two DAGs have this id ({seen[d.dag_id]} and {d.kind})")
            )
        seen[d.dag_id] = d.kind
    return plan
