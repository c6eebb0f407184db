"""The dbt task's callable as the dbt DAG file names it: dbt_task.dbt_build, imported where it runs.

The dbt DAG file names this callable at every parse, and dbt_task brings the dbt runner's
modules (~7 ms a parse, once per parse of the dbt file); a task process has them preloaded
(preload.py). Same name (Airflow serializes the callable's name). What the task builds (its dbt
arguments, node lists, relations, owners) is read from the plan here, where the task runs
(task_arguments), not handed over by the DAG file.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from ..config import load_config
from ..plan import plan_from_config


def dbt_build(plan_task: list[str], **kwargs: Any) -> dict[str, Any]:
    """dbt_task.dbt_build(**kwargs) with what the task reads of the plan (task_arguments):
    `plan_task` names the plan's DAG and task; the rest is the task's arguments and Airflow's context."""
    from .dbt_task import dbt_build as run

    dag_id, task_id = plan_task
    # over Airflow's context, as op_kwargs are: the context has `outlets` too (the task's Assets)
    return run(**(kwargs | task_arguments(dag_id, task_id, kwargs.get("config_path"), kwargs.get("profile"))))


def task_arguments(dag_id: str, task_id: str, config_path: str | None = None, profile: str | None = None) -> dict:
    """What the dbt task `task_id` of `dag_id` reads of the plan when it runs, as dbt_build's
    arguments: its dbt arguments, the Asset of each node it builds (`relations`) and their URIs
    (`outlets`), the owners of its nodes; in a DAG of one task also every node of the DAG (what the
    run form may select) and what each input is (`dbt.build: changed`). The DAG file renders
    without them (render._dbt): the task reads its own DAG's, from the plan its file was parsed from."""
    config = load_config(config_path, profile)
    plan = plan_from_config(config, kinds=("dbt",))  # the DAG file's cached plan: cheap
    try:
        spec = plan.dag(dag_id)
        task = next(t for t in spec.tasks if t.task_id == task_id)
    except (KeyError, StopIteration):
        raise AirflowFailException(
            f"the orchestration plan of {config.path} has no dbt task {dag_id}.{task_id} any more "
            "(the manifest or the config changed since this DAG was parsed): run it again once Airflow has parsed it"
        ) from None
    owners = spec.owners
    kwargs: dict[str, Any] = {
        "args": list(task.args),
        "relations": dict(task.relations),
        "outlets": {n: plan.uri(n) for n in task.outlets},
        "owners": {u: owners[u] for u in (*task.models, *spec.tests) if u in owners},
    }
    if len(spec.tasks) == 1:  # the whole DAG in one task: the run form may select within it
        kwargs["nodes"] = [*spec.models, *spec.tests]
        if spec.inputs:  # dbt.build: changed (plan/changed.py)
            kwargs["inputs"] = {a: list(s) for a, s in spec.inputs.items()}
            kwargs["always_build"] = list(spec.always_build)
    return kwargs
