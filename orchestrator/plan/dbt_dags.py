"""The dbt DAGs, in named steps: check the manifest, place the nodes, wire the schedules,
place the tests, then describe each DAG (its `dbt build` selection, Assets and docs).

    graph     = build_graph(manifest)                    # dbt_graph: built nodes, reads through ephemerals
    placement = place(graph, ...)                        # placement: which DAG builds each node, and why
    wiring    = wire(graph, placement, produced)         # schedules: what each DAG reads from outside it
    tests     = place_tests(graph, placement, wiring)    # each test in one DAG, after all its parents
    specs     = [dbt_dag_spec(...) for each DAG]

Errors name the DAGs they concern (`Issue.dags`): only those are left out of the rendering.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..config import OrchestrationConfig
from .dbt_graph import DbtGraph
from .graphs import sccs, shortest_cycle
from .manifest import NEWEST_KNOWN_VERSION, DbtProject
from .model import Issue
from .placement import Placement, place
from .translator import Translator


def bullets(items, limit: int = 25, item=lambda i: f"`{i}`") -> str:
    items = list(items)
    shown = [f"- {item(i)}" for i in items[:limit]]
    if len(items) > limit:
        shown.append(f"- ... and {len(items) - limit} more")
    return "\n".join(shown) or "- (none)"


def asset_bullets(names: Translator, assets, limit: int = 25) -> str:
    """A DAG doc's list of Assets, each a link to it in Airflow's Assets view (Translator.asset_link)."""
    return bullets(assets, limit, lambda a: f"[`{a}`]({names.asset_link(a)})")


def orchestration_tags(config: OrchestrationConfig, tags: tuple[str, ...]) -> list[str]:
    """A node's orchestration tags in precedence order: the configured list, then the prefix's, sorted."""
    if not tags:
        return []
    listed = [t for t in config.dbt.tags if t in tags]
    prefixed = sorted(
        t for t in tags if config.dbt.tag_prefix and t.startswith(config.dbt.tag_prefix) and t not in listed
    )
    return listed + prefixed


# ---------------------------------------------------------------------------- 1. the manifest


def check_manifest(
    config: OrchestrationConfig,
    dbt: DbtProject,
    graph: DbtGraph,
    produced: dict[str, str],
    dag_of: dict[str, str],
    names: Translator,
) -> tuple[list[Issue], list[Issue]]:
    """What dbt itself would refuse or a user should know, before anything is rendered."""
    mf = dbt.path
    warnings, errors = [], []
    if dbt.schema_version > NEWEST_KNOWN_VERSION:
        warnings.append(
            Issue(
                mf,
                f"manifest v{dbt.schema_version}",
                f"newer than the newest this tool knows "
                f"(v{NEWEST_KNOWN_VERSION}); the fields it reads are assumed unchanged",
            )
        )
    for uid, deps in sorted(graph.missing.items()):
        node = dbt.nodes[uid]
        warnings.append(
            Issue(
                node.file or mf,
                uid,
                f"depends on {', '.join(deps[:3])}, which the manifest does "
                "not hold (disabled or removed): that read is ignored",
            )
        )
    if graph.cycle:
        errors.append(
            Issue(
                mf,
                ", ".join(graph.cycle[:5]),
                "these nodes depend on each other in a cycle (dbt itself refuses this: re-run `dbt parse`)",
            )
        )
    by_relation: dict[str, list[str]] = defaultdict(list)
    for uid, node in graph.built.items():
        if node.relation:
            by_relation[node.relation].append(uid)
    for relation, uids in sorted(by_relation.items()):
        dags = tuple(sorted({dag_of[u] for u in uids if u in dag_of}))
        if len(uids) > 1:
            errors.append(
                Issue(
                    mf,
                    relation,
                    f"built by {len(uids)} nodes ({', '.join(uids)}): one Asset cannot "
                    "have two builders; give one of them another alias or schema",
                    dags,
                )
            )
        if (asset := names.asset_name(relation)) in produced:
            errors.append(
                Issue(
                    dbt.nodes[uids[0]].file or mf,
                    uids[0],
                    f"builds {relation}, which {produced[asset]} loads: the model would overwrite the loaded table",
                    dags,
                )
            )
    return warnings, errors


# ---------------------------------------------------------------------------- 2. placement


def place_nodes(config: OrchestrationConfig, graph: DbtGraph, names: Translator) -> Placement:
    if config.dbt.mode == "monolith":
        out = Placement(tag_of_dag={config.dbt.monolith_dag_id: None} if graph.built else {})
        out.dag_of = {u: config.dbt.monolith_dag_id for u in graph.built}
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
    )


def check_dag_ids(config: OrchestrationConfig, dbt: DbtProject, placement: Placement, names: Translator) -> list[Issue]:
    """Two tags that map to one DAG id, or a catch-all stage named like a tag DAG, are errors: the
    merged DAG would select one tag and announce the other's Assets."""
    errors = []
    by_id: dict[str, set[str]] = defaultdict(set)
    for tag in {
        *config.dbt.tags,
        *(t for ts in {n.tags for n in dbt.buildable} for t in orchestration_tags(config, ts)),
    }:
        by_id[names.tag_dag_id(tag)].add(tag)
    for dag_id, tags in sorted(by_id.items()):
        if len(tags) > 1:
            errors.append(
                Issue(
                    str(config.path),
                    ", ".join(sorted(tags)),
                    f"these tags all map to the DAG id {dag_id!r}: rename one",
                    (dag_id,),
                )
            )
        if dag_id in placement.stage_of_dag or dag_id == names.catch_all_dag_id(1):
            errors.append(
                Issue(
                    str(config.path),
                    "dbt.catch_all.dag_id",
                    f"the catch-all DAG id {dag_id!r} is also the DAG id of the tag "
                    f"{', '.join(sorted(tags))}: choose another catch-all id",
                    (dag_id,),
                )
            )
    return errors


# ---------------------------------------------------------------------------- 3. wiring


@dataclass
class Wiring:
    members: dict[str, list[str]]  # DAG id -> the built nodes it builds (topological order)
    assets: dict[str, set[str]]  # DAG id -> the Assets it waits for (AND)
    upstream: dict[str, set[str]]  # DAG id -> the dbt DAGs it reads from
    ancestors: dict[str, set[str]] = field(default_factory=dict)  # DAG id -> every dbt DAG upstream of it


def wire(
    config: OrchestrationConfig, graph: DbtGraph, placement: Placement, produced: dict[str, str], names: Translator
) -> tuple[Wiring, list[Issue]]:
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
                asset = names.asset_name(graph.project.sources[s].relation)
                if asset in produced:
                    assets[dag_id].add(asset)
                else:
                    unproduced[s].add(dag_id)
            for p in graph.parents[u]:
                dp = placement.dag_of.get(p)
                if dp is None:
                    unbuilt[p].add(u)
                elif dp != dag_id:
                    if read := graph.built[p].relation:
                        assets[dag_id].add(names.asset_name(read))
                    upstream[dag_id].add(dp)
    warnings += _unread_warnings(graph, unproduced, unbuilt)
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


def _unread_warnings(graph: DbtGraph, unproduced: dict[str, set[str]], unbuilt: dict[str, set[str]]) -> list[Issue]:
    mf = graph.project.path
    warnings = []
    for source_id, dags in sorted(unproduced.items()):
        src = graph.project.sources[source_id]
        warnings.append(
            Issue(
                src.file or mf,
                f"{source_id} ({src.relation})",
                f"no Meltano extractor of this profile loads it: left out of the schedule of {', '.join(sorted(dags))}",
            )
        )
    for dep, readers in sorted(unbuilt.items()):
        warnings.append(
            Issue(
                graph.built[dep].file or mf,
                dep,
                f"read by {', '.join(sorted(readers)[:5])}, but no DAG builds it: not part of any schedule",
            )
        )
    return warnings


def dag_cycles(config: OrchestrationConfig, graph: DbtGraph, placement: Placement, wiring: Wiring) -> list[Issue]:
    """A cycle left between DAGs is forced (the placement avoids every other): an error naming the
    path that forces it and the smallest fix. Only the DAGs on it are left out."""
    mf = graph.project.path
    errors = []
    for c in placement.cycles:
        hops = " -> ".join(f"{u} ({placement.dag_of.get(u, '?')})" for u in c.nodes)
        message = f"cycle between dbt DAGs, forced by the tags of the models on it: {hops}. Smallest fix: {c.fix}"
        errors.append(Issue(mf, " -> ".join(c.path), message, c.dags))
    reported = {d for c in placement.cycles for d in c.dags}
    for comp in sccs({d: set(u) for d, u in wiring.upstream.items()}, key=str):  # any other (monolith, catch-all off)
        if len(comp) > 1 and not reported & set(comp):
            path = shortest_cycle({d: set(u) for d, u in wiring.upstream.items()}, comp)
            errors.append(Issue(mf, " -> ".join(reversed(path)), "cycle between dbt DAGs", tuple(sorted(comp))))
    return errors


# ---------------------------------------------------------------------------- 4. tests


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
    for t, parents in graph.test_parents.items():
        if not parents or any(p not in placement.dag_of for p in parents):
            continue  # a source-only test, or a parent no DAG builds (reported by the wiring)
        dags = {placement.dag_of[p] for p in parents}
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
