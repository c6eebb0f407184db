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

Ephemeral models are placed nowhere (see dbt_graph). A cycle is forced when nodes whose tag
leaves no choice form a path A -> ... -> B -> ... -> A. By default (`dbt.on_forced_cycle:
split`) the tags on it are split into stages (tag_stages.py), and a warning names the path, the
reads that keep each stage apart and the smallest fix; with `error`, the error names the path
and the fix, and the DAGs on it are left out (every other DAG renders).

Tags are bit positions and the "which tag DAG must run before which" relation is a
transitively closed bit matrix (tag_choice.py, which also holds the search of rule 1), so the
whole placement is linear in the manifest (plus a factor of the number of tags): it runs at
every DAG-file parse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .dbt_graph import DbtGraph
from .graphs import path_between, sccs, shortest_cycle
from .tag_choice import Reach, TagChoice, fixed_constraints
from .tag_stages import Split, Unsplittable, split_cycle

Rule = Literal["tag", "multi_tag", "joins_tag", "catch_all", "unplaced", "tag_stage"]


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
    node_dags: tuple[str, ...] = ()  # the DAG of each of `nodes` when the cycle was found
    reads: tuple[tuple[str, str], ...] = ()  # without `nodes`: one read (parent, child) per hop of `path`


@dataclass
class Placement:
    dag_of: dict[str, str] = field(default_factory=dict)  # built node -> DAG id
    tag_of_dag: dict[str, str | None] = field(default_factory=dict)  # DAG id -> its tag (None: catch-all)
    placed: dict[str, Placed] = field(default_factory=dict)  # nodes placed by a rule, and why
    cycles: list[CycleError] = field(default_factory=list)
    stage_of_dag: dict[str, int] = field(default_factory=dict)  # catch-all DAG id -> stage (1, 2, ...)
    tag_stage_of_dag: dict[str, tuple[int, int]] = field(default_factory=dict)  # split tag's DAG -> (stage, of)
    splits: list[tuple[CycleError, Split]] = field(default_factory=list)  # forced cycles split into stages


def place(
    graph: DbtGraph,
    node_tags: Callable[[str], list[str]],
    tag_order: list[str],
    dag_id_of_tag: Callable[[str], str],
    catch_all: Callable[[int], str] | None,
    tag_stage: Callable[[str, int], str] | None = None,
) -> Placement:
    """Place every built node. `node_tags(uid)` gives its orchestration tags in precedence order;
    `tag_order` every orchestration tag in precedence order; `catch_all(stage)` the DAG id of a
    catch-all stage (None: untagged nodes that join no tag DAG are built by no DAG);
    `tag_stage(tag, stage)` the DAG id of a stage of a tag split by a forced cycle (None: a
    forced cycle is an error)."""
    index = {t: i for i, t in enumerate(tag_order)}
    tags_of = {u: [index[t] for t in node_tags(u) if t in index] for u in graph.order}
    tag_of, reach, fixed_anc = fixed_constraints(graph, tags_of, len(tag_order))
    p = _Placing(graph, tag_order, [dag_id_of_tag(t) for t in tag_order], catch_all, tag_of)
    p.out.placed = _choose_among_tags(p, tags_of, reach, fixed_anc)
    _assign(p, _untagged_stages(graph, tag_of, len(tag_order)))
    p.out.cycles = _forced_cycles(graph, p.out)
    if tag_stage is not None and p.out.cycles:
        _split(p, tag_stage, index)
    return p.out


def _split(p: _Placing, tag_stage: Callable[[str, int], str], index: dict[str, int]) -> None:
    """Each forced cycle between tag DAGs into stages of its tags (tag_stages.py)."""
    out = p.out
    kept = []
    for cycle in out.cycles:
        tags = {d: out.tag_of_dag.get(d) for d in cycle.dags}
        if any(t is None for t in tags.values()):  # a catch-all on a cycle: not the tags' doing
            kept.append(cycle)
            continue
        tag_of = {d: str(t) for d, t in tags.items()}
        comp = [d for _, d in sorted((index[t], d) for d, t in tag_of.items())]  # in precedence order
        try:
            split = split_cycle(p.graph, out.dag_of, comp, tag_of, tag_stage)
        except Unsplittable:
            kept.append(cycle)
            continue
        for d, stage_ids in split.stages.items():
            for k, sid in enumerate(stage_ids, 1):
                out.tag_of_dag[sid] = tags[d]
                if len(stage_ids) > 1:
                    out.tag_stage_of_dag[sid] = (k, len(stage_ids))
        for u, sid in split.dag_of.items():
            out.dag_of[u] = sid
            if u in out.placed:
                out.placed[u] = Placed(sid, out.placed[u].rule, out.placed[u].reason + f"; stage {split.stage_of[sid]}")
            else:
                reads = ", ".join(f"{a} -> {b}" for a, b in split.why.get(sid, ())[:3])
                out.placed[u] = Placed(
                    sid,
                    "tag_stage",
                    f"orchestration tag {out.tag_of_dag[sid]}, "
                    f"split by a forced cycle: stage {split.stage_of[sid]}"
                    + (f", after the earlier stage through {reads}" if reads else ""),
                )
        out.splits.append((cycle, split))
    out.cycles = _forced_cycles(p.graph, out) if out.splits else kept  # none left but a catch-all's


@dataclass
class _Placing:
    """One placement under way: its inputs, and what is decided so far."""

    graph: DbtGraph
    tag_order: list[str]  # every orchestration tag in precedence order: a tag is its index here
    dag_ids: list[str]  # the DAG id of each tag, by index
    catch_all: Callable[[int], str] | None  # the DAG id of a catch-all stage (None: off)
    tag_of: dict[str, int]  # built node -> the tag whose DAG builds it, once decided
    out: Placement = field(default_factory=Placement)


@dataclass(frozen=True)
class _Stages:
    """Where the untagged nodes go (_untagged_stages)."""

    joined: dict[str, int]  # untagged node -> the tag whose DAG it joins
    level: dict[int | str, int]  # tag: first stage that may run after it; untagged node: its stage (0-based)
    via: dict[str, tuple[str, str]]  # untagged node -> (its node, a node of the DAG it must follow)


def _choose_among_tags(
    p: _Placing, tags_of: dict[str, list[int]], reach: Reach, fixed_anc: dict[str, int]
) -> dict[str, Placed]:
    """Nodes with several orchestration tags, upstream first: each takes the first tag that leaves
    every node (downstream ones too) a DAG without a cycle. A depth-first search in precedence
    order, so the result is the first acyclic assignment in that order; if none exists within a
    budget, each takes its first tag that closes no cycle yet (or its first), and the cycle is
    reported as forced. Sets `p.tag_of` for them; returns why each went where it went."""
    multi = [u for u in p.graph.order if len(tags_of[u]) > 1]
    if not multi:
        return {}
    choice = TagChoice(p.graph, multi, tags_of, p.tag_of, reach, p.dag_ids, p.tag_order, fixed_anc)
    if not choice.search():
        choice.each_on_its_own()
    placed = {}
    for i, u in enumerate(multi):
        cands, k = tags_of[u], choice.chosen[i]
        p.tag_of[u] = cands[k]
        listed = ", ".join(p.tag_order[t] for t in cands)
        if k == 0:
            reason = f"orchestration tags {listed}: the first in precedence order"
        else:
            reason = f"orchestration tags {listed}: " + "; ".join(choice.why.get((i, j), "") for j in range(k))
        placed[u] = Placed(p.dag_ids[cands[k]], "multi_tag", reason)
    return placed


def _untagged_stages(graph: DbtGraph, tag_of: dict[str, int], ntags: int) -> _Stages:
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
        _untagged_stage(comp, preds, _Stages(joined, level, via))
    return _Stages(joined, level, via)


def _untagged_stage(
    comp: list[int | str], preds: dict[int | str, dict[int | str, tuple[str, str]]], s: _Stages
) -> None:
    """The catch-all stage of one untagged node, or of several on a cycle (a hand-made manifest,
    which dbt_checks reports): they share it. Its witness too (`via`)."""
    members = set(comp)
    value, why = 0, None
    for member in comp:
        for pred, witness in preds.get(member, {}).items():
            if pred in members:
                continue
            # The witness of a stage: a read of a tag DAG's node, or the witness of a catch-all read.
            w = s.via.get(pred) if isinstance(pred, str) and pred not in s.joined else witness
            if s.level[pred] > value or (why is None and s.level[pred] == value > 0):
                value, why = s.level[pred], w
    for member in comp:
        s.level[member] = value
        if value > 0 and why is not None:
            s.via[str(member)] = why


def _assign(p: _Placing, stages: _Stages) -> None:
    """Every built node to its DAG: its tag's, the tag DAG it joins, or a catch-all stage."""
    out, joined = p.out, stages.joined
    for t in sorted(set(p.tag_of.values()) | set(joined.values())):
        out.tag_of_dag[p.dag_ids[t]] = p.tag_order[t]
    for u in p.graph.order:
        if u in p.tag_of:
            out.dag_of[u] = p.dag_ids[p.tag_of[u]]
        elif u in joined:
            dag = p.dag_ids[joined[u]]
            out.dag_of[u] = dag
            out.placed[u] = Placed(dag, "joins_tag", _between(p.graph, u, p.tag_of, joined[u], dag))
        elif p.catch_all is None:
            out.placed[u] = Placed(None, "unplaced", "no orchestration tag, and the catch-all DAG is off")
        else:
            stage = stages.level[u] + 1
            dag = p.catch_all(stage)
            out.dag_of[u] = dag
            out.tag_of_dag[dag] = None
            out.stage_of_dag[dag] = stage
            if u in stages.via:
                upstream = stages.via[u][1]
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
    read_of: dict[tuple[str, str], tuple[str, str]] = {}  # (DAG, DAG it feeds) -> one read (parent, child)
    for u, d in out.dag_of.items():
        for p in graph.parents[u]:
            dp = out.dag_of.get(p)
            if dp is not None and dp != d:
                edges[dp].add(d)
                read_of.setdefault((dp, d), (p, u))
    components = [c for c in sccs(edges, key=str) if len(c) > 1]
    if not components:
        return []
    dag_index = {d: i for i, d in enumerate(sorted(out.tag_of_dag))}
    up, down = _dags_around(graph, out, dag_index)
    errors = []
    between: dict[str, list[str]] = {}  # DAG -> its nodes that read, and are read by, some other DAG
    for u in graph.order:
        if u in out.dag_of and up[u] & down[u]:
            between.setdefault(out.dag_of[u], []).append(u)
    for comp in components:
        cycle = shortest_cycle(edges, comp)
        # The smallest fix: the nodes of one DAG Y that read, and are read by, another DAG X of the
        # cycle. Placed in X instead, they no longer make X run both before and after Y.
        best: tuple[int, str, str, list[str]] | None = None
        for y in sorted(comp):
            for x in sorted(set(comp) - {y}):
                xb = 1 << dag_index[x]
                sandwiched = [u for u in between.get(y, ()) if up[u] & down[u] & xb]
                if sandwiched and (best is None or len(sandwiched) < best[0]):
                    best = (len(sandwiched), y, x, sandwiched)
        if best is None:  # a cycle through several DAGs with no single node between two of one
            errors.append(
                CycleError(
                    tuple(sorted(comp)),
                    tuple(cycle),
                    (),
                    _join_fix(graph, out, comp, up, dag_index),
                    reads=tuple(read_of[(a, b)] for a, b in zip(cycle, cycle[1:], strict=False)),
                )
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
        chain = [out.dag_of[u] for u in nodes]
        path = [d for i, d in enumerate(chain) if i == 0 or d != chain[i - 1]]  # the DAGs the nodes cite
        errors.append(CycleError(tuple(sorted(comp)), tuple(path), tuple(nodes), fix, tuple(chain)))
    return errors


def _join_fix(graph: DbtGraph, out: Placement, comp: list[str], up: dict[str, int], dag_index: dict[str, int]) -> str:
    """The fix of a cycle between two DAGs that no single node sits between (X reads Y through
    some nodes, Y reads X through others): the nodes of Y downstream of X, placed in X, leave only
    X reading Y. Longer cycles: one DAG."""
    monolith = "run the project as one DAG (dbt.mode: monolith)"
    if len(comp) != 2:
        return monolith
    options = []
    for y, x in (tuple(sorted(comp)), tuple(sorted(comp, reverse=True))):
        xb = 1 << dag_index[x]
        moved = [u for u in graph.order if out.dag_of.get(u) == y and up[u] & xb]
        if out.tag_of_dag.get(x) is not None:
            options.append((len(moved), y, x, moved))
    if not options:
        return monolith
    _, y, x, moved = min(options)
    tag_x, tag_y = out.tag_of_dag.get(x), out.tag_of_dag.get(y)
    shown = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
    return (
        f"on {shown}: add the tag `{tag_x}`"
        + (f" (or remove `{tag_y}`)" if tag_y else "")
        + f", so {'they join' if len(moved) > 1 else 'it joins'} {x}; or {monolith}"
    )


def _dags_around(graph: DbtGraph, out: Placement, dag_index: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Which DAGs each node reads from (up) and is read by (down), as bits: one pass each way."""
    order = graph.order
    bit = {u: 1 << dag_index[out.dag_of[u]] if u in out.dag_of else 0 for u in order}
    up: dict[str, int] = {}
    for u in order:
        up[u] = 0
        for p in graph.parents[u]:
            up[u] |= up.get(p, 0) | bit[p]  # a node on a cycle may come later: dbt_checks reports it
    down: dict[str, int] = {}
    for u in reversed(order):
        down[u] = 0
        for c in graph.children[u]:
            down[u] |= down.get(c, 0) | bit[c]
    return up, down
