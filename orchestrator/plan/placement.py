"""Which dbt DAG builds each node: placement that follows lineage.

A node with one orchestration tag is built by that tag's DAG. Everything else is placed by
three rules, so that the graph of DAGs (a DAG reads what another builds) never has a cycle
it does not have to have:

1. **Several orchestration tags**: the first tag, in precedence order, whose DAG can build
   the node without closing a cycle between DAGs (taking into account every node already
   placed upstream and every single-tag node downstream). A warning names the choice.
2. **Untagged, between nodes of one tag's DAG** (it reads, directly or not, a node of DAG X
   and a node of X reads it): it joins X. One DAG cannot run both before and after it.
3. **Untagged, anywhere else**: a catch-all DAG, split into as few *stages* as acyclicity
   needs. A node goes to stage k+1 (`dbt_untagged_<k+1>`; stage 1 is `dbt_untagged`) when it
   reads, directly or not, a tag DAG that itself reads stage k; else to stage 1. So a catch-all
   never sits both before and after a tag DAG, and there are no more stages than needed: each
   is forced by a chain catch-all -> tag DAG -> catch-all.

Ephemeral models are placed nowhere (see dbt_graph). A cycle is an error only when it is
forced: nodes whose tag leaves no choice form a path A -> ... -> B -> ... -> A. The error
names that path and the smallest fix; the DAGs on it are left out, every other DAG renders.

Tags are bit positions and the "which tag DAG must run before which" relation is a
transitively closed bit matrix, so the whole placement is linear in the manifest (plus a
factor of the number of tags): it runs at every DAG-file parse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .dbt_graph import DbtGraph
from .graphs import bits, path_between, sccs, shortest_cycle

Rule = Literal["tag", "multi_tag", "joins_tag", "catch_all", "unplaced"]


@dataclass(frozen=True)
class Placed:
    """Where a node placed by a rule (not simply by its one tag) went, and why."""

    dag_id: str | None  # None: no DAG builds it (catch-all off)
    rule: Rule
    reason: str


@dataclass(frozen=True)
class CycleError:
    dags: tuple[str, ...]  # the DAGs on the cycle (left out of the rendering)
    path: tuple[str, ...]  # the DAG ids of one cycle, first repeated at the end
    nodes: tuple[str, ...]  # a node-level path that forces it (first and last in the same DAG)
    fix: str


@dataclass
class Placement:
    dag_of: dict[str, str] = field(default_factory=dict)  # built node -> DAG id
    tag_of_dag: dict[str, str | None] = field(default_factory=dict)  # DAG id -> its tag (None: catch-all)
    placed: dict[str, Placed] = field(default_factory=dict)  # nodes placed by a rule, and why
    cycles: list[CycleError] = field(default_factory=list)
    stage_of_dag: dict[str, int] = field(default_factory=dict)  # catch-all DAG id -> stage (1, 2, ...)


class _Reach:
    """The transitive closure of "tag DAG i must run before tag DAG j", as bit rows."""

    def __init__(self, n: int):
        self.after = [0] * n  # after[i]: the tags that must run after i

    def add(self, u: int, v: int) -> None:
        if u == v or self.after[u] >> v & 1:
            return
        gained = 1 << v | self.after[v]
        ubit = 1 << u
        for x, row in enumerate(self.after):
            if x == u or row & ubit:
                self.after[x] = row | gained

    def before(self, t: int) -> int:
        """The tags that must run before t."""
        return sum(1 << x for x, row in enumerate(self.after) if row >> t & 1)


def place(
    graph: DbtGraph,
    node_tags: Callable[[str], list[str]],
    tag_order: list[str],
    dag_id_of_tag: Callable[[str], str],
    catch_all: Callable[[int], str] | None,
) -> Placement:
    """Place every built node. `node_tags(uid)` gives its orchestration tags in precedence order;
    `tag_order` every orchestration tag in precedence order; `catch_all(stage)` the DAG id of a
    catch-all stage (None: untagged nodes that join no tag DAG are built by no DAG)."""
    index = {t: i for i, t in enumerate(tag_order)}
    tags_of = {u: [index[t] for t in node_tags(u) if t in index] for u in graph.order}
    names = [dag_id_of_tag(t) for t in tag_order]
    tag_of, reach = _fixed_constraints(graph, tags_of, len(tag_order))
    out = Placement()
    out.placed = _choose_among_tags(graph, tags_of, tag_of, reach, names, tag_order)
    joined, level, via = _untagged_stages(graph, tag_of, len(tag_order))
    _assign(graph, out, tag_of, joined, level, via, tag_order, names, catch_all)
    out.cycles = _forced_cycles(graph, out)
    return out


def _fixed_constraints(graph: DbtGraph, tags_of: dict[str, list[int]], ntags: int) -> tuple[dict[str, int], _Reach]:
    """Single-tag nodes fix the first constraints: tag a upstream of a node of tag b -> a before b."""
    tag_of = {u: ts[0] for u, ts in tags_of.items() if len(ts) == 1}
    anc: dict[str, int] = {}
    for u in graph.order:
        mask = 0
        for p in graph.parents[u]:
            mask |= anc[p] | (1 << tag_of[p] if p in tag_of else 0)
        anc[u] = mask
    reach = _Reach(ntags)
    for u, t in tag_of.items():
        for a in bits(anc[u]):
            reach.add(a, t)
    return tag_of, reach


def _choose_among_tags(
    graph: DbtGraph,
    tags_of: dict[str, list[int]],
    tag_of: dict[str, int],
    reach: _Reach,
    names: list[str],
    tag_order: list[str],
) -> dict[str, Placed]:
    """Nodes with several orchestration tags, upstream first: each takes the first tag that leaves
    every node (downstream ones too) a DAG without a cycle. A depth-first search in precedence
    order, so the result is the first acyclic assignment in that order; if none exists within a
    budget, each takes its first tag that closes no cycle yet (or its first), and the cycle is
    reported as forced. Sets `tag_of` for them; returns why each went where it went."""
    multi = [u for u in graph.order if len(tags_of[u]) > 1]
    if not multi:
        return {}
    choice = _TagChoice(graph, multi, tags_of, tag_of, reach, names, tag_order)
    if not choice.search():
        choice.each_on_its_own()
    placed = {}
    for i, u in enumerate(multi):
        cands, k = tags_of[u], choice.chosen[i]
        tag_of[u] = cands[k]
        listed = ", ".join(tag_order[t] for t in cands)
        if k == 0:
            reason = f"orchestration tags {listed}: the first in precedence order"
        else:
            reason = f"orchestration tags {listed}: " + "; ".join(choice.why.get((i, j), "") for j in range(k))
        placed[u] = Placed(names[cands[k]], "multi_tag", reason)
    return placed


class _TagChoice:
    """The search behind _choose_among_tags. Position i is the i-th multi-tag node in topological
    order; chosen[i] the index of its tag among its candidates."""

    def __init__(
        self,
        graph: DbtGraph,
        multi: list[str],
        tags_of: dict[str, list[int]],
        tag_of: dict[str, int],
        reach: _Reach,
        names: list[str],
        tag_order: list[str],
    ):
        self.multi, self.tags_of, self.reach, self.names, self.tag_order = multi, tags_of, reach, names, tag_order
        self.initial = list(reach.after)
        self.chosen = [-1] * len(multi)
        self.why: dict[tuple[int, int], str] = {}  # (position, candidate) -> why it was not taken
        position = {u: i for i, u in enumerate(multi)}
        self.fixed_anc: dict[str, int] = {}  # single-tag tags upstream
        self.multi_anc: dict[str, int] = {}  # multi-tag nodes upstream, as bits of their position
        for u in graph.order:
            fa = ma = 0
            for p in graph.parents[u]:
                fa |= self.fixed_anc[p] | (1 << tag_of[p] if p in tag_of else 0)
                ma |= self.multi_anc[p] | (1 << position[p] if p in position else 0)
            self.fixed_anc[u], self.multi_anc[u] = fa, ma
        self.fixed_desc: dict[str, int] = {}  # single-tag tags downstream
        for u in reversed(graph.order):
            mask = 0
            for c in graph.children[u]:
                mask |= self.fixed_desc[c] | (1 << tag_of[c] if c in tag_of else 0)
            self.fixed_desc[u] = mask

    def above(self, i: int) -> int:
        mask = self.fixed_anc[self.multi[i]]
        for j in bits(self.multi_anc[self.multi[i]]):
            mask |= 1 << self.tags_of[self.multi[j]][self.chosen[j]]
        return mask

    def conflict(self, i: int, t: int) -> str | None:
        """Why tag t for node i would close a cycle (None: it would not)."""
        names, reach = self.names, self.reach
        a, d = self.above(i) & ~(1 << t), self.fixed_desc[self.multi[i]] & ~(1 << t)
        if a & d:
            x = next(bits(a & d))
            return f"{names[t]} would run both before and after {names[x]}, which it reads and which reads it"
        if reach.after[t] & a:
            return f"{names[t]} runs before {names[next(bits(reach.after[t] & a))]}, which it reads"
        if reach.before(t) & d:
            return f"{names[t]} runs after {names[next(bits(reach.before(t) & d))]}, which reads it"
        return None

    def apply(self, i: int, t: int) -> None:
        for x in bits(self.above(i)):
            self.reach.add(x, t)
        for x in bits(self.fixed_desc[self.multi[i]]):
            self.reach.add(t, x)

    def search(self) -> bool:
        """Depth first, candidates in precedence order; False when it finds no acyclic assignment
        within its budget (linear in practice: a backtrack only on a real conflict)."""
        saved: list[list[int] | None] = [None] * len(self.multi)
        i, steps, budget = 0, 0, 20 * len(self.multi) + 2000
        while 0 <= i < len(self.multi) and steps < budget:
            steps += 1
            snapshot = saved[i]
            if snapshot is None:
                saved[i] = list(self.reach.after)
            else:
                self.reach.after = list(snapshot)
            cands = self.tags_of[self.multi[i]]
            k = self.chosen[i] + 1
            while k < len(cands) and (clash := self.conflict(i, cands[k])) is not None:
                self.why[(i, k)] = clash
                k += 1
            if k < len(cands):
                self.chosen[i] = k
                self.apply(i, cands[k])
                i += 1
                continue
            self.chosen[i], saved[i] = -1, None  # no tag left: undo the node before, try its next tag
            if i > 0:
                prev, u = self.multi[i - 1], self.multi[i]
                self.why[(i - 1, self.chosen[i - 1])] = (
                    f"{self.names[self.tags_of[prev][self.chosen[i - 1]]]} would leave {u} "
                    f"(tags {', '.join(self.tag_order[t] for t in self.tags_of[u])}) no DAG without a cycle"
                )
            i -= 1
        return i == len(self.multi)

    def each_on_its_own(self) -> None:
        """Without a whole acyclic assignment: each node its first tag that closes no cycle yet (or its
        first); what is left is reported as a forced cycle."""
        self.reach.after = list(self.initial)
        self.chosen = [-1] * len(self.multi)
        for i, u in enumerate(self.multi):
            cands = self.tags_of[u]
            k = next((k for k, t in enumerate(cands) if self.conflict(i, t) is None), 0)
            for j in range(k):
                self.why.setdefault((i, j), self.conflict(i, cands[j]) or "")
            self.chosen[i] = k
            self.apply(i, cands[k])


def _untagged_stages(graph: DbtGraph, tag_of: dict[str, int], ntags: int):
    """Untagged nodes: those on a cycle with a tag's nodes join it; the others get a catch-all
    stage. Vertices are the tags (0..n-1) and the untagged nodes; an edge per read."""
    order, parents = graph.order, graph.parents
    vertex: dict[str, int | str] = {u: tag_of.get(u, u) for u in order}
    preds: dict[int | str, dict[int | str, tuple[str, str]]] = {v: {} for v in range(ntags)}
    succs: dict[int | str, set[int | str]] = {v: set() for v in range(ntags)}
    for u in order:
        vu = vertex[u]
        preds.setdefault(vu, {})
        succs.setdefault(vu, set())
        for p in parents[u]:
            vp = vertex[p]
            if vp != vu:
                preds[vu].setdefault(vp, (u, p))
                succs.setdefault(vp, set()).add(vu)
    joined: dict[str, int] = {}  # untagged node -> the tag it joins
    level: dict[int | str, int] = {}  # tag: first stage that may run after it; untagged: its stage (0-based)
    via: dict[str, tuple[str, str]] = {}  # untagged node -> (its node, a node of the DAG it must follow)
    for comp in reversed(sccs(succs)):  # sources first
        tags_in = sorted(x for x in comp if isinstance(x, int))
        members = set(comp)
        if tags_in:
            for member in comp:
                if isinstance(member, str):
                    joined[member] = tags_in[0]
            value = 0
            for member in comp:
                for pred in preds.get(member, {}):
                    if pred not in members:
                        after_stage = isinstance(pred, str) and pred not in joined
                        value = max(value, level[pred] + 1 if after_stage else level[pred])
            for member in comp:
                level[member] = value
            continue
        (single,) = comp
        value, why = 0, None
        for pred, witness in preds.get(single, {}).items():
            # The witness of a stage: a read of a tag DAG's node, or the witness of a catch-all read.
            w = via.get(pred) if isinstance(pred, str) and pred not in joined else witness
            if level[pred] > value or (why is None and level[pred] == value > 0):
                value, why = level[pred], w
        level[single] = value
        if value > 0 and why is not None:
            via[str(single)] = why
    return joined, level, via


def _assign(
    graph: DbtGraph,
    out: Placement,
    tag_of: dict[str, int],
    joined: dict[str, int],
    level: dict[int | str, int],
    via: dict[str, tuple[str, str]],
    tag_order: list[str],
    names: list[str],
    catch_all: Callable[[int], str] | None,
) -> None:
    used = set(tag_of.values()) | set(joined.values())
    for t in sorted(used):
        out.tag_of_dag[names[t]] = tag_order[t]
    for u in graph.order:
        if u in tag_of:
            out.dag_of[u] = names[tag_of[u]]
        elif u in joined:
            dag = names[joined[u]]
            out.dag_of[u] = dag
            out.placed[u] = Placed(dag, "joins_tag", _between(graph, u, tag_of, joined[u], dag))
        elif catch_all is None:
            out.placed[u] = Placed(None, "unplaced", "no orchestration tag, and the catch-all DAG is off")
        else:
            stage = level[u] + 1
            dag = catch_all(stage)
            out.dag_of[u] = dag
            out.tag_of_dag[dag] = None
            out.stage_of_dag[dag] = stage
            if u in via:
                upstream = via[u][1]
                reason = (
                    f"no orchestration tag; downstream of {upstream} ({out.dag_of.get(upstream, '?')}), "
                    f"which runs after catch-all stage {stage - 1}: catch-all stage {stage}"
                )
            else:
                reason = "no orchestration tag: catch-all stage 1"
            out.placed[u] = Placed(dag, "catch_all", reason)


def _between(graph: DbtGraph, u: str, tag_of: dict[str, int], t: int, dag: str) -> str:
    def in_tag(v: str) -> bool:
        return tag_of.get(v) == t

    up = path_between(graph.parents, u, in_tag)
    down = path_between(graph.children, u, in_tag)
    if up and down:
        return (
            f"no orchestration tag, between models of {dag}: reads {up[-1]}, read by {down[-1]}; "
            f"{dag} cannot run both before and after it, so it joins"
        )
    return f"no orchestration tag, on a cycle with {dag}: joins it"


def _forced_cycles(graph: DbtGraph, out: Placement) -> list[CycleError]:
    edges: dict[str, set[str]] = {d: set() for d in out.tag_of_dag}
    for u, d in out.dag_of.items():
        for p in graph.parents[u]:
            dp = out.dag_of.get(p)
            if dp is not None and dp != d:
                edges[dp].add(d)
    components = [c for c in sccs(edges, key=str) if len(c) > 1]
    if not components:
        return []
    # Which DAGs each node reads from (up) and is read by (down), as bits: one pass each way.
    dag_index = {d: i for i, d in enumerate(sorted(out.tag_of_dag))}
    order = graph.order
    bit = {u: 1 << dag_index[out.dag_of[u]] if u in out.dag_of else 0 for u in order}
    up: dict[str, int] = {}
    for u in order:
        up[u] = 0
        for p in graph.parents[u]:
            up[u] |= up[p] | bit[p]
    down: dict[str, int] = {}
    for u in reversed(order):
        down[u] = 0
        for c in graph.children[u]:
            down[u] |= down[c] | bit[c]
    errors = []
    for comp in components:
        cycle = shortest_cycle(edges, comp)
        # The smallest fix: the nodes of one DAG Y that read, and are read by, another DAG X of the
        # cycle. Placed in X instead, they no longer make X run both before and after Y.
        best: tuple[int, str, str, list[str]] | None = None
        for y in sorted(comp):
            for x in sorted(set(comp) - {y}):
                xb = 1 << dag_index[x]
                sandwiched = [u for u in order if out.dag_of.get(u) == y and up[u] & down[u] & xb]
                if sandwiched and (best is None or len(sandwiched) < best[0]):
                    best = (len(sandwiched), y, x, sandwiched)
        if best is None:  # a cycle through several DAGs with no single node between two of one
            errors.append(
                CycleError(tuple(sorted(comp)), tuple(cycle), (), "run the project as one DAG (dbt.mode: monolith)")
            )
            continue
        _, y, x, culprits = best
        s = culprits[0]

        def in_x(v: str, x: str = x) -> bool:
            return out.dag_of.get(v) == x

        above = path_between(graph.parents, s, in_x)
        below = path_between(graph.children, s, in_x)
        nodes = (*reversed(above), *below[1:])
        tag_x, tag_y = out.tag_of_dag.get(x), out.tag_of_dag.get(y)
        shown = ", ".join(culprits[:5]) + (f" and {len(culprits) - 5} more" if len(culprits) > 5 else "")
        fix = (
            f"on {shown}: add the tag `{tag_x}`"
            + (f" (or remove `{tag_y}`)" if tag_y else "")
            + f", so {'they join' if len(culprits) > 1 else 'it joins'} {x}; "
            "or run the project as one DAG (dbt.mode: monolith)"
        )
        errors.append(CycleError(tuple(sorted(comp)), tuple(cycle), tuple(nodes), fix))
    return errors
