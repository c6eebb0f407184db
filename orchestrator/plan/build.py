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
import re
from collections import defaultdict
from collections.abc import Iterable

from .config import OrchestrationConfig
from .manifest import DbtProject, Node
from .meltano_project import MeltanoProject, extractor_tables
from .model import KINDS, DagSpec, Issue, Plan, Schedule, TaskSpec

_NON_ID = re.compile(r"[^a-z0-9_]+")
_NO_INTERVAL = {None, "", "@once", "@manual", "@none"}


def slug(name: str) -> str:
    return _NON_ID.sub("_", name.lower()).strip("_") or "_"


def asset_uri(config: OrchestrationConfig, relation: str) -> str:
    """`<warehouse_uri>/<schema>/<table>`, e.g. postgres://host:5432/warehouse/raw_shop/orders."""
    base = config.profile.warehouse_uri.rstrip("/")
    if not base:
        return relation
    schema, _, table = relation.partition(".")
    return f"{base}/{schema}/{table}"


def _bullets(items: Iterable[str], limit: int = 25) -> str:
    items = list(items)
    shown = [f"- `{i}`" for i in items[:limit]]
    if len(items) > limit:
        shown.append(f"- ... and {len(items) - limit} more")
    return "\n".join(shown) or "- (none)"


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
                    f"**Emits** one Asset per warehouse table it loads:\n\n{_bullets(outlets)}\n\n"
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


# ---------------------------------------------------------------------------- dbt


def orchestration_tags(config: OrchestrationConfig, tags: tuple[str, ...]) -> list[str]:
    """A node's orchestration tags in precedence order: the configured list, then the prefix's, sorted."""
    listed = [t for t in config.tags if t in tags]
    prefixed = sorted(t for t in tags if config.tag_prefix and t.startswith(config.tag_prefix) and t not in listed)
    return listed + prefixed


def _tag_dag_id(config: OrchestrationConfig, tag: str) -> str:
    if config.tag_prefix and tag.startswith(config.tag_prefix):
        tag = tag[len(config.tag_prefix) :]
    return config.dbt_dag_id_prefix + slug(tag)


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(component)
    return out


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component, as a list of DAG ids (first repeated at the end)."""
    members = set(component)
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:  # BFS back to start: the shortest cycle through it
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]


def plan_dbt(
    config: OrchestrationConfig, dbt: DbtProject, produced: dict[str, str]
) -> tuple[list[DagSpec], list[Issue], list[Issue]]:
    """dbt DAGs from the manifest; `produced` maps a relation to the Meltano DAG that loads it."""
    warnings: list[Issue] = []
    errors: list[Issue] = []
    mf = dbt.path
    buildable = dbt.buildable

    # 1. Which DAG builds each node.
    owner_dag: dict[str, str] = {}
    dag_tag: dict[str, str | None] = {}
    if config.mode == "monolith":
        dag_tag[config.monolith_dag_id] = None
        owner_dag = {n.unique_id: config.monolith_dag_id for n in buildable}
    else:
        tag_of_dag: dict[str, str] = {}
        for n in buildable:
            tags = orchestration_tags(config, n.tags)
            if not tags:
                if config.catch_all:
                    owner_dag[n.unique_id] = config.catch_all_dag_id
                    dag_tag[config.catch_all_dag_id] = None
                continue
            if len(tags) > 1:
                warnings.append(
                    Issue(
                        n.file or mf,
                        n.unique_id,
                        f"has orchestration tags {', '.join(tags)}: it "
                        f"belongs to {_tag_dag_id(config, tags[0])} (first in precedence order)",
                    )
                )
            dag_id = _tag_dag_id(config, tags[0])
            other = tag_of_dag.setdefault(dag_id, tags[0])
            if other != tags[0]:
                continue  # reported below, once per pair
            owner_dag[n.unique_id] = dag_id
            dag_tag[dag_id] = tags[0]
        # Two tags that map to one DAG id (finance / Finance, a-b / a_b) are an error.
        by_id: dict[str, set[str]] = defaultdict(set)
        for tag in {*config.tags, *(t for n in buildable for t in orchestration_tags(config, n.tags))}:
            by_id[_tag_dag_id(config, tag)].add(tag)
        for dag_id, tags in sorted(by_id.items()):
            if len(tags) > 1:
                errors.append(
                    Issue(
                        str(config.path),
                        ", ".join(sorted(tags)),
                        f"these tags all map to the DAG id {dag_id!r}: rename one",
                    )
                )
        for tag in config.tags:
            if _tag_dag_id(config, tag) not in dag_tag:
                warnings.append(Issue(str(config.path), f"tag {tag}", "configured, but no model carries it"))
        untagged = [n for n in buildable if n.unique_id not in owner_dag]
        if untagged and not config.catch_all:
            for n in untagged:
                warnings.append(
                    Issue(
                        n.file or mf,
                        n.unique_id,
                        "has no orchestration tag and the catch-all DAG is off: no DAG builds it",
                    )
                )

    # 2. What each node reads, seen through ephemeral models (compiled into their readers).
    expanded: dict[str, tuple[str, ...]] = {}

    def reads(uid: str, trail: frozenset = frozenset()) -> tuple[str, ...]:
        if uid in expanded:
            return expanded[uid]
        out: list[str] = []
        for dep in dbt.nodes[uid].depends_on:
            node = dbt.nodes.get(dep)
            if node is not None and node.materialized == "ephemeral" and dep not in trail:
                out.extend(reads(dep, trail | {uid}))
            elif dep in dbt.sources or node is not None:
                out.append(dep)
        expanded[uid] = tuple(dict.fromkeys(out))
        return expanded[uid]

    members: dict[str, list[Node]] = defaultdict(list)
    for n in buildable:
        if n.unique_id in owner_dag:
            members[owner_dag[n.unique_id]].append(n)

    # 3. Each DAG's external reads: produced sources and other DAGs' models.
    edges: dict[str, set[str]] = {d: set() for d in members}
    witness: dict[tuple[str, str], tuple[str, str]] = {}
    schedule_assets: dict[str, set[str]] = {d: set() for d in members}
    unproduced: dict[str, set[str]] = defaultdict(set)
    unowned: dict[str, set[str]] = defaultdict(set)
    for dag_id, nodes in members.items():
        for n in nodes:
            for dep in reads(n.unique_id):
                if dep in dbt.sources:
                    relation = dbt.sources[dep].relation
                    if relation in produced:
                        schedule_assets[dag_id].add(relation)
                    else:
                        unproduced[dep].add(dag_id)
                    continue
                up = dbt.nodes[dep]
                if up.resource_type not in ("model", "seed", "snapshot"):
                    continue
                up_dag = owner_dag.get(dep)
                if up_dag is None:
                    unowned[dep].add(n.unique_id)
                elif up_dag != dag_id:
                    if up.relation:
                        schedule_assets[dag_id].add(up.relation)
                    edges[dag_id].add(up_dag)
                    witness.setdefault((dag_id, up_dag), (n.unique_id, dep))
    for source_id, dags in sorted(unproduced.items()):
        src = dbt.sources[source_id]
        warnings.append(
            Issue(
                src.file or mf,
                f"{source_id} ({src.relation})",
                f"no Meltano extractor of this profile loads it: left out of the schedule of {', '.join(sorted(dags))}",
            )
        )
    for dep, readers in sorted(unowned.items()):
        warnings.append(
            Issue(
                dbt.nodes[dep].file or mf,
                dep,
                f"read by {', '.join(sorted(readers)[:5])}, but no DAG builds it: not part of any schedule",
            )
        )

    # 4. Cycles between DAGs are errors naming the models on the cycle.
    for component in _sccs(edges):
        if len(component) < 2:
            continue
        path = _cycle_path(edges, component)
        hops = []
        for reader_dag, read_dag in zip(path, path[1:]):
            reader, read = witness[(reader_dag, read_dag)]
            hops.append(f"{reader} ({reader_dag}) reads {read} ({read_dag})")
        errors.append(Issue(mf, " -> ".join(path), "cycle between dbt DAGs: " + "; ".join(hops)))

    # 5. Tests run in the DAG that builds the last of their parents (dbt's `buildable` selection).
    downstream_of: dict[str, set[str]] = {}

    def ancestors(dag_id: str) -> set[str]:
        if dag_id not in downstream_of:
            seen: set[str] = set()
            todo = list(edges.get(dag_id, ()))
            while todo:
                d = todo.pop()
                if d not in seen:
                    seen.add(d)
                    todo.extend(edges.get(d, ()))
            downstream_of[dag_id] = seen
        return downstream_of[dag_id]

    tests_of: dict[str, list[str]] = defaultdict(list)
    for t in dbt.tests:
        parent_dags = {owner_dag.get(p) for p in t.depends_on if p in dbt.nodes}
        parent_dags.discard(None)
        if not parent_dags:
            continue
        if len(parent_dags) == 1:
            tests_of[parent_dags.pop()].append(t.unique_id)
            continue
        runners = sorted(d for d in parent_dags if parent_dags - {d} <= ancestors(d))  # deterministic
        if runners:
            tests_of[runners[0]].append(t.unique_id)
        else:
            warnings.append(
                Issue(
                    t.file or mf,
                    t.unique_id,
                    f"reads models of {', '.join(sorted(parent_dags))}, "
                    f"which do not depend on each other: no DAG runs it",
                )
            )

    # 6. The DAG specs.
    relation_dag = {n.relation: owner_dag[n.unique_id] for n in buildable if n.relation and n.unique_id in owner_dag}
    dags = []
    for dag_id in sorted(members):
        nodes = members[dag_id]
        tag = dag_tag.get(dag_id)
        outlets = tuple(sorted(n.relation for n in nodes if n.relation))
        assets = tuple(sorted(schedule_assets[dag_id]))
        schedule = Schedule(assets=assets or (config.tick_asset,))
        owners = {n.unique_id: n.owner for n in nodes if n.owner}
        for t in tests_of[dag_id]:  # a test's owners are those of the models it tests
            tested = sorted({o for p in dbt.nodes[t].depends_on if p in dbt.nodes for o in [dbt.nodes[p].owner] if o})
            if tested:
                owners[t] = ", ".join(tested)
        model_owners = sorted({n.owner for n in nodes if n.owner})
        tasks = _dbt_tasks(config, dbt, dag_id, tag, nodes, tests_of[dag_id], owner_dag, reads, buildable)
        if not tasks:  # per-model mode, only ephemeral models: nothing runs (their SQL is inlined downstream)
            warnings.append(Issue(mf, dag_id, "only ephemeral models: nothing to run, no DAG"))
            continue
        from_dags = sorted({produced.get(a) or relation_dag.get(a, "") for a in assets} - {""})
        if config.mode == "monolith":
            what = "the whole dbt project"
        elif tag is None:
            what = "the models with no orchestration tag (catch-all)"
        else:
            what = f"the models whose orchestration tag is `{tag}`"
        trigger = (
            f"all of these Assets, each updated since the last run:\n\n{_bullets(assets)}"
            if assets
            else f"the `{config.tick_asset}` Asset (it reads nothing produced upstream)"
        )
        dags.append(
            DagSpec(
                dag_id=dag_id,
                kind="dbt",
                schedule=schedule,
                outlets=outlets,
                tasks=tasks,
                description=f"dbt build: {what} ({len(nodes)} nodes)",
                doc_md=(
                    f"### dbt: {what}\n\n**Builds** {len(nodes)} nodes and runs {len(tests_of[dag_id])} tests "
                    f"(`dbt {' '.join(tasks[0].args[:2])} ...`).\n\n**Triggered by:** {trigger}\n\n"
                    + (f"Upstream DAGs: {', '.join(f'`{d}`' for d in from_dags)}.\n\n" if from_dags else "")
                    + f"**Emits** one Asset per relation it builds:\n\n{_bullets(outlets)}\n\n"
                    f"**Owners:** {', '.join(model_owners) or config.owner}."
                ),
                tags=("dbt", f"dbt_tag:{tag}" if tag else ("monolith" if config.mode == "monolith" else "catch-all")),
                owner=", ".join(model_owners) or config.owner,
                max_active_runs=1,
                pool=config.profile.warehouse_pool,
                tag=tag,
                models=tuple(sorted(n.unique_id for n in nodes)),
                tests=tuple(sorted(tests_of[dag_id])),
                owners=owners,
            )
        )
    return dags, warnings, errors


def _dbt_tasks(
    config,
    dbt: DbtProject,
    dag_id: str,
    tag: str | None,
    nodes: list[Node],
    tests: list[str],
    owner_dag: dict[str, str],
    reads,
    buildable: list[Node],
) -> tuple[TaskSpec, ...]:
    if config.task_granularity == "dag":
        if config.mode == "monolith":
            select: list[str] = []
        elif tag is not None and all(owner_dag.get(n.unique_id) == dag_id for n in buildable if tag in n.tags):
            select = [f"tag:{tag}"]  # the tag selects exactly this DAG's nodes
        else:
            select = sorted(n.selector for n in nodes)
        args = ("build", *(("--select", *select) if select else ()), "--indirect-selection", "buildable")
        outlets = tuple(sorted(n.relation for n in nodes if n.relation))
        return (
            TaskSpec(
                task_id="dbt_build",
                kind="dbt_build",
                args=args,
                outlets=outlets,
                models=tuple(sorted(n.unique_id for n in nodes)),
                relations=tuple(sorted((n.unique_id, n.relation) for n in nodes if n.relation)),
            ),
        )

    # One task per node; single-parent tests run with their model (cautious), the rest at the end.
    in_dag = {n.unique_id for n in nodes}
    task_of = {n.unique_id: slug(n.name) for n in nodes}
    tasks = []
    for n in sorted(nodes, key=lambda n: n.unique_id):
        if n.materialized == "ephemeral":
            continue
        upstream = sorted({task_of[d] for d in reads(n.unique_id) if d in in_dag and d != n.unique_id})
        tasks.append(
            TaskSpec(
                task_id=task_of[n.unique_id],
                kind="dbt_build",
                args=("build", "--select", n.selector, "--indirect-selection", "cautious"),
                upstream=tuple(upstream),
                outlets=(n.relation,) if n.relation else (),
                models=(n.unique_id,),
                relations=((n.unique_id, n.relation),) if n.relation else (),
            )
        )
    multi = [t for t in tests if len({p for p in dbt.nodes[t].depends_on if p in dbt.nodes}) > 1]
    if multi:
        tasks.append(
            TaskSpec(
                task_id="dbt_test_relationships",
                kind="dbt_test",
                args=("test", "--select", *sorted(dbt.nodes[t].selector for t in multi)),
                upstream=tuple(t.task_id for t in tasks),
            )
        )
    return tuple(tasks)


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
        dbt_dags, w, e = plan_dbt(config, dbt, produced)
        if "dbt" in kinds:
            plan.dags += dbt_dags
            plan.warnings += w
            plan.errors += e
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
