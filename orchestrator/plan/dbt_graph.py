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
from functools import cached_property

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
    tagged: dict[str, set[str]] = field(default_factory=dict)  # tag -> every node and test carrying it
    cycle: tuple[str, ...] = ()  # built nodes on a cycle (only in a hand-made manifest: dbt refuses them)
    # Most tests (not_null, unique, ...) read one built node and nothing else: grouped by that node,
    # the steps after this one handle them a node at a time, with C-level set and dict operations.
    only_tests: dict[str, list[str]] = field(default_factory=dict)  # built node -> the tests reading it alone
    other_tests: tuple[str, ...] = ()  # every other test, in the manifest's order

    @property
    def order(self) -> list[str]:
        return list(self.built)

    @cached_property
    def direct_tests(self) -> dict[str, list[str]]:
        """Node -> the tests that name it directly (rarely read: made when first read)."""
        direct: dict[str, list[str]] = defaultdict(list)
        for t in self.project.tests:
            for dep in t.depends_on:
                direct[dep].append(t.unique_id)
        return dict(direct)


def _expand(
    project: DbtProject, pending: list[Node], known: set[str]
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """The reads of these nodes (and of the ephemeral models they read) with ephemeral models
    replaced by what they read: (built or test deps, missing). `known`: the built nodes and the
    sources (what a node reads as it is)."""
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

    # Most nodes read only built nodes and sources: a set check in C decides it, in one
    # comprehension, and only the others take the per-dependency walk (10,000 models: 4x faster).
    expanded: dict[str, tuple[str, ...]] = {
        n.unique_id: deps if len(deps) < 2 else tuple(dict.fromkeys(deps))
        for n in pending
        if known.issuperset(deps := n.depends_on)
    }
    rest = [n.unique_id for n in pending if n.unique_id not in expanded] if len(expanded) < len(pending) else []
    reads: dict[str, tuple[list[str], list[str], list[str]]] = {}

    def read(uid: str) -> tuple[list[str], list[str], list[str]]:  # an ephemeral model may not be pending
        return reads[uid] if uid in reads else reads.setdefault(uid, direct(uid))

    for uid in rest:
        eph, other, lost = read(uid)
        if lost:
            missing[uid] = tuple(lost)
        if not eph:
            expanded[uid] = tuple(dict.fromkeys(other))
    for start in rest:
        if start in expanded:
            continue
        # Iterative post-order DFS over ephemeral deps: a chain of 10,000 is fine.
        stack = [(start, iter(read(start)[0]))]
        on_path = {start}
        while stack:
            uid, todo = stack[-1]
            dep = next((d for d in todo if d not in expanded and d not in on_path), None)
            if dep is not None:
                on_path.add(dep)
                stack.append((dep, iter(read(dep)[0])))
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
    nodes = project.nodes
    built_nodes = [n for n in project.buildable if n.materialized != "ephemeral"]
    built_ids = [n.unique_id for n in built_nodes]
    is_built = set(built_ids)
    sources = project.sources
    # A source declared on a relation the project itself builds (a snapshot's table, say) is a read
    # of the node that builds it: that is the edge that orders them. The same schema.table in
    # another database is another relation (relations.py): no edge.
    builder = {(n.database, n.relation): n.unique_id for n in built_nodes if n.relation}
    via_source = {s: builder[key] for s, src in sources.items() if (key := (src.database, src.relation)) in builder}
    tests = _sort_tests(project, is_built, via_source)
    test_parents, tagged, unresolved = tests.parents, tests.tagged, tests.unresolved
    test_sources: dict[str, tuple[str, ...]] = dict.fromkeys(test_parents, ())
    test_sources.update(tests.source_reads)
    for n in project.buildable:
        for tag in n.tags:
            tagged[tag].add(n.unique_id)
    known = is_built.union(sources)
    if unresolved:  # in the manifest's order (that of `missing`)
        todo = {t.unique_id for t in unresolved}
        expanded, missing = _expand(project, [n for u, n in nodes.items() if u in todo or u not in test_parents], known)
    else:
        expanded, missing = _expand(project, list(project.buildable), known)

    def resolve(deps: tuple[str, ...], me: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if not via_source:  # the common case: a plain split (list comprehensions: faster than generators)
            return (tuple([d for d in deps if d in is_built and d != me]), tuple([d for d in deps if d in sources]))
        built = [via_source.get(d, d) for d in deps if d in is_built or d in via_source]
        return (
            tuple(dict.fromkeys(d for d in built if d != me)),
            tuple(d for d in deps if d in sources and d not in via_source),
        )

    parents: dict[str, tuple[str, ...]] = {}
    src: dict[str, tuple[str, ...]] = {}
    source_ids = set(sources) if not via_source else set()
    for u in built_ids:
        deps = expanded[u]
        if source_ids and is_built.issuperset(deps) and u not in deps:  # reads built nodes only
            parents[u], src[u] = deps, ()
        elif source_ids and source_ids.issuperset(deps):  # reads sources only (a staging model)
            parents[u], src[u] = (), deps
        else:
            parents[u], src[u] = resolve(deps, u)

    order, children, cycle = _topological(built_ids, parents)
    for t in unresolved:
        uid = t.unique_id
        deps = expanded[uid]
        # A test of a disabled or unknown node, or of an ephemeral model reading nothing built: no DAG runs it.
        ok = uid not in missing and (is_built.issuperset(deps) or all(d in is_built or d in sources for d in deps))
        built, read = resolve(deps, uid)
        test_parents[uid] = built if ok else ()
        test_sources[uid] = read
    return DbtGraph(
        project=project,
        tagged=dict(tagged),
        built={u: nodes[u] for u in order},
        parents=parents,
        children={u: children[u] for u in order},
        sources=src,
        test_parents=test_parents,
        test_sources=test_sources,
        missing=missing,
        cycle=cycle,
        only_tests=dict(tests.only),
        other_tests=tuple(tests.other),
    )


@dataclass
class _Tests:
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # () for the unresolved, in order
    source_reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    only: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tagged: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    other: list[str] = field(default_factory=list)
    unresolved: list[Node] = field(default_factory=list)  # reading an ephemeral or missing node


def _sort_tests(project: DbtProject, is_built: set[str], via_source: dict[str, str]) -> _Tests:
    """Most tests read only built nodes (not_null, unique, relationships) or only sources: nothing
    to expand, resolve or check. They take one step here, in one pass over the tests (three
    before: 10,000 models' 27,000 tests were most of the graph's time); the expansion and the
    general loop of build_graph get the others (a test of an ephemeral model, of a missing node)."""
    out, sources = _Tests(), project.sources
    parents, only, other = out.parents, out.only, out.other
    for t in project.tests:
        uid, deps = t.unique_id, t.depends_on
        if t.tags:
            for tag in t.tags:
                out.tagged[tag].add(uid)
        if len(deps) == 1 and deps[0] in is_built:
            parents[uid] = deps
            only[deps[0]].append(uid)
            continue
        if len(deps) > 1 and is_built.issuperset(deps):
            parents[uid] = read = tuple(dict.fromkeys(deps))
            (only[read[0]] if len(read) == 1 else other).append(uid)
            continue
        other.append(uid)
        if len(deps) == 1 and deps[0] in sources and deps[0] not in via_source:
            parents[uid], out.source_reads[uid] = (), deps
            continue
        parents[uid] = ()  # keeps the tests' order; build_graph sets it
        out.unresolved.append(t)
    return out


def _topological(
    built_ids: list[str], parents: dict[str, tuple[str, ...]]
) -> tuple[list[str], dict[str, list[str]], tuple[str, ...]]:
    """Kahn's algorithm, stable by unique_id: a deterministic topological order, each node's
    children, and the nodes on a cycle (appended to the order: still placed, the cycle is reported)."""
    children: dict[str, list[str]] = {u: [] for u in built_ids}
    for u in built_ids:
        for p in parents[u]:  # a parent is a built node
            children[p].append(u)
    indegree = {u: len(parents[u]) for u in built_ids}
    ready = sorted([u for u, d in indegree.items() if not d])
    order: list[str] = []
    while ready:
        order += ready
        nxt: list[str] = []
        for u in ready:
            for c in children[u]:
                indegree[c] = d = indegree[c] - 1
                if not d:
                    nxt.append(c)
        ready = sorted(nxt)
    cycle = tuple(sorted(u for u in built_ids if indegree[u] > 0))
    return order + list(cycle), children, cycle
