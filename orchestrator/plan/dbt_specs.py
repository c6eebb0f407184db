"""Each dbt DAG as a DagSpec: its `dbt build` selection, tasks, schedule, Assets and docs; and
`plan_dbt`, which runs the steps of dbt_dags in order."""

from __future__ import annotations

from collections import defaultdict

from ..config import OrchestrationConfig
from .dbt_dags import (
    Wiring,
    asset_bullets,
    check_dag_ids,
    check_manifest,
    dag_cycles,
    place_nodes,
    place_tests,
    wire,
)
from .dbt_graph import DbtGraph, build_graph
from .manifest import DbtProject
from .model import AssetSpec, DbtDag, Issue, Part, Schedule, TaskSpec
from .placement import Placement
from .translator import Translator


def plan_dbt(
    config: OrchestrationConfig, dbt: DbtProject, produced: dict[str, str], names: Translator | None = None
) -> tuple[Part, dict[str, dict]]:
    """dbt DAGs from the manifest; `produced` maps an Asset to the Meltano DAG that loads it.

    Returns the DAGs (with their Assets, warnings and errors), and the placement of every node
    placed by a rule."""
    names = names or Translator(config)
    graph = build_graph(dbt)
    placement = place_nodes(config, graph, names)
    warnings, errors = check_manifest(config, dbt, graph, produced, placement.dag_of, names)
    errors += check_dag_ids(config, dbt, placement, names)
    if config.dbt.mode != "monolith":
        for tag in config.dbt.tags:
            if tag not in placement.tag_of_dag.values():
                carried = any(tag in n.tags for n in dbt.buildable)
                warnings.append(
                    Issue(
                        str(config.path),
                        f"tag {tag}",
                        "carried only by ephemeral models, which build nothing: no DAG"
                        if carried
                        else "configured, but no model carries it",
                    )
                )
    for uid, p in placement.placed.items():
        if p.rule == "multi_tag" or p.rule == "unplaced":
            warnings.append(
                Issue(
                    graph.built[uid].file or dbt.path,
                    uid,
                    f"{p.reason}: " + (f"built by {p.dag_id}" if p.dag_id else "no DAG builds it"),
                )
            )
    wiring, w = wire(config, graph, placement, produced, names)
    warnings += w
    errors += dag_cycles(config, graph, placement, wiring)
    tests_of, orphans = place_tests(graph, placement, wiring)
    part = Part(warnings=warnings, errors=errors)
    asset_dag = {names.asset_name(r): d for u, d in placement.dag_of.items() if (r := graph.built[u].relation)}
    for dag_id in sorted(wiring.members):
        dag_tag = placement.tag_of_dag.get(dag_id)
        for u in wiring.members[dag_id]:
            if node_relation := graph.built[u].relation:
                name = names.asset_name(node_relation)
                part.assets[name] = AssetSpec(
                    names.asset_uri(name, node_relation),
                    names.asset_group(node_relation),
                    names.dbt_asset_extra(graph.built[u], dag_id, dag_tag),
                    node_relation,
                )
        spec = dbt_dag_spec(
            config, graph, placement, wiring, dag_id, tests_of.get(dag_id, []), produced, asset_dag, names
        )
        if isinstance(spec, Issue):
            part.errors.append(spec)
            continue
        part.dags.append(spec)
    for parent_dags, tests in sorted(orphans.items()):
        part.dags.append(tests_dag_spec(config, graph, parent_dags, tests, names))
    placed = {u: {"dag_id": p.dag_id, "rule": p.rule, "reason": p.reason} for u, p in placement.placed.items()}
    return part, placed


def _selection(
    config: OrchestrationConfig,
    graph: DbtGraph,
    placement: Placement,
    dag_id: str,
    members: list[str],
    tests: list[str],
) -> tuple[str, ...]:
    """`build` arguments selecting exactly this DAG's nodes and tests.

    With `--indirect-selection cautious`, dbt adds every test whose direct parents are all
    selected; the other tests of this DAG (reading other DAGs' models, sources, or ephemeral
    models) are named. `tag:X` is used when it selects exactly that, else the nodes are named:
    `tag:X` also selects the tests and ephemeral models carrying the tag, and the nodes of tag X
    that the placement put in another DAG."""
    if config.dbt.mode == "monolith":
        return ("build", "--indirect-selection", "cautious")
    nodes = graph.project.nodes
    mine, assigned = set(members), set(tests)

    def cautious(selected: set[str]) -> set[str]:  # tests dbt adds: all their direct parents selected
        touching = {t for u in selected for t in graph.direct_tests.get(u, ())}
        return {t for t in touching if set(nodes[t].depends_on) <= selected}

    select = sorted(graph.built[u].selector for u in members)
    picked = cautious(mine)
    tag = placement.tag_of_dag.get(dag_id)
    if tag is not None:
        carrying = graph.tagged.get(tag, set())
        tag_tests = {t for t in carrying if nodes[t].resource_type == "test"} | cautious(carrying)
        if {u for u in carrying if u in graph.built} == mine and tag_tests <= assigned:
            select, picked = [f"tag:{tag}"], tag_tests
    named = sorted(nodes[t].selector for t in assigned - picked)
    return ("build", "--select", *select, *named, "--indirect-selection", "cautious")


def _tasks(
    config: OrchestrationConfig,
    graph: DbtGraph,
    placement: Placement,
    dag_id: str,
    members: list[str],
    tests: list[str],
    names: Translator,
) -> tuple[TaskSpec, ...] | Issue:
    built = graph.built
    if config.dbt.task_granularity == "dag":
        relations = tuple(sorted((u, names.asset_name(r)) for u in members if (r := built[u].relation)))
        return (
            TaskSpec(
                task_id="dbt_build",
                kind="dbt_build",
                args=_selection(config, graph, placement, dag_id, members, tests),
                outlets=tuple(sorted(r for _, r in relations)),
                models=tuple(sorted(members)),
                relations=relations,
            ),
        )
    # One task per node, in dependency order; a test of one node runs with it (cautious), the rest at the end.
    mine = set(members)
    task_of = {u: names.model_task_id(built[u]) for u in members}
    by_task: dict[str, list[str]] = defaultdict(list)
    for u, task_id in task_of.items():
        by_task[task_id].append(u)
    if clashes := {t: us for t, us in by_task.items() if len(us) > 1 or t == "dbt_test_relationships"}:
        task_id, uids = sorted(clashes.items())[0]
        return Issue(
            graph.project.path,
            dag_id,
            f"per-model tasks: {', '.join(sorted(uids))} all make the task id "
            f"{task_id!r}: rename a model, or use dbt.task_granularity: dag",
            (dag_id,),
        )
    tasks = []
    for u in sorted(members):
        relation = names.asset_name(r) if (r := built[u].relation) else None
        tasks.append(
            TaskSpec(
                task_id=task_of[u],
                kind="dbt_build",
                args=("build", "--select", built[u].selector, "--indirect-selection", "cautious"),
                upstream=tuple(sorted({task_of[p] for p in graph.parents[u] if p in mine})),
                outlets=(relation,) if relation else (),
                models=(u,),
                relations=((u, relation),) if relation else (),
            )
        )
    nodes = graph.project.nodes
    rest = [t for t in tests if len(set(nodes[t].depends_on)) > 1 or not set(nodes[t].depends_on) <= mine]
    if rest:
        tasks.append(
            TaskSpec(
                task_id="dbt_test_relationships",
                kind="dbt_test",
                args=("test", "--select", *sorted(nodes[t].selector for t in rest)),
                upstream=tuple(t.task_id for t in tasks),
            )
        )
    return tuple(tasks)


def _what(config: OrchestrationConfig, placement: Placement, dag_id: str) -> str:
    tag = placement.tag_of_dag.get(dag_id)
    if config.dbt.mode == "monolith":
        return "the whole dbt project"
    if tag is None:
        stage = placement.stage_of_dag.get(dag_id, 1)
        return "the models with no orchestration tag (catch-all" + (f", stage {stage})" if stage > 1 else ")")
    return f"the models whose orchestration tag is `{tag}`"


def dbt_dag_spec(
    config: OrchestrationConfig,
    graph: DbtGraph,
    placement: Placement,
    wiring: Wiring,
    dag_id: str,
    tests: list[str],
    produced: dict[str, str],
    asset_dag: dict[str, str],
    names: Translator,
) -> DbtDag | Issue:
    members = wiring.members[dag_id]
    tasks = _tasks(config, graph, placement, dag_id, members, tests, names)
    if isinstance(tasks, Issue):
        return tasks
    built, nodes = graph.built, graph.project.nodes
    tag = placement.tag_of_dag.get(dag_id)
    outlets = tuple(sorted(names.asset_name(r) for u in members if (r := built[u].relation)))
    assets = tuple(sorted(wiring.assets[dag_id]))
    owners = {u: o for u in members if (o := names.owner(built[u]))}
    for t in tests:  # a test's owners are those of the models it tests
        tested = sorted({o for p in nodes[t].depends_on if p in nodes for o in [names.owner(nodes[p])] if o})
        if tested:
            owners[t] = ", ".join(tested)
    model_owners = sorted({o for u in members if (o := names.owner(built[u]))})
    from_dags = sorted({produced.get(a) or asset_dag.get(a, "") for a in assets} - {""})
    what = _what(config, placement, dag_id)
    trigger = (
        f"all of these Assets, each updated since the last run:\n\n{asset_bullets(names, assets)}"
        if assets
        else f"the [`{config.tick.asset}`]({names.asset_link(config.tick.asset)}) Asset "
        "(it reads nothing produced upstream)"
    )
    placed = [u for u in members if u in placement.placed]
    doc = (
        f"### dbt: {what}\n\n**Builds** {len(members)} nodes and runs {len(tests)} tests "
        f"(`dbt {' '.join(tasks[0].args[:3])} ...`).\n\n**Triggered by:** {trigger}\n\n"
        + (f"Upstream DAGs: {', '.join(f'`{d}`' for d in from_dags)}.\n\n" if from_dags else "")
        + f"**Emits** one Asset per relation it builds:\n\n{asset_bullets(names, outlets)}\n\n"
        + (f"**Placed here by a rule** (see `orchestrator plan`): {len(placed)} node(s).\n\n" if placed else "")
        + f"**Owners:** {', '.join(model_owners) or config.defaults.owner}."
    )
    kind_tag = f"dbt_tag:{tag}" if tag else ("monolith" if config.dbt.mode == "monolith" else "catch-all")
    return DbtDag(
        dag_id=dag_id,
        schedule=Schedule(assets=assets or (config.tick.asset,)),
        outlets=outlets,
        tasks=tasks,
        description=f"dbt build: {what} ({len(members)} nodes)",
        doc_md=doc,
        tags=("dbt", kind_tag),
        owner=", ".join(model_owners) or config.defaults.owner,
        max_active_runs=1,
        pool=config.profile.warehouse_pool,
        tag=tag,
        models=tuple(sorted(members)),
        tests=tuple(sorted(tests)),
        owners=owners,
    )


def tests_dag_spec(
    config: OrchestrationConfig,
    graph: DbtGraph,
    parent_dags: tuple[str, ...],
    tests: list[str],
    names: Translator,
) -> DbtDag:
    """A DAG of the tests that read models of DAGs no other DAG runs after (e.g. a relationships
    test between two independent domains): it runs once all of them have built what it reads."""
    nodes = graph.project.nodes
    assets = tuple(
        sorted({names.asset_name(r) for t in tests for p in graph.test_parents[t] if (r := graph.built[p].relation)})
    )
    dag_id = names.tests_dag_id(parent_dags)
    owners = {
        t: ", ".join(o)
        for t in tests
        if (o := sorted({ow for p in graph.test_parents[t] if (ow := names.owner(graph.built[p]))}))
    }
    return DbtDag(
        dag_id=dag_id,
        schedule=Schedule(assets=assets or (config.tick.asset,)),
        outlets=(),
        tasks=(
            TaskSpec(
                task_id="dbt_test",
                kind="dbt_test",
                args=("test", "--select", *sorted(nodes[t].selector for t in tests)),
            ),
        ),
        description=f"dbt test: {len(tests)} tests across {', '.join(parent_dags)}",
        doc_md=(
            f"### dbt tests across DAGs\n\n**Runs** {len(tests)} tests that read models of "
            f"{', '.join(f'`{d}`' for d in parent_dags)}, which do not depend on each other.\n\n"
            "**Triggered by:** all of these Assets, each updated since the last run:\n\n" + asset_bullets(names, assets)
        ),
        tags=("dbt", "tests"),
        owner=", ".join(sorted(set(owners.values()))) or config.defaults.owner,
        max_active_runs=1,
        pool=config.profile.warehouse_pool,
        tag=None,
        models=(),
        tests=tuple(sorted(tests)),
        owners=owners,
    )
