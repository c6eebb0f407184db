"""Each dbt DAG as a DagSpec: its `dbt build` selection, tasks, schedule, Assets and docs; the last
step of plan_dbt (dbt_plan.py), once every node and test has its DAG."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from ..config import OrchestrationConfig
from .dbt_graph import DbtGraph
from .dbt_wiring import Wiring
from .doc_md import asset_bullets
from .model import DbtDag, Issue, Schedule, TaskSpec
from .placement import Placement
from .relations import Loaded
from .translator import Translator


@dataclass(frozen=True)
class DbtContext:
    """What every dbt DAG's spec is made from: the config and its naming, the manifest's graph,
    where each node went (placement) and what each DAG waits for (wiring)."""

    config: OrchestrationConfig
    names: Translator
    graph: DbtGraph
    placement: Placement
    wiring: Wiring
    produced: dict[str, str]  # Asset -> the Meltano DAG that loads it
    asset_dag: dict[str, str]  # Asset -> the dbt DAG that builds it
    asset_of: dict[str, str]  # built node -> the Asset of the relation it builds (relations.py)
    loaded: Loaded | None = None  # what Meltano loads: which Asset a source is (`dbt.build: changed`)

    def outlets(self, uids) -> tuple[str, ...]:
        """The Assets of the relations these nodes build, sorted."""
        return tuple(sorted(self.asset_of[u] for u in uids if u in self.asset_of))

    def wait_task(self, assets: tuple[str, ...], tasks: tuple[TaskSpec, ...]) -> str | None:
        """The task that holds a run until its inputs belong to one cycle (DbtDag.wait_task): a
        DAG's one task itself, or a sensor before the roots of several."""
        if not self.config.dbt.cycle_wait.enabled or len(assets) < 2:
            return None
        return tasks[0].task_id if len(tasks) == 1 else self.names.task_id("wait_for_cycle")

    @cached_property
    def grouped_apart(self) -> frozenset[str]:
        """The tests not grouped under one built node (DbtGraph.other_tests): a grouped test runs
        in its node's DAG and is always added by dbt's cautious selection of it."""
        return frozenset(self.graph.other_tests)

    @cached_property
    def cautious_others(self) -> dict[str, set[str]]:
        """DAG id -> the tests apart from the groups that dbt's `--indirect-selection cautious`
        adds to a selection of its members: those whose direct parents are all its members.
        Members partition the built nodes, so a test is added by at most one DAG."""
        dag_of, picked = self.placement.dag_of, defaultdict(set)
        nodes = self.graph.project.nodes
        for t in self.graph.other_tests:
            deps = nodes[t].depends_on
            d = dag_of.get(deps[0]) if deps else None
            if d is not None and all(dag_of.get(p) == d for p in deps):
                picked[d].add(t)
        return picked

    @cached_property
    def owner_of(self) -> dict[str, str]:
        """The owner of each node that has one (Translator.owner), asked once per node."""
        owner = self.names.owner
        return {n.unique_id: o for n in self.graph.project.buildable if (o := owner(n))}

    @cached_property
    def apart_owners(self) -> dict[str, str]:
        """The owners of each test apart from the groups: those of the nodes it tests. (A grouped
        test's owner is its node's.)"""
        owner_of, nodes = self.owner_of, self.graph.project.nodes
        out: dict[str, str] = {}
        if not owner_of:
            return out
        get = owner_of.get
        for t in self.graph.other_tests:
            deps = nodes[t].depends_on
            if len(deps) == 2:  # most of them: a relationships test, two models (often one owner)
                a, b = get(deps[0]), get(deps[1])
                if one := (a if a == b or not b else b if not a else ", ".join(sorted((a, b)))):
                    out[t] = one
            elif tested := sorted({o for p in deps if (o := get(p))}):
                out[t] = ", ".join(tested)
        return out

    def owners(self, uids) -> list[str]:
        """The owners (meta.owner) of these built nodes, sorted."""
        owner_of = self.owner_of
        return sorted({o for u in uids if (o := owner_of.get(u))})


def dbt_dag_spec(ctx: DbtContext, dag_id: str, tests: list[str]) -> DbtDag | Issue:
    """The DAG that builds the nodes the placement gave `dag_id` and runs `tests` after them."""
    config, names = ctx.config, ctx.names
    members = ctx.wiring.members[dag_id]
    models, outlets = tuple(sorted(members)), ctx.outlets(members)  # each sorted once, shared below
    tasks = _tasks(ctx, dag_id, members, tests, models, outlets)
    if isinstance(tasks, Issue):
        return tasks
    tag = ctx.placement.tag_of_dag.get(dag_id)
    assets = tuple(sorted(ctx.wiring.assets[dag_id]))
    owner_of, only = ctx.owner_of, ctx.graph.only_tests
    owners = {u: o for u in members if (o := owner_of.get(u))}
    # A test's owners are those of the models it tests: a grouped test's, its member's.
    owners.update({t: o for u, o in owners.items() for t in only.get(u, ())})
    if apart := ctx.apart_owners:
        owners.update({t: o for t in tests if (o := apart.get(t))})
    owner = ", ".join(ctx.owners(members)) or config.defaults.owner
    kind_tag = f"dbt_tag:{tag}" if tag else ("monolith" if config.dbt.mode == "monolith" else "catch-all")
    return DbtDag(
        dag_id=dag_id,
        schedule=Schedule(assets=assets or (names.tick_asset(),)),
        outlets=outlets,
        tasks=tasks,
        description=f"dbt build: {_what(ctx, dag_id)} ({len(members)} nodes)",
        doc_md=_doc(ctx, dag_id, tasks[0], tests, assets, owner, outlets),
        tags=("dbt", kind_tag),
        owner=owner,
        max_active_runs=1,
        pool=config.profile.warehouse_pool,
        tag=tag,
        models=models,
        tests=tuple(sorted(tests)),
        owners=owners,
        wait_task=ctx.wait_task(assets, tasks),
        **_changed(ctx, members, assets),
    )


def _changed(ctx: DbtContext, members: list[str], assets: tuple[str, ...]) -> dict:
    """`dbt.build: changed` (plan/changed.py): what each input Asset is in dbt's selection syntax
    (the sources a Meltano table is, the other DAGs' models), and the members that opt out. The
    whole-DAG task only: per-model tasks build their node on every run."""
    if ctx.config.dbt.build != "changed" or ctx.config.dbt.task_granularity != "dag":
        return {}
    graph, wanted = ctx.graph, set(assets)
    inputs: dict[str, set[str]] = defaultdict(set)
    for u in members:
        for s in graph.sources[u]:
            src = graph.project.sources[s]
            found = ctx.loaded.find(src.database, src.relation) if ctx.loaded else None
            if found and found[0] in wanted:
                inputs[found[0]].add("source:" + ".".join(s.split(".")[2:4]))
        for p in graph.parents[u]:
            if (a := ctx.asset_of.get(p)) in wanted:
                inputs[a].add(graph.built[p].selector)
    always = tuple(sorted(graph.built[u].selector for u in members if graph.built[u].always_build))
    return {"inputs": {a: tuple(sorted(s)) for a, s in sorted(inputs.items())}, "always_build": always}


def tests_dag_spec(ctx: DbtContext, parent_dags: tuple[str, ...], tests: list[str]) -> DbtDag:
    """A DAG of the tests that read models of DAGs no other DAG runs after (e.g. a relationships
    test between two independent domains): it runs once all of them have built what it reads."""
    names, graph = ctx.names, ctx.graph
    nodes = graph.project.nodes
    assets = tuple(sorted({a for t in tests for a in ctx.outlets(graph.test_parents[t])}))
    owners = {t: ", ".join(o) for t in tests if (o := ctx.owners(graph.test_parents[t]))}
    tasks = (
        TaskSpec(
            task_id=names.task_id("dbt_test"),
            kind="dbt_test",
            args=("test", "--select", *sorted(nodes[t].selector for t in tests)),
        ),
    )
    return DbtDag(
        dag_id=names.tests_dag_id(parent_dags),
        schedule=Schedule(assets=assets or (names.tick_asset(),)),
        outlets=(),
        tasks=tasks,
        description=f"dbt test: {len(tests)} tests across {', '.join(parent_dags)}",
        doc_md=(
            f"### dbt tests across DAGs\n\n**Runs** {len(tests)} tests that read models of "
            f"{', '.join(f'`{d}`' for d in parent_dags)}, which do not depend on each other.\n\n"
            "**Triggered by:** all of these Assets, each updated since the last run:\n\n" + asset_bullets(names, assets)
        ),
        tags=("dbt", "tests"),
        owner=", ".join(sorted(set(owners.values()))) or ctx.config.defaults.owner,
        max_active_runs=1,
        pool=ctx.config.profile.warehouse_pool,
        tag=None,
        models=(),
        tests=tuple(sorted(tests)),
        owners=owners,
        wait_task=ctx.wait_task(assets, tasks),
    )


# ------------------------------------------------------------------ the tasks


def _tasks(
    ctx: DbtContext,
    dag_id: str,
    members: list[str],
    tests: list[str],
    models: tuple[str, ...],
    outlets: tuple[str, ...],
) -> tuple[TaskSpec, ...] | Issue:
    """The DAG's tasks; `models` are its members sorted, `outlets` their Assets sorted."""
    if ctx.config.dbt.task_granularity == "dag":
        names, asset_of = ctx.names, ctx.asset_of
        return (
            TaskSpec(
                task_id=names.task_id("dbt_build"),
                kind="dbt_build",
                args=_selection(ctx, dag_id, members, tests),
                outlets=outlets,
                models=models,
                relations=tuple([(u, asset_of[u]) for u in models if u in asset_of]),
            ),
        )
    return _model_tasks(ctx, dag_id, members, tests)


def _model_tasks(ctx: DbtContext, dag_id: str, members: list[str], tests: list[str]) -> tuple[TaskSpec, ...] | Issue:
    """One task per node, in dependency order; a test of one node runs with it (cautious), the rest
    in a task at the end. Two nodes that make one task id are an error naming the DAG."""
    graph, names = ctx.graph, ctx.names
    built, nodes = graph.built, graph.project.nodes
    mine = set(members)
    task_of = {u: names.model_task_id(built[u]) for u in members}
    by_task: dict[str, list[str]] = defaultdict(list)
    for u, task_id in task_of.items():
        by_task[task_id].append(u)
    tests_task = names.task_id("dbt_test_relationships")
    if clashes := {t: us for t, us in by_task.items() if len(us) > 1 or t == tests_task}:
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
        relation = ctx.asset_of.get(u)
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
    rest = [t for t in tests if len(set(nodes[t].depends_on)) > 1 or not set(nodes[t].depends_on) <= mine]
    if rest:
        tasks.append(
            TaskSpec(
                task_id=tests_task,
                kind="dbt_test",
                args=("test", "--select", *sorted(nodes[t].selector for t in rest)),
                upstream=tuple(t.task_id for t in tasks),
            )
        )
    return tuple(tasks)


def _selection(ctx: DbtContext, dag_id: str, members: list[str], tests: list[str]) -> tuple[str, ...]:
    """`build` arguments selecting exactly this DAG's nodes and tests.

    With `--indirect-selection cautious`, dbt adds every test whose direct parents are all
    selected; the other tests of this DAG (reading other DAGs' models, sources, or ephemeral
    models) are named. `tag:X` is used when it selects exactly that, else the nodes are named:
    `tag:X` also selects the tests and ephemeral models carrying the tag, and the nodes of tag X
    that the placement put in another DAG."""
    if ctx.config.dbt.mode == "monolith":
        return ("build", "--indirect-selection", "cautious")
    graph = ctx.graph
    nodes = graph.project.nodes
    mine = set(members)
    select = sorted(graph.built[u].selector for u in members)
    # Of this DAG's tests, those grouped under a member are always picked: only the others are
    # looked at (a few thousand of 27,000 at 10,000 models).
    picked = ctx.cautious_others.get(dag_id, set())
    tag = ctx.placement.tag_of_dag.get(dag_id)
    if tag is not None and dag_id not in ctx.placement.tag_stage_of_dag:  # a stage never holds its whole tag
        carrying = graph.tagged.get(tag, set())
        if carrying & graph.built.keys() == mine:
            extra = carrying.difference(graph.built)  # the tests and ephemeral models carrying the tag
            tag_tests = {t for t in extra if nodes[t].resource_type == "test"}
            if ephemeral := extra - tag_tests:  # an ephemeral model of the tag: dbt adds the tests reading it
                direct, sel = graph.direct_tests, mine | ephemeral
                tag_tests |= {t for u in sel for t in direct.get(u, ()) if sel.issuperset(nodes[t].depends_on)}
            else:  # the tag selects exactly the members (a test reads no test): the members' tests
                tag_tests |= picked
            if tag_tests <= set(tests):
                select, picked = [f"tag:{tag}"], tag_tests
    apart = ctx.grouped_apart
    named = sorted(nodes[t].selector for t in tests if t in apart and t not in picked)
    return ("build", "--select", *select, *named, "--indirect-selection", "cautious")


# ------------------------------------------------------------------ the docs


def _what(ctx: DbtContext, dag_id: str) -> str:
    tag = ctx.placement.tag_of_dag.get(dag_id)
    if ctx.config.dbt.mode == "monolith":
        return "the whole dbt project"
    if tag is None:
        stage = ctx.placement.stage_of_dag.get(dag_id, 1)
        return "the models with no orchestration tag (catch-all" + (f", stage {stage})" if stage > 1 else ")")
    if staged := ctx.placement.tag_stage_of_dag.get(dag_id):
        return (
            f"the models whose orchestration tag is `{tag}` (stage {staged[0]} of {staged[1]}: a forced cycle split it)"
        )
    return f"the models whose orchestration tag is `{tag}`"


def _doc(
    ctx: DbtContext,
    dag_id: str,
    first: TaskSpec,
    tests: list[str],
    assets: tuple[str, ...],
    owner: str,
    outlets: tuple[str, ...],
) -> str:
    """The DAG's docs: what it builds, what triggers it and from which DAGs, what it emits."""
    names = ctx.names
    tick = names.tick_asset()
    members = ctx.wiring.members[dag_id]
    from_dags = sorted({ctx.produced.get(a) or ctx.asset_dag.get(a, "") for a in assets} - {""})
    trigger = (
        f"all of these Assets, each updated since the last run:\n\n{asset_bullets(names, assets)}"
        if assets
        else f"the [`{tick}`]({names.asset_link(tick)}) Asset (it reads nothing produced upstream)"
    )
    placed = [u for u in members if u in ctx.placement.placed]
    return (
        f"### dbt: {_what(ctx, dag_id)}\n\n**Builds** {len(members)} nodes and runs {len(tests)} tests "
        f"(`dbt {' '.join(first.args[:3])} ...`).\n\n**Triggered by:** {trigger}\n\n"
        + (f"Upstream DAGs: {', '.join(f'`{d}`' for d in from_dags)}.\n\n" if from_dags else "")
        + f"**Emits** one Asset per relation it builds:\n\n{asset_bullets(names, outlets)}\n\n"
        + (f"**Placed here by a rule** (see `orchestrator plan`): {len(placed)} node(s).\n\n" if placed else "")
        + f"**Owners:** {owner}."
    )
