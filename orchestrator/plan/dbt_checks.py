"""What plan_dbt (dbt_plan.py) reports about the manifest and the DAGs it makes: what dbt itself
would refuse, what a user should know, and the errors that leave DAGs out. Errors name the DAGs
they concern (`Issue.dags`): only those are left out of the rendering."""

from __future__ import annotations

from collections import defaultdict

from ..config import OrchestrationConfig
from .dbt_graph import DbtGraph
from .dbt_wiring import Wiring, orchestration_tags
from .graphs import sccs, shortest_cycle
from .manifest import NEWEST_KNOWN_VERSION, DbtProject
from .model import Issue
from .placement import CycleError, Placement
from .translator import Translator


def check_manifest(
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
    return warnings, errors + _relation_errors(dbt, graph, produced, dag_of, names)


def _relation_errors(
    dbt: DbtProject, graph: DbtGraph, produced: dict[str, str], dag_of: dict[str, str], names: Translator
) -> list[Issue]:
    """A relation two nodes build (one Asset, two builders), or one a Meltano DAG loads."""
    mf, errors = dbt.path, []
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
    return errors


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
    for dag_id, (stage, _) in sorted(placement.tag_stage_of_dag.items()):
        if stage > 1 and (dag_id in by_id or dag_id in placement.stage_of_dag):
            other = f"the tag {', '.join(sorted(by_id[dag_id]))}" if dag_id in by_id else "a catch-all stage"
            errors.append(
                Issue(
                    str(config.path),
                    dag_id,
                    f"stage {stage} of the tag {placement.tag_of_dag.get(dag_id)}, split by a forced cycle, "
                    f"has the DAG id of {other}: "
                    "rename that tag, or set dbt.on_forced_cycle: error",
                    (dag_id,),
                )
            )
    return errors


def tag_warnings(config: OrchestrationConfig, dbt: DbtProject, placement: Placement) -> list[Issue]:
    """A configured tag that makes no DAG: no model carries it, or only ephemeral ones do."""
    if config.dbt.mode == "monolith":
        return []
    warnings = []
    for tag in config.dbt.tags:
        if tag not in placement.tag_of_dag.values():
            carried = any(tag in n.tags for n in dbt.buildable)
            warnings.append(
                Issue(
                    str(config.path),
                    f"tag {tag}",
                    "carried only by ephemeral models, which build nothing: no DAG"
                    if carried
                    else "configured, but no model carries it",
                )
            )
    return warnings


def placement_warnings(dbt: DbtProject, graph: DbtGraph, placement: Placement) -> list[Issue]:
    """A node with several orchestration tags (where it went), or one no DAG builds (catch-all off)."""
    return [
        Issue(
            graph.built[uid].file or dbt.path,
            uid,
            f"{p.reason}: " + (f"built by {p.dag_id}" if p.dag_id else "no DAG builds it"),
        )
        for uid, p in placement.placed.items()
        if p.rule in ("multi_tag", "unplaced")
    ]


def dag_cycles(graph: DbtGraph, placement: Placement, wiring: Wiring) -> list[Issue]:
    """A cycle left between DAGs is forced (the placement avoids every other): an error naming the
    path that forces it and the smallest fix. Only the DAGs on it are left out."""
    mf = graph.project.path
    errors = []
    for c in placement.cycles:
        message = f"cycle between dbt DAGs, forced by the tags of the models on it: {_hops(c)}. Smallest fix: {c.fix}"
        errors.append(Issue(mf, " -> ".join(c.path), message, c.dags))
    reported = {d for c in placement.cycles for d in c.dags}
    for comp in sccs({d: set(u) for d, u in wiring.upstream.items()}, key=str):  # any other (monolith, catch-all off)
        if len(comp) > 1 and not reported & set(comp):
            path = shortest_cycle({d: set(u) for d, u in wiring.upstream.items()}, comp)
            errors.append(Issue(mf, " -> ".join(reversed(path)), "cycle between dbt DAGs", tuple(sorted(comp))))
    return errors


def split_warnings(graph: DbtGraph, placement: Placement) -> list[Issue]:
    """A forced cycle split into stages (dbt.on_forced_cycle: split): the path that forces it, the
    reads between DAGs that keep each stage after the one before, and the smallest tag change
    that would avoid the split."""
    warnings = []
    for c, split in placement.splits:
        parts = []
        for dag, stage_ids in split.stages.items():
            if len(stage_ids) == 1:
                continue
            reasons = []
            for sid in stage_ids[1:]:
                reads = split.why.get(sid, ())
                shown = ", ".join(f"{a} -> {b}" for a, b in reads[:4]) + (" ..." if len(reads) > 4 else "")
                reasons.append(f"{sid} after reads {shown}" if shown else sid)
            parts.append(
                f"{dag} into {len(stage_ids)} stages ({'; '.join(reasons[:3])}{' ...' if len(reasons) > 3 else ''})"
            )
        message = (
            f"cycle between dbt DAGs, forced by the tags of the models on it: {_hops(c)}. "
            f"Split into stages (dbt.on_forced_cycle: split): {'; '.join(parts)}. "
            f"Smallest fix, which avoids the split: {c.fix}"
        )
        warnings.append(Issue(graph.project.path, " -> ".join(c.path), message))
    return warnings


def _hops(c: CycleError) -> str:
    if c.nodes:
        return " -> ".join(f"{u} ({d})" for u, d in zip(c.nodes, c.node_dags, strict=False))
    return "; ".join(f"{b} ({y}) reads {a} ({x})" for (a, b), x, y in zip(c.reads, c.path, c.path[1:], strict=False))
