"""The Airflow layer: render the plan's DAG specs into Airflow DAG objects.

The DAG files in dags/ are one line each: `globals().update(render_dags("dbt"))`.
Each renders one kind, from only the inputs that kind needs, so a broken
manifest shows up as an import error of dags/dbt_tags.py that names the file
and the problem, while the tick and Meltano DAGs keep working.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, CronTriggerTimetable

from ..plan import DagSpec, Plan, load_config, plan_from_config
from ..plan.config import OrchestrationConfig
from . import state_dag, tasks
from .callbacks import airflow_alerts


class PlanError(RuntimeError):
    """The plan has errors: the DAG file cannot be rendered. The message lists them."""


def _cache_dir() -> Path | None:
    value = os.environ.get("ORCHESTRATOR_CACHE_DIR")
    if value == "":
        return None
    from ..plan import DEFAULT_CACHE_DIR

    return Path(value) if value else DEFAULT_CACHE_DIR


def _assets(plan: Plan, names) -> list[Asset]:
    return [Asset(name=n, uri=plan.assets[n]) for n in names]


def _default_args(config: OrchestrationConfig, spec: DagSpec, alerts) -> dict:
    return {
        "owner": spec.owner,
        "retries": config.retries,
        "retry_delay": timedelta(seconds=config.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=config.max_retry_delay_seconds),
        # failure after the last retry, each retry (quietly), and the recovery after a failure
        **alerts.task_callbacks(),
    }


def _schedule(plan: Plan, spec: DagSpec):
    if spec.schedule.cron:
        # No start_date and run_immediately=False: unpausing waits for the next cron point. With a
        # start_date, Airflow would at once start a run for the latest past one (a surprise cycle).
        return CronTriggerTimetable(spec.schedule.cron, timezone="UTC", run_immediately=False)
    if spec.schedule.assets:
        return _assets(plan, spec.schedule.assets)  # a list: every Asset must be updated (AND)
    return None


def _operator(plan: Plan, spec: DagSpec, task) -> PythonOperator:
    outlets = {n: plan.assets[n] for n in task.outlets}
    if task.kind == "emit_tick":
        call, kwargs = tasks.emit_tick, {"asset": task.outlets[0]}
    elif task.kind == "meltano_run":
        # A job may run several extractors: each state ID `<env>:<extractor>-to-<loader>` names one.
        extractors = [s.split(":", 1)[1].rsplit("-to-", 1)[0] for s in spec.state_ids]
        call, kwargs = (
            tasks.meltano_run,
            {"argv": list(task.args), "outlets": outlets, "extractors": extractors, "state_ids": list(spec.state_ids)},
        )
    elif task.kind in ("dbt_build", "dbt_test"):
        owners = {u: spec.owners[u] for u in (*task.models, *spec.tests) if u in spec.owners}
        call, kwargs = (
            tasks.dbt_build,
            {
                "args": list(task.args),
                "outlets": outlets,
                "relations": dict(task.relations),
                "owners": owners,
                "tag": spec.tag,
            },
        )
    elif task.kind == "alerts_redeliver":
        call, kwargs = tasks.alerts_redeliver, {}
    elif task.kind == "alerts_lateness":
        tick = task.args[0]  # the Asset whose event starts a cycle
        call, kwargs = tasks.alerts_lateness, {"expectations": list(spec.lateness), "tick": {tick: plan.assets[tick]}}
    else:
        raise PlanError(f"{spec.dag_id}: unknown task kind {task.kind!r}")
    return PythonOperator(
        task_id=task.task_id,
        python_callable=call,
        op_kwargs=kwargs,
        outlets=_assets(plan, task.outlets),
        inlets=_assets(plan, task.inlets),
        pool=spec.pool or "default_pool",
    )


def _params(spec: DagSpec):
    if spec.kind == "meltano_state":
        return state_dag.params(spec)
    if spec.kind == "alerting":
        from airflow.sdk import Param

        return {
            "as_of": Param(
                None,
                type=["null", "string"],
                format="date-time",
                description="Check lateness as of this time (ISO 8601); empty: now",
            )
        }
    return None


def render_dag(plan: Plan, config: OrchestrationConfig, spec: DagSpec, alerts=None) -> DAG:
    alerts = alerts or airflow_alerts(config)
    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        doc_md=spec.doc_md,
        schedule=_schedule(plan, spec),
        catchup=False,
        max_active_runs=spec.max_active_runs,
        tags=list(spec.tags),
        default_args=_default_args(config, spec, alerts),
        params=_params(spec),
        **alerts.dag_callbacks(),  # a run that fails for another reason than a task; DAG-level recovery
    ) as dag:
        if spec.kind == "meltano_state":
            state_dag.state_task(spec)
            return dag
        ops = {t.task_id: _operator(plan, spec, t) for t in spec.tasks}
        for t in spec.tasks:
            # What `up >> task` does for two tasks of one DAG, minus its check that they share a
            # DAG: that check hashes the whole DAG (every schedule Asset) per edge, which made a
            # 5,000-model DAG in per-model mode take 75 s to parse instead of about 1 s.
            for up in t.upstream:
                ops[t.task_id].upstream_task_ids.add(up)
                ops[up].downstream_task_ids.add(t.task_id)
    return dag


def render_dags(kind: str, config_path: str | Path | None = None) -> dict[str, DAG]:
    """Every DAG of one kind (tick | meltano | dbt | meltano_state | alerting), keyed by dag_id."""
    config = load_config(config_path)
    if kind == "alerting":  # the routing file is read by callbacks at run time: check it here, loudly
        from alerting.routing import RoutingConfig

        RoutingConfig.load(config.alerting_config)
    plan = plan_from_config(config, kinds=(kind,), cache_dir=_cache_dir())
    # An error that concerns some DAGs leaves only those out (dags/plan_errors.py shows it as an
    # import error); one that concerns the whole kind fails this file, naming the problem.
    whole = [e for e in plan.errors if not e.dags]
    if whole:
        raise PlanError(
            f"the orchestration plan has {len(whole)} error(s); run `orchestrator check`:\n"
            + "\n".join(f"  {e}" for e in whole)
        )
    broken = {d for e in plan.errors for d in e.dags}
    alerts = airflow_alerts(config)  # one per DAG file: every DAG's callbacks share it
    return {
        spec.dag_id: render_dag(plan, config, spec, alerts) for spec in plan.of_kind(kind) if spec.dag_id not in broken
    }


def raise_plan_errors(kinds: tuple[str, ...] = ("dbt",), config_path: str | Path | None = None) -> None:
    """The import error of dags/plan_errors.py: every error that leaves some DAGs out of the
    rendering (a forced cycle between dbt DAGs, two nodes building one relation...), so that it
    shows in Airflow's UI while every other DAG still runs. Errors of a whole kind fail that
    kind's own file instead."""
    try:
        plan = plan_from_config(load_config(config_path), kinds=kinds, cache_dir=_cache_dir())
    except ValueError:
        return  # a broken input (manifest, meltano.yml, config) fails the DAG files that read it, naming it
    partial = [e for e in plan.errors if e.dags]
    if partial:
        left_out = sorted({d for e in partial for d in e.dags})
        raise PlanError(
            f"{len(left_out)} DAG(s) left out ({', '.join(left_out)}); run `orchestrator check`:\n"
            + "\n".join(f"  {e}" for e in partial)
        )
