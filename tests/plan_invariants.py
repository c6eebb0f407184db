"""The invariants every dbt plan must keep, whatever the placement strategy, checked from the
outside: from the manifest and from what each DAG's `dbt build` arguments select (dbt's own
cautious indirect selection, re-implemented here from dbt-core's graph/selector.py), never
from the plan's own bookkeeping.

1. No cycle error unless one is forced, and a forced one is always reported (an error, or with
   `dbt.on_forced_cycle: split` a warning naming the split; the plan then renders whole).
2. Every enabled, non-ephemeral model, seed and snapshot is built by exactly one DAG.
3. A node with orchestration tags is built by the DAG of one of those tags.
4. The graph of dbt DAGs (a schedule Asset -> the DAG that builds it) has no cycle.
5. A DAG's schedule is exactly the set of produced relations its built nodes read from outside
   it, through ephemeral models; when nothing upstream is produced, the schedule is the tick.
   A relation is its database, schema and name: a source is produced by the node that builds
   the same relation, or by Meltano when it loads it (`produced`: `database.schema.table`, or
   `schema.table` in an unknown database). Assets are `schema.table`, or `database.schema.table`
   for a built relation whose schema.table is in several known databases.
6. Every test whose parents are all built runs in exactly one DAG, and that DAG is the DAG of,
   or downstream of the DAGs of, all its parents.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from orchestrator.plan.manifest import BUILDABLE, DbtProject

TICK = "tick"


def ephemeral(project: DbtProject, uid: str) -> bool:
    n = project.nodes.get(uid)
    return n is not None and n.resource_type == "model" and n.materialized == "ephemeral"


def built_nodes(project: DbtProject) -> set[str]:
    return {u for u, n in project.nodes.items() if n.resource_type in BUILDABLE and not ephemeral(project, u)}


def reads(project: DbtProject, uid: str, memo: dict) -> set[str]:
    """Built nodes and sources `uid` reads, through ephemeral models (iterative)."""
    if uid in memo:
        return memo[uid]
    out: set[str] = set()
    stack, seen = [uid], {uid}
    while stack:
        x = stack.pop()
        for dep in project.nodes[x].depends_on:
            if ephemeral(project, dep):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
            elif dep in project.nodes or dep in project.sources:
                out.add(dep)
    memo[uid] = out
    return out


def selected(project: DbtProject, args: tuple[str, ...]) -> set[str]:
    """What `dbt <args>` selects, for the argument shapes the plan emits (build/test, --select atoms
    that are `tag:X` or node names/fqns, --indirect-selection cautious)."""
    args = list(args)
    nodes = project.nodes
    if "--select" not in args:
        return set(nodes)
    i = args.index("--select") + 1
    atoms = []
    while i < len(args) and not args[i].startswith("--"):
        atoms.append(args[i])
        i += 1
    collected: set[str] = set()
    for atom in atoms:
        if atom.startswith("tag:"):
            collected |= {u for u, n in nodes.items() if atom[4:] in n.tags}
        else:
            collected |= {u for u, n in nodes.items() if n.selector == atom}
    tests = {u for u, n in nodes.items() if n.resource_type == "test"}
    return collected | {t for t in tests if set(nodes[t].depends_on) <= collected}


def tag_cycle_forced(project: DbtProject, node_tags: dict[str, list[str]]) -> bool:
    """Nodes that carry a single orchestration tag form a path A -> ... -> B -> ... -> A (A != B)."""
    single = {u: ts[0] for u, ts in node_tags.items() if len(ts) == 1}
    children: dict[str, set[str]] = defaultdict(set)
    memo: dict = {}
    built = built_nodes(project)
    built_rel = _builders(project, built)
    for u in built:
        for p in _built_reads(project, [u], built_rel, memo):  # a source on a built relation: its node
            if p in project.nodes and p != u:
                children[p].add(u)
    after: dict[str, set[str]] = defaultdict(set)
    for start, tag in single.items():
        todo, seen = [start], {start}
        while todo:
            x = todo.pop()
            for c in children[x]:
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
                    if c in single and single[c] != tag:
                        after[tag].add(single[c])
    return _has_cycle(after)


def feasible(project: DbtProject, node_tags: dict[str, list[str]], limit: int = 4096) -> bool | None:
    """Whether some choice of one tag per multi-tag node leaves no forced cycle (brute force, small
    inputs only; None when there are too many combinations)."""
    multi = sorted(u for u, ts in node_tags.items() if len(ts) > 1)
    combos = 1
    for u in multi:
        combos *= len(node_tags[u])
    if combos > limit:
        return None
    for choice in itertools.product(*(node_tags[u] for u in multi)):
        fixed = dict(node_tags)
        fixed.update({u: [t] for u, t in zip(multi, choice, strict=True)})
        if not tag_cycle_forced(project, fixed):
            return True
    return False


def _has_cycle(edges: dict[str, set[str]]) -> bool:
    state: dict[str, int] = {}
    for root in list(edges):
        if state.get(root):
            continue
        stack = [(root, iter(edges.get(root, ())))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            for child in it:
                if state.get(child) == 1:
                    return True
                if not state.get(child):
                    state[child] = 1
                    stack.append((child, iter(edges.get(child, ()))))
                    break
            else:
                state[node] = 2
                stack.pop()
    return False


def check(
    project: DbtProject,
    dags,
    errors,
    node_tags: dict[str, list[str]],
    produced: set[str],
    catch_all: bool = True,
    warnings=(),
) -> list[str]:
    """Every violation of the invariants, as readable lines (empty: all hold)."""
    out = _cycles_only_when_forced(project, [*errors, *warnings], node_tags)
    if errors:
        return out  # the other invariants are about plans that render whole
    built = built_nodes(project)
    builds, runs = _what_each_dag_selects(project, dags, built)
    dag_of_uid = {u: ds[0] for u, ds in builds.items() if ds}
    producer = {a: d.dag_id for d in dags for a in d.outlets}
    edges: dict[str, set[str]] = defaultdict(set)
    for d in dags:
        for a in d.schedule.assets:
            if a in producer:
                edges[producer[a]].add(d.dag_id)
    for u in sorted(built):  # 2
        if len(builds[u]) != 1 and (catch_all or node_tags.get(u)):
            out.append(f"2: {u} is built by {builds[u] or 'no DAG'}")
    tag_of_dag = {d.dag_id: d.tag for d in dags}
    for u, ts in node_tags.items():  # 3
        if ts and builds[u] and tag_of_dag.get(builds[u][0]) not in ts:
            out.append(f"3: {u} (tags {ts}) is built by {builds[u][0]} (tag {tag_of_dag.get(builds[u][0])})")
    if _has_cycle(edges):  # 4
        out.append("4: the graph of dbt DAGs has a cycle")
    out += _schedules_are_what_is_read(project, dags, builds, runs, dag_of_uid, produced)
    out += _tests_after_their_parents(project, built, runs, dag_of_uid, edges, dags)
    return out


def _cycles_only_when_forced(project: DbtProject, issues, node_tags: dict[str, list[str]]) -> list[str]:  # 1
    out = []
    cycle_errors = [e for e in issues if "cycle between dbt DAGs" in e.message]
    forced = tag_cycle_forced(project, node_tags)
    if forced and not cycle_errors:
        out.append("1: a forced cycle is not reported")
    if cycle_errors and not forced:
        ok = feasible(project, node_tags)
        if ok is None or ok:
            out.append(f"1: cycle error without a forced cycle: {cycle_errors[0]}")
    return out


def _what_each_dag_selects(project: DbtProject, dags, built: set[str]):
    nodes = project.nodes
    builds: dict[str, list[str]] = defaultdict(list)
    runs: dict[str, list[str]] = defaultdict(list)
    for d in dags:
        chosen: set[str] = set()
        for task in d.tasks:
            chosen |= selected(project, task.args)
        for u in chosen:
            if u in built:
                builds[u].append(d.dag_id)
            elif nodes.get(u) is not None and nodes[u].resource_type == "test":
                runs[u].append(d.dag_id)
    return builds, runs


def _identity(database: str | None, relation: str) -> str:
    return f"{database}.{relation}" if database else relation


def _schedules_are_what_is_read(project: DbtProject, dags, builds, runs, dag_of_uid, produced) -> list[str]:  # 5
    out = []
    memo: dict = {}
    nodes, built = project.nodes, built_nodes(project)
    databases: dict[str, set[str]] = defaultdict(set)
    for u in built:
        if nodes[u].database:
            databases[nodes[u].relation].add(nodes[u].database)
    for p in produced:
        if p.count(".") == 2:
            db, _, rel = p.partition(".")
            databases[rel].add(db)
    relation_of = {
        u: _identity(n.database, n.relation) if n.relation and len(databases[n.relation]) > 1 else n.relation
        for u, n in nodes.items()
    }
    built_rel = _builders(project, built)
    for d in dags:
        expect = set()
        for u in (u for u, ds in builds.items() if d.dag_id in ds):
            for r in reads(project, u, memo):
                if r in built and dag_of_uid.get(r) not in (None, d.dag_id):  # None: no DAG produces it
                    expect.add(relation_of[r])
                elif r in project.sources:
                    src = project.sources[r]
                    ident = _identity(src.database, src.relation)
                    if ident in built_rel:
                        if dag_of_uid.get(built_rel[ident]) not in (None, d.dag_id):
                            expect.add(relation_of[built_rel[ident]])  # a source on a relation another DAG builds
                    elif ident in produced or src.relation in produced:
                        expect.add(src.relation)
        if not any(d.dag_id in ds for ds in builds.values()):  # a tests-only DAG: what its tests read
            tests = [t for t, ds in runs.items() if d.dag_id in ds]
            expect = {relation_of[p] for p in _built_reads(project, tests, built_rel, memo) if p in dag_of_uid}
        want = tuple(sorted(expect)) or (TICK,)
        if tuple(sorted(d.schedule.assets)) != want:
            out.append(f"5: {d.dag_id} waits for {sorted(d.schedule.assets)}, reads {list(want)}")
    return out


def _builders(project: DbtProject, built: set[str]) -> dict[str, str]:
    """A built relation's identity (database.schema.table) -> the node that builds it."""
    nodes = project.nodes
    return {_identity(nodes[u].database, nodes[u].relation): u for u in built if nodes[u].relation}


def _built_reads(project: DbtProject, uids: list[str], built_rel: dict, memo: dict) -> set[str]:
    """The nodes and sources these read, a source on a relation the project builds as that node."""
    out = set()
    for p in (p for u in uids for p in reads(project, u, memo)):
        if p in project.sources:
            src = project.sources[p]
            p = built_rel.get(_identity(src.database, src.relation), p)
        out.add(p)
    return out


def _tests_after_their_parents(project: DbtProject, built, runs, dag_of_uid, edges, dags) -> list[str]:  # 6
    out = []
    upstream: dict[str, set[str]] = defaultdict(set)  # DAG -> every DAG upstream of it
    for d in dags:
        todo = [d.dag_id]
        while todo:
            x = todo.pop()
            for y, downs in edges.items():
                if x in downs and y not in upstream[d.dag_id]:
                    upstream[d.dag_id].add(y)
                    todo.append(y)
    for t, n in project.nodes.items():
        if n.resource_type != "test" or not n.depends_on or not set(n.depends_on) <= built:
            continue
        parent_dags = {dag_of_uid.get(p) for p in n.depends_on}
        if None in parent_dags:
            continue  # a parent no DAG builds (catch-all off)
        if len(runs[t]) != 1:
            out.append(f"6: {t} runs in {runs[t] or 'no DAG'}")
            continue
        where = runs[t][0]
        if not parent_dags <= {where} | upstream[where]:
            out.append(f"6: {t} runs in {where}, not after all of {sorted(p for p in parent_dags if p)}")
    return out
