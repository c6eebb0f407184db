"""The Meltano DAGs, in named steps: check the profile's plugins, name the tables each extractor
loads, find the runs (Meltano schedules and jobs keep their name and interval; other extractors
run on the tick), then describe each DAG; and the Meltano State DAG over all of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..config import OrchestrationConfig
from ..config.schema import NO_INTERVAL, cron_problem
from .doc_md import asset_bullets
from .known_loaders import loader_warnings
from .meltano_project import MeltanoProject, Tables, expand, extractor_tables
from .model import AssetSpec, Issue, MeltanoDag, Part, Schedule, StateDag, TaskSpec
from .relations import loader_database, uri_database
from .translator import Translator


@dataclass(frozen=True)
class Run:
    """One `meltano run`: a DAG."""

    name: str
    argv: tuple[str, ...]
    extractors: tuple[str, ...]
    cron: str | None
    origin: str  # for the docs: where it comes from


def check_plugins(config: OrchestrationConfig, project: MeltanoProject) -> list[Issue]:
    profile, file = config.profile, project.path
    errors = []
    if profile.loader not in project.loaders:
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
    if project.environments and profile.meltano_environment not in project.environments:
        errors.append(
            Issue(
                file,
                f"environment {profile.meltano_environment}",
                f"profile {profile.name!r} runs in it, but meltano.yml defines only {', '.join(project.environments)}",
            )
        )
    return errors


def tables_fix(config: OrchestrationConfig, extractor: str, schema: str, source_relations: Iterable[str]) -> str:
    """How to name an extractor's tables when its `select` rules cannot: the key and the exact line,
    with the tables the dbt project reads from the extractor's schema when there are any."""
    read = sorted({r.split(".", 1)[1] for r in source_relations if r.split(".", 1)[0] == schema})
    listed = "[" + ", ".join(t if re.fullmatch(r"[\w$]+", t) else json.dumps(t) for t in read) + "]"
    listed = listed if read else f"[{schema}.<table>, ...]"
    return (
        f"name them under `meltano.tables` in {config.path.name}: add the line `{extractor}: {listed}` "
        f"under `tables:` in `meltano:`" + (f" (the tables dbt reads from {schema})" if read else "")
    )


def tables_loaded(
    config: OrchestrationConfig,
    project: MeltanoProject,
    env: Mapping[str, str],
    names: Translator,
    source_relations: Iterable[str] = (),
) -> tuple[dict[str, Tables], list[Issue]]:
    """The tables each extractor loads; a warning for one whose tables cannot be named (no or wildcard
    `select` rules), with the fix. `source_relations`: what dbt reads (schema.table), for the fix."""
    loader = project.loaders[config.profile.loader]
    tables, warnings = {}, []
    for name in config.profile.extractors:
        ext = project.extractors[name]
        t = extractor_tables(
            ext, loader, override=config.meltano.tables.get(name, ()), env=env, table_of=names.stream_table
        )
        if t.problem:
            fix = tables_fix(config, name, t.schema, source_relations) if not t.tables else ""
            warnings.append(Issue(ext.file, name, f"{t.problem}; {fix}" if fix else t.problem))
        tables[name] = t
    return tables, warnings


def loaded_twice(
    config: OrchestrationConfig, names: Translator, tables: dict[str, Tables], runs: list[Run]
) -> list[Issue]:
    """Two extractors of the profile that load one relation: an error, as two dbt nodes building one
    is (one Asset, two writers whose loads overwrite or interleave). The profile's loader writes
    every table into one database, so the same schema.table is the same relation. Both DAGs are
    left out."""
    first: dict[str, str] = {}  # relation -> the first extractor that loads it
    clashes: dict[tuple[str, str], list[str]] = {}
    for name, t in tables.items():
        for relation in t.tables:
            other = first.setdefault(relation, name)
            if other != name:
                clashes.setdefault((other, name), []).append(relation)
    dag_of = {e: names.meltano_dag_id(r.name) for r in runs for e in r.extractors}
    profile = config.profile.name
    return [
        Issue(
            str(config.path),
            f"profiles.{profile}.extractors",
            f"{a} and {b} both load {', '.join(sorted(rels)[:3])}{' ...' if len(rels) > 3 else ''}: "
            f"one relation cannot have two extractors; keep one of them in profile {profile!r}'s `extractors`",
            tuple(sorted({dag_of[a], dag_of[b]})),
        )
        for (a, b), rels in clashes.items()
    ]


def find_runs(config: OrchestrationConfig, project: MeltanoProject) -> tuple[list[Run], list[Issue], list[Issue]]:
    """Meltano schedules that run this profile's extractors keep their own name and interval; every
    other extractor of the profile runs on the tick."""
    profile = config.profile
    runs, warnings, errors = [], [], []
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
            argv: tuple[str, ...] = ("run", s.job)
        else:
            extractors, loaders = ((s.extractor,) if s.extractor else ()), {s.loader or ""}
            argv = ("run", s.extractor or "", s.loader or "")
        if not extractors or not set(extractors) <= set(profile.extractors) or loaders != {profile.loader}:
            continue  # a schedule of another profile
        cron = None if (s.interval or "") in NO_INTERVAL else s.interval
        if cron and (problem := cron_problem(cron)):
            errors.append(Issue(s.file, f"schedule {s.name}", f"interval {cron!r}: {problem}"))
            continue
        runs.append(Run(s.name, argv, extractors, cron, f"Meltano schedule `{s.name}` ({s.file})"))
        covered.update(extractors)
    for name in profile.extractors:
        if name not in covered:
            runs.append(Run(name, ("run", name, profile.loader), (name,), None, f"extractor `{name}`"))
    return runs, warnings, errors


def plan_meltano(
    config: OrchestrationConfig,
    project: MeltanoProject,
    names: Translator,
    env: Mapping[str, str],
    source_relations: Iterable[str] = (),
) -> Part:
    """One DAG per extractor of the profile, or per Meltano schedule that runs them (`source_relations`:
    the dbt sources, named in the fix of an extractor whose tables cannot be named)."""
    part = Part(errors=check_plugins(config, project))
    if part.errors:
        return part
    profile = config.profile
    tables, part.warnings = tables_loaded(config, project, env, names, source_relations)
    runs, w, part.errors = find_runs(config, project)
    part.warnings += w + loader_warnings(project.loaders[profile.loader])
    part.errors += loaded_twice(config, names, tables, runs)
    suffix = expand(project.state_id_suffix, env) if project.state_id_suffix else None
    database = meltano_database(config, project, env)
    for run in runs:
        state_of = {e: names.state_id(profile.meltano_environment, e, profile.loader, suffix) for e in run.extractors}
        loads: dict[str, str] = {}  # Asset -> the table the extractor's records are counted by
        for e in run.extractors:
            for relation, stream in zip(tables[e].tables, tables[e].streams, strict=True):
                name = names.asset_name(relation)
                loads[name] = relation.rpartition(".")[2]
                extra = names.meltano_asset_extra(e, stream or relation.split(".", 1)[1], state_of[e])
                part.assets[name] = AssetSpec(
                    _uri(names, name, relation, database), names.asset_group(relation), extra, relation, database
                )
        part.dags.append(meltano_dag(config, names, run, loads, tuple(state_of.values())))
    return part


def meltano_database(config: OrchestrationConfig, project: MeltanoProject, env: Mapping[str, str]) -> str | None:
    """The database the profile's loader writes to: its configuration's, else the profile's
    `warehouse_uri`'s; None when neither names one (relations.py)."""
    loader = project.loaders.get(config.profile.loader)
    configured = loader_database(loader.config, lambda v: expand(v, env)) if loader else None
    return configured or uri_database(config.profile.warehouse_uri)


def _uri(names: Translator, name: str, relation: str, database: str | None) -> str:
    return names.asset_uri(name, relation, database) if database else names.asset_uri(name, relation)


def meltano_dag(
    config: OrchestrationConfig, names: Translator, run: Run, loads: dict[str, str], state_ids: tuple[str, ...]
) -> MeltanoDag:
    """The DAG of one `meltano run`; `loads` maps each Asset it emits to the table whose records it counts."""
    profile, tick, outlets = config.profile, names.tick_asset(), tuple(loads)
    trigger = (
        f"the cron `{run.cron}` (kept from the Meltano schedule)"
        if run.cron
        else f"the [`{tick}`]({names.asset_link(tick)}) Asset"
    )
    return MeltanoDag(
        dag_id=names.meltano_dag_id(run.name),
        schedule=Schedule(cron=run.cron) if run.cron else Schedule(assets=(tick,)),
        outlets=outlets,
        tasks=(
            TaskSpec(
                task_id=names.task_id("meltano_run"),
                kind="meltano_run",
                args=run.argv,
                outlets=outlets,
                relations=tuple((table, asset) for asset, table in loads.items()),
            ),
        ),
        description=f"meltano {' '.join(run.argv)} ({profile.meltano_environment})",
        doc_md=(
            f"### Meltano: {run.origin}\n\n**Runs:** `meltano --environment {profile.meltano_environment} "
            f"{' '.join(run.argv)}` in `{config.meltano_project}`.\n\n**Triggered by:** {trigger}.\n\n"
            f"**Emits** one Asset per warehouse table it loads:\n\n{asset_bullets(names, outlets)}\n\n"
            f"**State:** {', '.join(f'`{s}`' for s in state_ids)}. One run at a time (state is "
            f"incremental); read or reset it with the `{names.state_dag_id()}` DAG."
        ),
        tags=("meltano", *(f"extractor:{e}" for e in run.extractors)),
        owner=config.defaults.owner,
        max_active_runs=1,
        pool=profile.warehouse_pool,
        extractor=run.extractors[0] if len(run.extractors) == 1 else None,
        extractors=run.extractors,
        loader=profile.loader,
        state_ids=state_ids,
    )


def plan_state(config: OrchestrationConfig, meltano_dags: list[MeltanoDag], names: Translator) -> StateDag:
    state_ids = tuple(s for d in meltano_dags for s in d.state_ids)
    sources = {s: d.dag_id for d in meltano_dags for s in d.state_ids}
    return StateDag(
        dag_id=names.state_dag_id(),
        schedule=Schedule(),
        outlets=(),
        tasks=(TaskSpec(task_id=names.task_id("meltano_state"), kind="meltano_state"),),
        description="Read or overwrite Meltano state (backfills), safely",
        doc_md=(
            "### Meltano state\n\n**Triggered by:** hand only, from the trigger form.\n\n"
            "Actions: `list`, `get`, `set`, `merge`, `clear` for one state ID. The default is a dry run that "
            "shows the diff; a real `set`, `merge` or `clear` first writes a backup of the previous state, and is "
            "refused while that source's DAG is running or queued.\n\n**State IDs:**\n\n"
            + "\n".join(f"- `{s}` (DAG `{d}`)" for s, d in sources.items())
        ),
        tags=("meltano", "state"),
        owner=config.defaults.owner,
        max_active_runs=1,
        state_ids=state_ids,
        state_dags=sources,
    )
