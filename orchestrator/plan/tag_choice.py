"""The search behind placement's first rule: nodes with several orchestration tags each take the
first tag, in precedence order, that closes no cycle between tag DAGs (see placement.py).

Tags are bit positions and "which tag DAG must run before which" is a transitively closed bit
matrix (Reach), so a check is a few integer operations: it runs at every DAG-file parse.
"""

from __future__ import annotations

from .dbt_graph import DbtGraph
from .graphs import bits


class Reach:
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


def fixed_constraints(
    graph: DbtGraph, tags_of: dict[str, list[int]], ntags: int
) -> tuple[dict[str, int], Reach, dict[str, int]]:
    """Single-tag nodes fix the first constraints: tag a upstream of a node of tag b -> a before b.
    Also returns each node's single-tag tags upstream, as bits (TagChoice reads them too)."""
    tag_of = {u: ts[0] for u, ts in tags_of.items() if len(ts) == 1}
    own = {u: 1 << t for u, t in tag_of.items()}  # a node's own tag, as a bit
    anc: dict[str, int] = {}
    parents, get, own_get = graph.parents, anc.get, own.get
    for u in graph.order:  # parents first (but on a cycle): each node ORs its parents'
        mask = 0
        for p in parents[u]:
            mask |= get(p, 0) | own_get(p, 0)
        anc[u] = mask
    before = [0] * ntags  # tag t -> the tags upstream of any of its nodes
    for u, t in tag_of.items():
        before[t] |= anc[u]
    reach = Reach(ntags)
    for t, mask in enumerate(before):  # the closure is the same whatever the order of the adds
        for a in bits(mask):
            reach.add(a, t)
    return tag_of, reach, anc


class TagChoice:
    """The search behind placement's _choose_among_tags. Position i is the i-th multi-tag node in topological
    order; chosen[i] the index of its tag among its candidates."""

    def __init__(
        self,
        graph: DbtGraph,
        multi: list[str],
        tags_of: dict[str, list[int]],
        tag_of: dict[str, int],
        reach: Reach,
        names: list[str],
        tag_order: list[str],
        fixed_anc: dict[str, int],
    ):
        self.multi, self.tags_of, self.reach, self.names, self.tag_order = multi, tags_of, reach, names, tag_order
        self.initial = list(reach.after)
        self.chosen = [-1] * len(multi)
        self.why: dict[tuple[int, int], str] = {}  # (position, candidate) -> why it was not taken
        position = {u: i for i, u in enumerate(multi)}
        self.fixed_anc = fixed_anc  # single-tag tags upstream (fixed_constraints)
        own = {u: 1 << i for u, i in position.items()}
        multi_anc: dict[str, int] = {}  # multi-tag nodes upstream, as bits of their position
        parents, children = graph.parents, graph.children
        get, own_get = multi_anc.get, own.get
        for u in graph.order:
            ma = 0
            for p in parents[u]:
                ma |= get(p, 0) | own_get(p, 0)
            multi_anc[u] = ma
        fixed = {u: 1 << t for u, t in tag_of.items()}
        fixed_desc: dict[str, int] = {}  # single-tag tags downstream
        get, fixed_get = fixed_desc.get, fixed.get
        for u in reversed(graph.order):
            mask = 0
            for c in children[u]:
                mask |= get(c, 0) | fixed_get(c, 0)
            fixed_desc[u] = mask
        self.multi_anc, self.fixed_desc = multi_anc, fixed_desc

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
