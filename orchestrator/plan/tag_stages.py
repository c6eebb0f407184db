"""Splitting the tags of a forced cycle into stages (`dbt.on_forced_cycle: split`, see placement.py).

When single-tag nodes form a path A -> ... -> B -> ... -> A, no placement by tag is acyclic. Like
the catch-all, each tag on the cycle is then split into stages (`dbt_a`, `dbt_a_2`, ...), each a
DAG scheduled on what it reads, so the graph of DAGs is acyclic and every node runs after its
inputs:

1. **Rounds, as early as possible.** Over the nodes of the cycle's DAGs in topological order, a
   node's round is the largest of its parents' rounds, plus one for a parent of another DAG: a
   read across DAGs always goes to a later round, so (DAG, round) pieces form an acyclic graph.
2. **As few stages as that greedy allows.** Two consecutive pieces of one tag merge unless a
   path through another piece joins them (merging would close a cycle). Tags are tried in
   precedence order, so the earlier tags keep fewer stages.
3. **Numbered in run order**: the stages of a tag are numbered 1, 2, ... along a topological
   order of the merged pieces.

Every read between DAGs of the cycle stays inside it (the cycle is a strongly connected component
of the DAG graph), so nothing outside it moves, and catch-all stages keep their place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .dbt_graph import DbtGraph

Piece = tuple[str, int]  # (the DAG of the cycle, a round)


class Unsplittable(Exception):
    """The nodes themselves form a cycle (a model reading what it builds, through a source or a
    ref): no staging orders them. dbt_checks reports that cycle; the DAG cycle is kept as an error."""


@dataclass(frozen=True)
class Split:
    """How one forced cycle was split."""

    stages: dict[str, tuple[str, ...]]  # DAG of the cycle -> its stages' DAG ids, in run order
    stage_of: dict[str, int]  # stage DAG id -> its stage (1, 2, ...)
    why: dict[str, tuple[tuple[str, str], ...]]  # stage k > 1 -> reads (parent, child) from stage k-1 to it
    dag_of: dict[str, str]  # moved node -> its stage DAG id (nodes that stay in stage 1 are left out)


def split_cycle(
    graph: DbtGraph,
    dag_of: dict[str, str],
    comp: list[str],
    tag_of: dict[str, str],
    stage_id: Callable[[str, int], str],
) -> Split:
    """Split the DAGs of `comp` (a forced cycle's DAGs, in precedence order; `tag_of` their tags)
    into stages; `stage_id(tag, k)` names stage k of a tag's DAG (stage 1 keeps its id)."""
    inside = set(comp)
    members = [u for u in graph.order if dag_of.get(u) in inside]
    rounds = _rounds(graph, dag_of, inside)
    piece_of = {u: (dag_of[u], rounds[u]) for u in members}
    edges: dict[Piece, dict[Piece, tuple[str, str]]] = {p: {} for p in piece_of.values()}
    for u in members:
        for p in graph.parents[u]:
            if p in piece_of and piece_of[p] != piece_of[u]:
                edges[piece_of[p]].setdefault(piece_of[u], (p, u))
    group = _merge(comp, edges)
    order = _run_order(edges, group)
    stages: dict[str, list[Piece]] = {d: [] for d in comp}
    for rep in order:
        stages[rep[0]].append(rep)
    name = {rep: stage_id(tag_of[d], k) for d, reps in stages.items() for k, rep in enumerate(reps, 1)}
    why = {}
    for reps in stages.values():
        for before, after in zip(reps, reps[1:], strict=False):
            why[name[after]] = _path(edges, group, before, after)
    return Split(
        stages={d: tuple(name[r] for r in reps) for d, reps in stages.items()},
        stage_of={name[r]: k for reps in stages.values() for k, r in enumerate(reps, 1)},
        why=why,
        dag_of={u: name[group[piece_of[u]]] for u in members if name[group[piece_of[u]]] != dag_of[u]},
    )


def _rounds(graph: DbtGraph, dag_of: dict[str, str], inside: set[str]) -> dict[str, int]:
    """Each node's round (step 1). A node outside the cycle passes on the round after its
    ancestors' (it cannot sit between two of the cycle's nodes; this keeps it so if it did)."""
    rounds: dict[str, int] = {}
    carried: dict[str, int] = {}  # a node outside the cycle, downstream of it -> the round after it
    for u in graph.order:
        d = dag_of.get(u)
        value, reached = 0, False
        for p in graph.parents[u]:
            if p in rounds:
                value, reached = max(value, rounds[p] if dag_of[p] == d else rounds[p] + 1), True
            elif p in carried:
                value, reached = max(value, carried[p]), True
        if d in inside:
            rounds[u] = value
        elif reached and d is not None:
            carried[u] = value
    return rounds


def _merge(comp: list[str], edges: dict[Piece, dict[Piece, tuple[str, str]]]) -> dict[Piece, Piece]:
    """Step 2: piece -> the piece that stands for its merged group (the group's first round)."""
    group = {p: p for p in edges}
    succ: dict[Piece, set[Piece]] = {p: set(e) for p, e in edges.items()}
    for d in comp:
        reps = sorted(p for p in edges if p[0] == d)
        current = reps[0] if reps else None
        for nxt in reps[1:]:
            assert current is not None
            if _joined(succ, current, nxt) or _joined(succ, nxt, current):
                current = nxt
                continue
            for p, g in group.items():  # nxt's group into current's
                if g == nxt:
                    group[p] = current
            succ[current] |= succ.pop(nxt)
            succ[current] -= {current, nxt}
            for targets in succ.values():
                if nxt in targets:
                    targets.discard(nxt)
                    targets.add(current)
            succ[current].discard(current)
    return group


def _joined(succ: dict[Piece, set[Piece]], a: Piece, b: Piece) -> bool:
    """A path a -> x -> ... -> b through another piece (merging a and b would close a cycle)."""
    todo = [x for x in succ[a] if x != b]
    seen = set(todo)
    while todo:
        x = todo.pop()
        for y in succ.get(x, ()):
            if y == b:
                return True
            if y not in seen:
                seen.add(y)
                todo.append(y)
    return False


def _run_order(edges: dict[Piece, dict[Piece, tuple[str, str]]], group: dict[Piece, Piece]) -> list[Piece]:
    """Step 3: the merged pieces in a topological order (earliest round first among the ready)."""
    succ: dict[Piece, set[Piece]] = {g: set() for g in group.values()}
    for p, targets in edges.items():
        for q in targets:
            if group[p] != group[q]:
                succ[group[p]].add(group[q])
    indegree = {g: 0 for g in succ}
    for nexts in succ.values():
        for q in nexts:
            indegree[q] += 1
    ready = sorted((g for g, n in indegree.items() if n == 0), key=lambda g: (g[1], g[0]))
    order = []
    while ready:
        g = ready.pop(0)
        order.append(g)
        for q in succ[g]:
            indegree[q] -= 1
            if indegree[q] == 0:
                ready.append(q)
        ready.sort(key=lambda g: (g[1], g[0]))
    if len(order) != len(succ):
        raise Unsplittable
    return order


def _path(
    edges: dict[Piece, dict[Piece, tuple[str, str]]], group: dict[Piece, Piece], start: Piece, goal: Piece
) -> tuple[tuple[str, str], ...]:
    """The reads along a shortest path of merged pieces from `start` to `goal`: why they stay apart."""
    succ: dict[Piece, dict[Piece, tuple[str, str]]] = {}
    for p, targets in edges.items():
        for q, witness in targets.items():
            if group[p] != group[q]:
                succ.setdefault(group[p], {}).setdefault(group[q], witness)
    parent: dict[Piece, tuple[Piece, tuple[str, str]]] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for x in frontier:
            for y, witness in sorted(succ.get(x, {}).items()):
                if y in parent or y == start or (x == start and y == goal):
                    continue  # the direct read is not why they stay apart: a path around it is
                parent[y] = (x, witness)
                if y == goal:
                    reads = []
                    while y != start:
                        y, witness = parent[y]
                        reads.append(witness)
                    return tuple(reversed(reads))
                nxt.append(y)
        frontier = nxt
    return ()
