"""What each dbt tag looks like on the manifest, for `init` to propose domain tags: the nodes it
is on, how they hang together by lineage, how it overlaps the others, and whether its name marks
a cross-cutting label (a cadence, a layer, a data classification...) rather than a domain.

Pure and fast: node sets are Python ints used as bit sets, so the overlap of two tags, or how many
nodes carry exactly one tag of a set, is a handful of integer operations. Nothing here runs a plan
(orchestrator/init/tags.py tries the proposals on the real plan).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..plan.dbt_graph import build_graph
from ..plan.manifest import DbtProject

MIN_NODES = 2  # a domain is more than one model
SWAP_ROUNDS = 20  # improvements tried at most by the search (each a greedy fill)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Labels that cut across domains, by kind. A tag is one when its whole name (lower case, `-` and
# spaces as `_`) is listed, or matches a pattern of its kind (`every_15_minutes`, `contains_pii`).
LABELS: dict[str, tuple[frozenset[str], str | None]] = {
    "cadence": (
        _words(
            "hourly daily nightly weekly biweekly monthly quarterly yearly annual annually intraday realtime "
            "real_time streaming near_real_time morning evening weekend weekday adhoc ad_hoc on_demand"
        ),
        r"(every|each)_\w+|\d+_?(m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days)|"
        r"(run|refresh|load|sync|build|schedule|update)_(hourly|daily|nightly|weekly|monthly)|"
        r"(hourly|daily|nightly|weekly|monthly)_(run|refresh|load|sync|build|schedule|update|job)s?",
    ),
    "layer": (
        _words(
            "staging stg stage intermediate int interim marts mart base raw source sources landing bronze silver gold "
            "final prep preparation transform transformed derived presentation semantic dim dims dimension dimensions "
            "fact facts fct fcts"
        ),
        r"\w+_layer|layer_\w+",
    ),
    "lifecycle": (
        _words(
            "deprecated legacy experimental wip beta alpha draft temp tmp test tests testing sandbox archived archive "
            "old obsolete sunset sunsetting poc prototype dev scratch unused to_delete do_not_use"
        ),
        None,
    ),
    "data classification": (
        _words(
            "pii phi pci sensitive confidential restricted internal public private gdpr hipaa sox ccpa secure secret "
            "masked personal personal_data"
        ),
        r"(contains|has|with)_(pii|phi|pci|personal_data)|(pii|phi|pci)_\w+|\w+_(pii|phi|pci)",
    ),
    "materialization": (
        _words("incremental snapshot snapshots view views table tables ephemeral seed seeds materialized_view"),
        None,
    ),
    "criticality": (
        _words("critical important sla slo priority high_priority low_priority p0 p1 p2 p3 monitored"),
        r"tier_?\d",
    ),
}


def label_kind(tag: str) -> str | None:
    """The kind of cross-cutting label the tag's name marks, else None."""
    name = re.sub(r"[\s-]+", "_", tag.strip().lower())
    for kind, (names, pattern) in LABELS.items():
        if name in names or (pattern and re.fullmatch(pattern, name)):
            return kind
    return None


EXAMPLES = {
    "cadence": "daily, nightly, hourly",
    "layer": "staging, intermediate, marts",
    "lifecycle": "deprecated, legacy, experimental",
    "data classification": "pii, sensitive, gdpr",
    "materialization": "incremental, view, snapshot",
    "criticality": "critical, tier1, sla",
}


def label_examples(kind: str) -> str:
    return EXAMPLES[kind]


@dataclass(frozen=True)
class TagShape:
    tag: str
    nodes: int  # built nodes carrying it
    bits: int  # those nodes as a bit set
    groups: int  # lineage-connected groups its nodes form (parent-child edges between two of them)
    largest_group: int  # nodes in the largest one


@dataclass(frozen=True)
class Shapes:
    ids: tuple[str, ...]  # built nodes (models, seeds, snapshots with a relation), bit i = ids[i]
    tags: dict[str, TagShape]  # every tag on a built node

    def names(self, bits: int) -> list[str]:
        return [self.ids[i] for i in range(len(self.ids)) if bits >> i & 1]


def shapes_of(dbt: DbtProject) -> Shapes:
    graph = build_graph(dbt)
    ids = tuple(u for u, n in graph.built.items() if n.relation)
    index = {u: i for i, u in enumerate(ids)}
    bits: dict[str, int] = {}
    for u in ids:
        for tag in set(graph.built[u].tags):
            bits[tag] = bits.get(tag, 0) | (1 << index[u])
    neighbours: dict[str, set[str]] = {u: set() for u in ids}
    for u in ids:
        for p in graph.parents.get(u, ()):
            if p in neighbours:
                neighbours[u].add(p)
                neighbours[p].add(u)
    tags = {}
    for tag, b in bits.items():
        members = {ids[i] for i in range(len(ids)) if b >> i & 1}
        sizes = _group_sizes(members, neighbours)
        tags[tag] = TagShape(tag, len(members), b, len(sizes), max(sizes))
    return Shapes(ids, tags)


def _group_sizes(members: set[str], neighbours: dict[str, set[str]]) -> list[int]:
    seen: set[str] = set()
    sizes = []
    for start in sorted(members):
        if start in seen:
            continue
        seen.add(start)
        stack, size = [start], 0
        while stack:
            u = stack.pop()
            size += 1
            for v in neighbours[u]:
                if v in members and v not in seen:
                    seen.add(v)
                    stack.append(v)
        sizes.append(size)
    return sizes


def popcount(bits: int) -> int:
    return bits.bit_count()


def exactly_once(sets: Iterable[int]) -> int:
    """How many nodes carry exactly one of these tags (bit sets): what a partition maximises."""
    once = many = 0
    for s in sets:
        many |= once & s
        once = (once ^ s) & ~many
    return popcount(once)


def cuts_across(shapes: Shapes, tag: str, others: Iterable[str]) -> tuple[str, str] | None:
    """Two of `others` that share no node, `tag` being on some of the nodes of each but on fewer than
    half of them (and not only on theirs): `tag` lies across them, as a label does across domains
    (`pii` on a few finance and a few marketing models). A tag on most of another's nodes is rather
    a domain around a sub-domain. The pair holding the most of `tag`'s nodes."""
    t = shapes.tags[tag].bits
    partial = []
    for other in others:
        bits = shapes.tags[other].bits
        inside = popcount(bits & t)
        if other != tag and inside and 2 * inside < popcount(bits) and t & ~bits:
            partial.append((inside, other, bits))
    partial.sort(key=lambda x: (-x[0], x[1]))
    for i, (_, a, a_bits) in enumerate(partial):
        for _, b, b_bits in partial[i + 1 :]:
            if not a_bits & b_bits:
                return a, b
    return None


def _rank_key(shapes: Shapes, tag: str) -> tuple:
    s = shapes.tags[tag]
    return (-s.largest_group, -s.nodes, tag)


def greedy_fill(shapes: Shapes, chosen: Sequence[str], pool: Iterable[str]) -> list[str]:
    """Add to `chosen`, one at a time, the tag of `pool` that most raises the nodes carrying exactly
    one chosen tag (ties: the larger lineage-connected group, then more nodes, then the name),
    while one raises it."""
    chosen = list(chosen)
    pool = sorted(set(pool) - set(chosen), key=lambda t: _rank_key(shapes, t))
    once = many = 0
    for c in chosen:
        b = shapes.tags[c].bits
        many |= once & b
        once = (once ^ b) & ~many
    while pool:
        best, best_gain = None, 0
        for tag in pool:  # in rank order: the first of equal gains wins
            b = shapes.tags[tag].bits
            gain = popcount(b & ~once & ~many) - popcount(b & once)
            if gain > best_gain:
                best, best_gain = tag, gain
        if best is None:
            break
        b = shapes.tags[best].bits
        many |= once & b
        once = (once ^ b) & ~many
        chosen.append(best)
        pool.remove(best)
    return chosen


def search(shapes: Shapes, candidates: Sequence[str], fixed: Sequence[str] = ()) -> list[str]:
    """A set of tags (with `fixed`) on which the most nodes carry exactly one: greedy, then while
    leaving one tag out and filling again does better, that."""
    best = greedy_fill(shapes, fixed, candidates)
    score = exactly_once(shapes.tags[t].bits for t in best)
    for _ in range(SWAP_ROUNDS):
        for drop in [t for t in best if t not in fixed]:
            rest = [t for t in best if t != drop]
            other = greedy_fill(shapes, rest, [c for c in candidates if c != drop])
            other_score = exactly_once(shapes.tags[t].bits for t in other)
            if other_score > score:
                best, score = other, other_score
                break
        else:
            break
    return best
