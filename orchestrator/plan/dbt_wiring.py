"""Which dbt DAG builds each node, what each DAG waits for, and which DAG runs each test: the
middle steps of plan_dbt (dbt_plan.py).

    placement = place_nodes(config, graph, names)          # each built node in one DAG (placement.py)
    wiring    = wire(graph, placement, loaded, asset_of)   # what each DAG reads from outside it: its schedule
    tests     = place_tests(graph, placement, wiring)      # each test in one DAG, after all its parents
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..config import OrchestrationConfig
from .dbt_graph import DbtGraph
from .model import Issue
from .placement import Placement, place
from .relations import Loaded, qualified
from .translator import Translator


def orchestration_tags(config: OrchestrationConfig, tags: tuple[str, ...]) -> list[str]:
    """A node's orchestration tags in precedence order: the configured list, then the prefix's, sorted."""
    if not tags:
        return []
    listed = [t for t in config.dbt.tags if t in tags]
    prefixed = sorted(
        t for t in tags if config.dbt.tag_prefix and t.startswith(config.dbt.tag_prefix) and t not in listed
    )
    return listed + prefixed


def place_nodes(config: OrchestrationConfig, graph: DbtGraph, names: Translator) -> Placement:
    """Which DAG builds each built node: one monolith DAG, or by orchestration tag (placement.py)."""
    if config.dbt.mode == "monolith":
        monolith = names.monolith_dag_id()
        out = Placement(tag_of_dag={monolith: None} if graph.built else {})
        out.dag_of = {u: monolith for u in graph.built}
        return out
    by_tags: dict[tuple[str, ...], list[str]] = {}  # nodes share a handful of tag sets
    node_tags = {
        u: by_tags.get(n.tags) or by_tags.setdefault(n.tags, orchestration_tags(config, n.tags))
        for u, n in graph.built.items()
    }
    seen = {t for ts in node_tags.values() for t in ts}
    order = [t for t in config.dbt.tags if t in seen] + sorted(seen - set(config.dbt.tags))
    return place(
        graph,
        node_tags.__getitem__,
        order,
        names.tag_dag_id,
        names.catch_all_dag_id if config.dbt.catch_all.enabled else None,
        names.tag_stage_dag_id if config.dbt.on_forced_cycle == "split" else None,
    )


@dataclass
class Wiring:
    members: dict[str, list[str]]  # DAG id -> the built nodes it builds (topological order)
    assets: dict[str, set[str]]  # DAG id -> the Assets it waits for (AND)
    upstream: dict[str, set[str]]  # DAG id -> the dbt DAGs it reads from
    ancestors: dict[str, set[str]] = field(default_factory=dict)  # DAG id -> every dbt DAG upstream of it


def wire(graph: DbtGraph, placement: Placement, loaded: Loaded, asset_of: dict[str, str]) -> tuple[Wiring, list[Issue]]:
    """Each DAG's members in build order, the Assets it waits for (the Meltano tables and other DAGs'
    relations its nodes read), the DAGs upstream of it; warnings for reads nothing produces.
    `asset_of`: the Asset of each built node's relation. A source is a Meltano table when that
    table is the same relation: database, schema and name (relations.py)."""
    warnings: list[Issue] = []
    members: dict[str, list[str]] = {d: [] for d in placement.tag_of_dag}
    for u in graph.order:
        if u in placement.dag_of:
            members[placement.dag_of[u]].append(u)
    members = {d: m for d, m in members.items() if m}
    assets: dict[str, set[str]] = {d: set() for d in members}
    upstream: dict[str, set[str]] = {d: set() for d in members}
    unproduced: dict[str, set[str]] = defaultdict(set)
    unbuilt: dict[str, set[str]] = defaultdict(set)
    for dag_id, uids in members.items():
        for u in uids:
            for s in graph.sources[u]:
                src = graph.project.sources[s]
                if found := loaded.find(src.database, src.relation):
                    assets[dag_id].add(found[0])
                else:
                    unproduced[s].add(dag_id)
            for p in graph.parents[u]:
                dp = placement.dag_of.get(p)
                if dp is None:
                    unbuilt[p].add(u)
                elif dp != dag_id:
                    if p in asset_of:
                        assets[dag_id].add(asset_of[p])
                    upstream[dag_id].add(dp)
    warnings += _unread_warnings(graph, unproduced, unbuilt, loaded)
    wiring = Wiring(members, assets, upstream)
    for d in members:  # every DAG upstream, transitively (few DAGs: a walk each)
        seen: set[str] = set()
        todo = list(upstream[d])
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo.extend(upstream.get(x, ()))
        wiring.ancestors[d] = seen
    return wiring, warnings


def _unread_warnings(
    graph: DbtGraph, unproduced: dict[str, set[str]], unbuilt: dict[str, set[str]], loaded: Loaded
) -> list[Issue]:
    mf = graph.project.path
    warnings = []
    for source_id, dags in sorted(unproduced.items()):
        src = graph.project.sources[source_id]
        message = (
            f"no Meltano extractor of this profile loads it: left out of the schedule of {', '.join(sorted(dags))}"
        )
        if other := loaded.elsewhere(src.database, src.relation):
            message += (
                f" (Meltano loads {src.relation} into the database {', '.join(sorted(map(str, other)))}, "
                f"not {src.database}: if that is the same database, set the loader's `database` or the "
                "profile's `warehouse_uri` to the name the manifest gives it)"
            )
        warnings.append(Issue(src.file or mf, f"{source_id} ({qualified(src.database, src.relation)})", message))
    for dep, readers in sorted(unbuilt.items()):
        warnings.append(
            Issue(
                graph.built[dep].file or mf,
                dep,
                f"read by {', '.join(sorted(readers)[:5])}, but no DAG builds it: not part of any schedule",
            )
        )
    return warnings


def place_tests(
    graph: DbtGraph, placement: Placement, wiring: Wiring
) -> tuple[dict[str, list[str]], dict[tuple[str, ...], list[str]]]:
    """Each test runs in one DAG: the DAG of all its parents, or the one of its parents' DAGs that
    runs after all the others, or else the first DAG downstream of all of them. A test whose
    parents' DAGs have no DAG after all of them goes to a tests-only DAG of its own, keyed by
    those DAGs (second result)."""
    tests_of: dict[str, list[str]] = defaultdict(list)
    orphans: dict[tuple[str, ...], list[str]] = defaultdict(list)
    downstream: dict[str, set[str]] = defaultdict(set)
    for d, ups in wiring.ancestors.items():
        for u in ups:
            downstream[u].add(d)
    dag_of = placement.dag_of
    for node, tests in graph.only_tests.items():  # most tests (not_null, unique, ...): their node's DAG
        if (one := dag_of.get(node)) is not None:
            tests_of[one] += tests
    for t in graph.other_tests:
        parents = graph.test_parents[t]
        if len(parents) == 1:  # a test of an ephemeral model reading one built node: the DAG of that node
            if (one := dag_of.get(parents[0])) is not None:
                tests_of[one].append(t)
            continue  # else a parent no DAG builds (reported by the wiring)
        if not parents or any(p not in dag_of for p in parents):
            continue  # a source-only test, or a parent no DAG builds (reported by the wiring)
        dags = {dag_of[p] for p in parents}
        if len(dags) == 1:
            tests_of[next(iter(dags))].append(t)
            continue
        last = [d for d in sorted(dags) if dags - {d} <= wiring.ancestors.get(d, set())]
        if last:
            tests_of[last[0]].append(t)
            continue
        after_all = set.intersection(*(downstream[d] for d in dags))
        first = sorted(d for d in after_all if not wiring.ancestors.get(d, set()) & after_all)
        if first:
            tests_of[first[0]].append(t)
        else:
            orphans[tuple(sorted(dags))].append(t)
    return tests_of, orphans
