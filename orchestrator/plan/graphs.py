"""Small graph algorithms the plan needs, iterative (no recursion limit) and deterministic."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import TypeVar

V = TypeVar("V", bound=Hashable)


def bits(mask: int) -> Iterator[int]:
    """The indexes of the set bits of `mask`, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def sccs(graph: Mapping[V, set[V]] | Mapping[V, list[V]], key=None) -> list[list[V]]:
    """Tarjan's strongly connected components of `graph` (vertex -> successors).

    Components come out in reverse topological order: a component after every one it leads to.
    """
    index: dict[V, int] = {}
    low: dict[V, int] = {}
    on_stack: set[V] = set()
    stack: list[V] = []
    out: list[list[V]] = []
    counter = 0
    order = sorted(graph, key=key) if key else list(graph)
    for root in order:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
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
                    work.append((child, iter(graph.get(child, ()))))
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


def shortest_cycle(graph: Mapping[str, set[str]], members: list[str]) -> list[str]:
    """A shortest cycle through the smallest member of a strongly connected component, as a list
    of vertices with the first repeated at the end."""
    inside = set(members)
    start = min(members)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first, back to the start
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, set()) & inside):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]


def path_between(succ: Mapping[str, list[str]] | Mapping[str, tuple[str, ...]], start: str, goal) -> list[str]:
    """A shortest path from `start` along `succ` to the first vertex satisfying `goal` (start excluded),
    or [] if none."""
    parent: dict[str, str] = {start: start}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in succ.get(node, ()):
                if child in parent:
                    continue
                parent[child] = node
                if goal(child):
                    path = [child]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1]
                nxt.append(child)
        frontier = nxt
    return []
