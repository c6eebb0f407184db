"""The tick: a cron DAG whose only job is to emit the Asset that starts every cycle."""

from __future__ import annotations

from ..config import OrchestrationConfig
from .model import AssetSpec, Part, Schedule, TaskSpec, TickDag
from .translator import Translator


def plan_tick(config: OrchestrationConfig, names: Translator) -> Part:
    asset, cron = names.tick_asset(), config.tick.cron
    dag = TickDag(
        dag_id=names.tick_dag_id(),
        schedule=Schedule(cron=cron),
        outlets=(asset,),
        tasks=(TaskSpec(task_id=names.task_id("emit_tick"), kind="emit_tick", outlets=(asset,)),),
        description=f"Starts every cycle: emits the `{asset}` Asset on `{cron}`",
        doc_md=(
            f"### The tick\n\n**Triggered by:** the cron `{cron}` (or by hand).\n\n"
            f"**Emits:** the Asset [`{asset}`]({names.asset_link(asset)}), which the Meltano DAGs (and any "
            f"dbt DAG that reads nothing produced upstream) are scheduled on. Everything downstream is data-aware."
        ),
        tags=("tick",),
        owner=config.defaults.owner,
        max_active_runs=1,
    )
    return Part(dags=[dag], assets={asset: tick_asset(config, names)})


def tick_asset(config: OrchestrationConfig, names: Translator) -> AssetSpec:
    """The tick Asset: it is no warehouse relation, so its URI is its name (Translator.asset_uri)."""
    name = names.tick_asset()
    extra = {"cron": config.tick.cron, "dag_id": names.tick_dag_id()}
    return AssetSpec(uri=names.asset_uri(name, None), group="orchestration", extra=extra)
