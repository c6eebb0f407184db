"""Assemble the plan: every DAG, its schedule, tasks and outlet Assets, plus warnings and errors.

Assets are warehouse relations, lower-case `schema.table` (through the Translator): what a
Meltano extractor loads and what a dbt source reads are the same Asset, so wiring falls out of
names both tools already know.

The plan is built per kind (tick, meltano, dbt, meltano_state, alerting) so that each DAG file
reads only the inputs it needs: a broken manifest breaks the dbt DAGs' file, not the Meltano
DAGs'. Each kind has a module of its own: tick_dag, meltano_dags, dbt_specs, alerting_dag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config import OrchestrationConfig
from .alerting_dag import lateness_warnings, plan_alerting
from .dbt_plan import plan_dbt
from .manifest import DbtProject
from .meltano_dags import meltano_database, plan_meltano, plan_state
from .meltano_project import MeltanoProject
from .model import KINDS, AssetSpec, DbtDag, Issue, MeltanoDag, Part, Plan
from .profile_checks import profile_warnings
from .relations import Loaded
from .tick_dag import plan_tick, tick_asset
from .translator import Translator


def assemble(
    config: OrchestrationConfig,
    *,
    kinds: Iterable[str] = KINDS,
    meltano: MeltanoProject | None = None,
    dbt: DbtProject | None = None,
    names: Translator,
    env: Mapping[str, str] | None = None,
) -> Plan:
    """Assemble the plan of the given kinds from already-loaded inputs, named by `names` (the
    configured translator). `env` is what `${VAR}`s in meltano.yml expand to (default: the
    profile's environment)."""
    kinds = set(kinds)
    env = config.profile.environment() if env is None else env
    assets: dict[str, AssetSpec] = {}
    plan = Plan(profile=config.profile.name, assets=assets)
    assets[names.tick_asset()] = tick_asset(config, names)
    plan.warnings.extend(profile_warnings(config))

    def add(part: Part, dags: bool = True) -> None:
        if dags:
            plan.dags.extend(part.dags)
        plan.warnings.extend(part.warnings)
        plan.errors.extend(part.errors)
        for name, asset in part.assets.items():
            assets.setdefault(name, asset)

    if "tick" in kinds:
        add(plan_tick(config, names))
    meltano_dags: list[MeltanoDag] = []
    loaded = Loaded()
    if meltano is not None:
        sources = [s.relation for s in dbt.sources.values()] if dbt is not None else []
        part = plan_meltano(config, meltano, names, env, sources)
        meltano_dags = [d for d in part.dags if isinstance(d, MeltanoDag)]
        tables = [
            (a.database, a.relation or name, name, d.dag_id)
            for d in meltano_dags
            for name in d.outlets
            for a in [part.assets[name]]
        ]
        loaded = Loaded.of(meltano_database(config, meltano, env), tables)
        add(part, dags="meltano" in kinds)
        if "meltano_state" in kinds:
            plan.dags.append(plan_state(config, meltano_dags, names))
    dbt_dags: list[DbtDag] | None = None
    dbt_assets: dict[str, AssetSpec] = {}  # without the dbt kind: the dbt Assets other DAGs may name
    if dbt is not None and ({"dbt", "alerting"} & kinds):
        part, placed = plan_dbt(config, dbt, loaded, names)
        dbt_dags = [d for d in part.dags if isinstance(d, DbtDag)]
        if "dbt" in kinds:
            add(part)
            plan.placement = placed
        else:
            dbt_assets = part.assets
    if "alerting" in kinds:
        plan.dags.append(plan_alerting(config, dbt_dags, names))
        if dbt_dags is not None:
            plan.warnings.extend(lateness_warnings(config, dbt_dags))
    # Every Asset a DAG names has a spec (a source no extractor of this profile loads has no DAG).
    # The alerting DAG alone gets only the dbt Assets it reads: the plan its DAG file loads from
    # the cache at 10k models holds ~1,800 of them, not all ~9,500 (29 ms -> a few).
    for d in plan.dags:
        for name in (*d.outlets, *d.schedule.assets, *(a for t in d.tasks for a in t.inlets)):
            if name not in assets:
                assets[name] = dbt_assets.get(name) or _unknown(names, name)
    plan.errors.extend(_duplicate_ids(config, plan))
    return plan


def _duplicate_ids(config: OrchestrationConfig, plan: Plan) -> list[Issue]:
    """Two DAGs of one id (a translator's names, or a stage named like another tag's DAG)."""
    seen: dict[str, str] = {}
    errors = []
    for d in plan.dags:
        if d.dag_id in seen:
            errors.append(
                Issue(str(config.path), d.dag_id, f"two DAGs have this id ({seen[d.dag_id]} and {d.kind})", (d.dag_id,))
            )
        seen[d.dag_id] = d.kind
    return errors


def _unknown(names: Translator, name: str) -> AssetSpec:
    return AssetSpec(names.asset_uri(name, name if "." in name else None), names.asset_group(name))
