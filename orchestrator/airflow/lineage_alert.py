"""What a failure alert adds from the plan's lineage: the blast radius (see plan/lineage.py).

One way in, computed once per alert: every alert of the generated DAGs goes through `enrich` (the
callbacks' hook, see callbacks.py), which knows the failed task and so covers a task's failure
whatever it raised, a DAG run that failed as a whole, and a recovery: a recovery says which
downstream DAGs the failure held back and that run late now (`extra.late`, the same shape as
`extra.blast_radius`). A retry gets neither: it is recorded quietly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import OrchestrationConfig
from ..plan import plan_from_config

if TYPE_CHECKING:
    from alerting.events import Alert

FAILURES = ("task_failed", "dag_failed")


def radius(config: OrchestrationConfig, dag_id: str, task_id: str | None) -> dict[str, Any] | None:
    """The blast radius of `dag_id`'s task `task_id` failing (None: the run as a whole), as a dict;
    None when the DAG is not a Meltano or dbt DAG of the plan."""
    from ..plan.lineage import blast_radius, still_arriving  # an alert's import, not every DAG parse's

    plan = plan_from_config(config, kinds=("meltano", "dbt"))  # the DAG files' cache: cheap
    if dag_id not in {d.dag_id for d in plan.dags}:
        return None
    return blast_radius(plan, dag_id, still_arriving(plan, dag_id, task_id)).to_dict()


def enrich(config: OrchestrationConfig, alert: Alert) -> None:
    """The alerting callbacks' hook: a failure gets its blast radius (computed here, where the
    failed task is known, over what the task attached), a recovery what ran late because of it.
    Nothing when nothing downstream was blocked."""
    if alert.kind not in (*FAILURES, "recovered"):
        return
    found = radius(config, alert.dag_id, alert.task_id)
    key = "late" if alert.kind == "recovered" else "blast_radius"
    if found is not None and found["blocked"]:
        alert.extra[key] = found
    else:
        alert.extra.pop(key, None)
