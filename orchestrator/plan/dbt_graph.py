"""The dbt project as a graph of the nodes that build a relation, seen the way dbt runs them.

Ephemeral models build nothing: dbt inlines their SQL into every node that reads them. So
here they are no vertices at all; a node that reads an ephemeral model reads what that
model reads, through any chain of them. What remains is a DAG of *built* nodes (models,
seeds, snapshots), the sources each reads, and the built parents of each test. Everything
the placement and the wiring need is computed once, iteratively (no recursion limit on
deep ephemeral chains), in time linear in the manifest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .manifest import DbtProject, Node


@dataclass
class DbtGraph:
    project: DbtProject
    built: dict[str, Node]  # unique_id -> node, in topological order (parents first)
    parents: dict[str, tuple[str, ...]]  # built node -> the built nodes it reads (through ephemeral models)
    children: dict[str, list[str]]  # the reverse of `parents`
    sources: dict[str, tuple[str, ...]]  # built node -> the sources it reads (through ephemeral models)
    test_parents: dict[str, tuple[str, ...]]  # test -> the built nodes it reads; () when one is not built
    test_sources: dict[str, tuple[str, ...]]  # test -> the sources it reads
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node/test -> deps not in the manifest
    direct_tests: dict[str, list[str]] = field(default_factory=dict)  # node -> the tests that name it directly
    tagged: dict[str, set[str]] = field(default_factory=dict)  # tag -> every node and test carrying it
    cycle: tuple[str, ...] = ()  # built nodes on a cycle (only in a hand-made manifest: dbt refuses them)

    @property
    def order(self) -> list[str]:
        return list(self.built)


def _expand(project: DbtProject) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Every node's reads with ephemeral models replaced by what they read: (built or test deps, missing)."""
    nodes, sources = project.nodes, project.sources
    missing: dict[str, tuple[str, ...]] = {}

    def direct(uid: str) -> tuple[list[str], list[str], list[str]]:
        eph, other, lost = [], [], []
        for dep in nodes[uid].depends_on:
            node = nodes.get(dep)
            if node is not None and node.materialized == "ephemeral" and node.resource_type == "model":
                eph.append(dep)
            elif node is not None or dep in sources:
                other.append(dep)
            elif not dep.startswith(("macro.", "metric.", "semantic_model.", "saved_query.")):
                lost.append(dep)
        return eph, other, lost

    # Most nodes read only known, non-ephemeral nodes and sources: set checks in C decide it, in
    # one comprehension, and only the others take the per-dependency walk (10,000 models: 4x faster).
    ephemeral = {u for u, n in nodes.items() if n.materialized == "ephemeral" and n.resource_type == "model"}
    known = nodes.keys() | sources.keys()
    if ephemeral:
        known -= ephemeral
    expanded: dict[str, tuple[str, ...]] = {
        uid: deps if len(deps) < 2 else tuple(dict.fromkeys(deps))
        for uid, n in nodes.items()
        if known.issuperset(deps := n.depends_on)
    }
    rest = [u for u in nodes if u not in expanded] if len(expanded) < len(nodes) else []
    reads: dict[str, tuple[list[str], list[str], list[str]]] = {}
    for uid in rest:
        eph, other, lost = reads[uid] = direct(uid)
        if lost:
            missing[uid] = tuple(lost)
        if not eph:
            expanded[uid] = tuple(dict.fromkeys(other))
    for start in rest:
        if start in expanded:
            continue
        # Iterative post-order DFS over ephemeral deps: a chain of 10,000 is fine.
        stack = [(start, iter(reads[start][0]))]
        on_path = {start}
        while stack:
            uid, todo = stack[-1]
            dep = next((d for d in todo if d not in expanded and d not in on_path), None)
            if dep is not None:
                on_path.add(dep)
                stack.append((dep, iter(reads[dep][0])))
                continue
            stack.pop()
            eph, other, _ = reads[uid]
            out = list(other)
            for d in eph:
                out.extend(expanded.get(d, ()))  # a dep still on the path is an ephemeral cycle: cut there
            expanded[uid] = tuple(dict.fromkeys(out))
            on_path.discard(uid)
    return expanded, missing


def build_graph(project: DbtProject) -> DbtGraph:
    expanded, missing = _expand(project)
    nodes = project.nodes
    built_ids = [n.unique_id for n in project.buildable if n.materialized != "ephemeral"]
    is_built = set(built_ids)
    # A source declared on a relation the project itself builds (a snapshot's table, say) is a read
    # of the node that builds it: that is the edge that orders them. The same schema.table in
    # another database is another relation (relations.py): no edge.
    builder = {(nodes[u].database, nodes[u].relation): u for u in built_ids if nodes[u].relation}
    via_source = {
        s: builder[key] for s, src in project.sources.items() if (key := (src.database, src.relation)) in builder
    }

    sources = project.sources

    def resolve(deps: tuple[str, ...], me: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if not via_source:  # the common case: a plain split (list comprehensions: faster than generators)
            return (tuple([d for d in deps if d in is_built and d != me]), tuple([d for d in deps if d in sources]))
        built = [via_source.get(d, d) for d in deps if d in is_built or d in via_source]
        return (
            tuple(dict.fromkeys(d for d in built if d != me)),
            tuple(d for d in deps if d in sources and d not in via_source),
        )

    parents, src = {}, {}
    for u in built_ids:
        parents[u], src[u] = resolve(expanded[u], u)

    order, children, cycle = _topological(built_ids, parents)
    test_parents: dict[str, tuple[str, ...]] = {}
    test_sources: dict[str, tuple[str, ...]] = {}
    for t in project.tests:
        uid = t.unique_id
        deps = expanded[uid]
        if len(deps) == 1 and deps[0] in is_built and uid not in missing:  # most tests: of one built node
            test_parents[uid], test_sources[uid] = deps, ()
            continue
        # A test of a disabled or unknown node, or of an ephemeral model reading nothing built: no DAG runs it.
        ok = t.unique_id not in missing and (
            is_built.issuperset(deps) or all(d in is_built or d in sources for d in deps)
        )
        built, read = resolve(deps, t.unique_id)
        test_parents[t.unique_id] = built if ok else ()
        test_sources[t.unique_id] = read
    direct_tests: dict[str, list[str]] = defaultdict(list)
    tagged: dict[str, set[str]] = defaultdict(set)
    for uid, n in nodes.items():
        for tag in n.tags:
            tagged[tag].add(uid)
        if n.resource_type == "test":
            for dep in n.depends_on:
                direct_tests[dep].append(uid)
    return DbtGraph(
        project=project,
        direct_tests=dict(direct_tests),
        tagged=dict(tagged),
        built={u: nodes[u] for u in order},
        parents=parents,
        children={u: children.get(u, []) for u in order},
        sources=src,
        test_parents=test_parents,
        test_sources=test_sources,
        missing=missing,
        cycle=cycle,
    )


def _topological(
    built_ids: list[str], parents: dict[str, tuple[str, ...]]
) -> tuple[list[str], dict[str, list[str]], tuple[str, ...]]:
    """Kahn's algorithm, stable by unique_id: a deterministic topological order, each node's
    children, and the nodes on a cycle (appended to the order: still placed, the cycle is reported)."""
    children: dict[str, list[str]] = defaultdict(list)
    indegree = {u: len(parents[u]) for u in built_ids}
    for u in built_ids:
        for p in parents[u]:
            children[p].append(u)
    ready = sorted(u for u in built_ids if indegree[u] == 0)
    order: list[str] = []
    while ready:
        nxt: list[str] = []
        for u in ready:
            order.append(u)
            for c in children[u]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    nxt.append(c)
        ready = sorted(nxt)
    cycle = tuple(sorted(u for u in built_ids if indegree[u] > 0))
    return order + list(cycle), children, cycle
