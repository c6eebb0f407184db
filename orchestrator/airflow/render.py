"""The Airflow layer: render the plan's DAG specs into Airflow DAG objects.

Each kind of DAG has a builder (BUILDERS) that adds its tasks, and some a form (PARAMS); every
DAG gets the config's task defaults and the alerting callbacks. What the DAG files call is in
dag_files.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param

from ..config import OrchestrationConfig
from ..plan import Plan
from ..plan.model import AlertingDag, DagSpec, DbtDag, Kind, MeltanoDag, StateDag, TaskSpec, TickDag
from . import dbt_entry, dbt_form, form, tasks
from .callbacks import airflow_alerts
from .cycle_wait import CycleSensor


def assets(plan: Plan, names: Iterable[str], made: dict[str, Asset] | None = None) -> list[Asset]:
    """Airflow Assets, with the group and extra the Assets view shows. `made`: the Assets of this
    DAG file so far, by name, reused: an Asset is one of a task's outlets, another DAG's schedule
    and a third task's inlets, and each Asset() parses and normalizes its URI (about a third of a
    dbt DAG file's render). Airflow never changes an Asset once made (DAG files share them)."""
    made = {} if made is None else made
    out = []
    for n in names:
        asset = made.get(n)
        if asset is None:
            spec = plan.assets[n]
            asset = made[n] = Asset(name=n, uri=spec.uri, group=spec.group, extra=dict(spec.extra))
        out.append(asset)
    return out


@dataclass
class Context:
    plan: Plan
    config: OrchestrationConfig
    made: dict[str, Asset]  # the Assets made so far (see assets())

    def assets(self, names: Iterable[str]) -> list[Asset]:
        return assets(self.plan, names, self.made)


def _operator(
    ctx: Context, spec: DagSpec, task: TaskSpec, call: Callable, kwargs: dict[str, Any], inlets: Iterable[str] = ()
) -> PythonOperator:
    # Every task reads the config (and profile) its DAG was rendered from, whatever the worker's
    # environment says: a deployment may render several configs in one Airflow.
    where = {"config_path": str(ctx.config.path), "profile": ctx.config.profile.name}
    return PythonOperator(
        task_id=task.task_id,
        python_callable=call,
        op_kwargs={**kwargs, **where},
        outlets=ctx.assets(task.outlets),
        inlets=ctx.assets([*task.inlets, *inlets]),
        pool=spec.pool or "default_pool",
    )


def _wire(spec: DagSpec, ops: dict[str, PythonOperator]) -> None:
    for t in spec.tasks:
        # What `up >> task` does for two tasks of one DAG, minus its check that they share a DAG:
        # that check hashes the whole DAG (every schedule Asset) per edge, which made a
        # 5,000-model DAG in per-model mode take 75 s to parse instead of about 1 s.
        for up in t.upstream:
            ops[t.task_id].upstream_task_ids.add(up)
            ops[up].downstream_task_ids.add(t.task_id)


def _outlets(ctx: Context, task: TaskSpec) -> dict[str, str]:
    return {n: ctx.plan.uri(n) for n in task.outlets}


# ------------------------------------------------------------------ one builder per kind of DAG


def _tick(ctx: Context, spec: DagSpec) -> None:
    assert isinstance(spec, TickDag)
    for t in spec.tasks:
        _operator(ctx, spec, t, tasks.emit_tick, {"asset": t.outlets[0]})


def _meltano(ctx: Context, spec: DagSpec) -> None:
    assert isinstance(spec, MeltanoDag)
    from ..runners.reconcile import meltano_streams  # the Meltano DAG file's alone: not every parse's

    streams = meltano_streams(spec, ctx.plan.assets)
    for t in spec.tasks:
        kwargs = {
            "reconcile": {a: list(streams[a]) for a in t.outlets if a in streams},
            "argv": list(t.args),
            "outlets": _outlets(ctx, t),
            "tables": {asset: table for table, asset in t.relations},
            "extractors": list(spec.extractors),
            "state_ids": list(spec.state_ids),
            # a run by hand loads for the latest cycle its schedule's Assets (the tick) name
            "cycle_from": {n: ctx.plan.uri(n) for n in spec.schedule.assets},
        }
        _operator(ctx, spec, t, tasks.meltano_run, kwargs, inlets=spec.schedule.assets)


def _dbt(ctx: Context, spec: DagSpec) -> None:
    assert isinstance(spec, DbtDag)
    ops = {}
    for t in spec.tasks:
        # The node lists, dbt arguments and owners are read from the plan when the task runs
        # (dbt_entry.task_arguments), not handed over here: a parse decodes none of them (the plan
        # cache defers them), and Airflow neither walks them for XComArgs nor turns them into text
        # when it serializes the DAG (cut to 4 KB after: about half its cost at 10,000 models).
        kwargs: dict[str, Any] = {"plan_task": [spec.dag_id, t.task_id], "tag": spec.tag}
        inlets: tuple[str, ...] = ()
        if spec.wait_task == t.task_id:  # the task looks itself before dbt starts (cycle_wait.hold_build)
            kwargs["cycle_wait"] = _cycle_look(ctx, spec)
            inlets = spec.schedule.assets
        elif spec.wait_task:
            kwargs["cycle_task"] = spec.wait_task
        ops[t.task_id] = _operator(ctx, spec, t, dbt_entry.dbt_build, kwargs, inlets=inlets)
    _wire(spec, ops)
    if spec.wait_task and spec.wait_task not in ops:
        _cycle_wait(ctx, spec, spec.wait_task, [ops[t.task_id] for t in spec.tasks if not t.upstream])


def _cycle_look(ctx: Context, spec: DbtDag) -> dict[str, Any]:
    """What a DAG's one task needs to hold its run until the inputs agree on a cycle."""
    wait = ctx.config.dbt.cycle_wait
    inputs = {n: ctx.plan.uri(n) for n in spec.schedule.assets}
    return {"inputs": inputs, "timeout_s": wait.timeout_minutes * 60, "poke_seconds": wait.poke_seconds}


def _cycle_wait(ctx: Context, spec: DbtDag, task_id: str, first: list[PythonOperator]) -> None:
    """The first task of a DAG of several: a sensor (`dbt.cycle_wait.mode`; never in the warehouse
    pool) until the latest events of the DAG's inputs name one cycle. It fails itself at
    `timeout_minutes` with a `late` alert that names the inputs behind; Airflow's own timeout, a
    little later, is only a backstop."""
    wait = ctx.config.dbt.cycle_wait
    look = _cycle_look(ctx, spec)
    sensor = CycleSensor(
        task_id=task_id,
        inputs=look["inputs"],
        timeout_s=look["timeout_s"],
        inlets=ctx.assets(spec.schedule.assets),
        mode=wait.mode,  # poke by default: see config/schema.py CycleWait
        poke_interval=wait.poke_seconds,
        timeout=wait.timeout_minutes * 60 + 3 * wait.poke_seconds,
    )
    for op in first:  # as in _wire: no per-edge hash of the whole DAG
        op.upstream_task_ids.add(sensor.task_id)
        sensor.downstream_task_ids.add(op.task_id)


def _state(ctx: Context, spec: DagSpec) -> None:
    assert isinstance(spec, StateDag)
    from . import state_dag  # the state DAG file's alone (with the Meltano state runner): not every parse's

    state_dag.state_task(spec, ctx.config)


def _alerting(ctx: Context, spec: DagSpec) -> None:
    assert isinstance(spec, AlertingDag)
    for t in spec.tasks:
        if t.kind == "alerts_redeliver":
            _operator(ctx, spec, t, tasks.alerts_redeliver, {})
        else:
            tick = t.args[0]  # the Asset whose event starts a cycle
            kwargs = {"expectations": list(spec.lateness), "tick": {tick: ctx.plan.uri(tick)}}
            _operator(ctx, spec, t, tasks.alerts_lateness, kwargs)


def _state_params(spec: Any) -> dict[str, Param]:
    from . import state_dag

    return state_dag.params(spec)


def _alerting_params(spec: DagSpec) -> dict[str, Param]:
    return {
        "as_of": form.field(
            None,
            type=["null", "string"],
            format="date-time",
            description="Check lateness as of this time (ISO 8601); empty: now",
        )
    }


BUILDERS: dict[Kind, Callable[[Context, DagSpec], None]] = {
    "tick": _tick,
    "meltano": _meltano,
    "dbt": _dbt,
    "meltano_state": _state,
    "alerting": _alerting,
}
PARAMS: dict[Kind, Callable[[Any], dict[str, Param]]] = {
    "meltano_state": _state_params,
    "alerting": _alerting_params,
    "dbt": dbt_form.params,
}


# ------------------------------------------------------------------ the DAG


def _default_args(config: OrchestrationConfig, spec: DagSpec, alerts) -> dict:
    return {
        "owner": spec.owner,
        "retries": config.defaults.retries,
        "retry_delay": timedelta(seconds=config.defaults.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=config.defaults.max_retry_delay_seconds),
        # failure after the last retry, each retry (quietly), and the recovery after a failure
        **alerts.task_callbacks(),
    }


def _schedule(ctx: Context, spec: DagSpec):
    if spec.schedule.cron:
        # Unpausing waits for the next cron point; a surprise run of the latest past one would start
        # a second cycle beside the one `orchestrator run` triggers, and a dbt DAG would then fire on
        # a mix of both cycles' events. No start_date (that would run the past point), and
        # run_immediately=timedelta(0): `False` still runs the past point when it is less than a
        # tenth of the interval ago (2h24m after midnight for the daily tick).
        return CronTriggerTimetable(spec.schedule.cron, timezone="UTC", run_immediately=timedelta(0))
    if spec.schedule.assets:
        return ctx.assets(spec.schedule.assets)  # a list: every Asset must be updated (AND)
    return None


def render_dag(
    plan: Plan, config: OrchestrationConfig, spec: DagSpec, alerts=None, made: dict[str, Asset] | None = None
) -> DAG:
    """The Airflow DAG of one spec. `made`: the Assets a DAG file made so far (see assets()), to
    share across its DAGs."""
    alerts = alerts or airflow_alerts(config)
    ctx = Context(plan, config, {} if made is None else made)
    params = PARAMS[spec.kind](spec) if spec.kind in PARAMS else None
    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        doc_md=spec.doc_md,
        schedule=_schedule(ctx, spec),
        catchup=False,
        max_active_runs=spec.max_active_runs,
        tags=list(spec.tags),
        default_args=_default_args(config, spec, alerts),
        params=params,
        # The DAG files hand Airflow their DAGs as module globals. Auto-registering them too would
        # hash each DAG on leaving this block, and a DAG's hash hashes every schedule Asset (a
        # JSON dump each): a quarter of a dbt DAG file's render, paid again by the DagBag.
        auto_register=False,
        **alerts.dag_callbacks(),  # a run that fails for another reason than a task; DAG-level recovery
    ) as dag:
        BUILDERS[spec.kind](ctx, spec)
    return dag
