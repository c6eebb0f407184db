"""The dbt DAGs, in named steps: check the manifest, place the nodes, wire the schedules, place
the tests, then describe each DAG.

    graph     = build_graph(manifest)                     # dbt_graph: built nodes, reads through ephemerals
    placement = place_nodes(config, graph, names)         # dbt_wiring, placement: which DAG builds each node
    asset_of  = built_asset_names(...)                    # relations: the Asset of each built relation
    wiring    = wire(graph, placement, loaded, asset_of)  # dbt_wiring: what each DAG reads from outside it
    tests     = place_tests(graph, placement, wiring)     # dbt_wiring: each test in one DAG, after its parents
    specs     = [dbt_dag_spec(ctx, dag_id, tests) ...]    # dbt_specs: selection, tasks, schedule, docs

with the checks of dbt_checks between them. Errors name the DAGs they concern (`Issue.dags`):
only those are left out of the rendering.
"""

from __future__ import annotations

from ..config import OrchestrationConfig
from .dbt_checks import (
    check_dag_ids,
    check_manifest,
    dag_cycles,
    placement_warnings,
    split_warnings,
    tag_warnings,
)
from .dbt_graph import build_graph
from .dbt_specs import DbtContext, dbt_dag_spec, tests_dag_spec
from .dbt_wiring import place_nodes, place_tests, wire
from .manifest import DbtProject
from .model import AssetSpec, Issue, Part
from .relations import Loaded, built_asset_names
from .translator import Translator


def plan_dbt(
    config: OrchestrationConfig, dbt: DbtProject, loaded: Loaded | dict[str, str], names: Translator
) -> tuple[Part, dict[str, dict]]:
    """dbt DAGs from the manifest; `loaded`: what Meltano loads (relations.Loaded; a plain dict maps
    an Asset `schema.table` to the Meltano DAG that loads it, in an unknown database).

    Returns the DAGs (with their Assets, warnings and errors), and the placement of every node
    placed by a rule."""
    if isinstance(loaded, dict):
        loaded = Loaded.of(None, [(None, asset, asset, dag) for asset, dag in loaded.items()])
    graph = build_graph(dbt)
    placement = place_nodes(config, graph, names)
    warnings, errors = check_manifest(dbt, graph, loaded, placement.dag_of)
    errors += check_dag_ids(config, dbt, placement, names)
    warnings += tag_warnings(config, dbt, placement) + placement_warnings(dbt, graph, placement)
    warnings += split_warnings(graph, placement)
    relations = {u: (n.database, n.relation) for u, n in graph.built.items() if n.relation}
    asset_of = built_asset_names(relations, loaded, names.asset_name)
    wiring, unread = wire(graph, placement, loaded, asset_of)
    warnings += unread
    errors += dag_cycles(graph, placement, wiring)
    tests_of, orphans = place_tests(graph, placement, wiring)
    asset_dag = {asset_of[u]: d for u, d in placement.dag_of.items() if u in asset_of}
    produced = {asset: dag for tables in loaded.by_relation.values() for _, asset, dag in tables}
    ctx = DbtContext(config, names, graph, placement, wiring, produced, asset_dag, asset_of, loaded)
    part = Part(warnings=warnings, errors=errors, assets=_assets(ctx))
    for dag_id in sorted(wiring.members):
        spec = dbt_dag_spec(ctx, dag_id, tests_of.get(dag_id, []))
        if isinstance(spec, Issue):
            part.errors.append(spec)
        else:
            part.dags.append(spec)
    for parent_dags, tests in sorted(orphans.items()):
        part.dags.append(tests_dag_spec(ctx, parent_dags, tests))
    placed = {u: {"dag_id": p.dag_id, "rule": p.rule, "reason": p.reason} for u, p in placement.placed.items()}
    return part, placed


def _assets(ctx: DbtContext) -> dict[str, AssetSpec]:
    """One Asset per relation a dbt DAG builds, with the group and extra the Assets view shows."""
    names, built, asset_of = ctx.names, ctx.graph.built, ctx.asset_of
    uri_of, group_of, extra_of = names.asset_uri, names.asset_group, names.dbt_asset_extra
    assets = {}
    for dag_id in sorted(ctx.wiring.members):
        dag_tag = ctx.placement.tag_of_dag.get(dag_id)
        for u in ctx.wiring.members[dag_id]:
            node = built[u]
            if relation := node.relation:
                name, database = asset_of[u], node.database
                uri = uri_of(name, relation, database) if database else uri_of(name, relation)
                assets[name] = AssetSpec(uri, group_of(relation), extra_of(node, dag_id, dag_tag), relation, database)
    return assets
