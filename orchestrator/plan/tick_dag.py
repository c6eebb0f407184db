"""The tick: a cron DAG whose only job is to emit the Asset that starts every cycle."""

from __future__ import annotations

from ..config import OrchestrationConfig
from .model import AssetSpec, Part, Schedule, TaskSpec, TickDag
from .translator import Translator


def plan_tick(config: OrchestrationConfig, names: Translator | None = None) -> Part:
    names = names or Translator(config)
    asset, cron = config.tick.asset, config.tick.cron
    dag = TickDag(
        dag_id=config.tick.dag_id,
        schedule=Schedule(cron=cron),
        outlets=(asset,),
        tasks=(TaskSpec(task_id="emit_tick", kind="emit_tick", outlets=(asset,)),),
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
    return Part(dags=[dag], assets={asset: tick_asset(config)})


def tick_asset(config: OrchestrationConfig) -> AssetSpec:
    return AssetSpec(
        uri=config.tick.asset, group="orchestration", extra={"cron": config.tick.cron, "dag_id": config.tick.dag_id}
    )
