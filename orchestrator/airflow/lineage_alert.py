"""What a failure alert adds from the plan's lineage: the blast radius (see plan/lineage.py).

Two ways in, one computation: a task that raises `TaskFailure` attaches `blast_radius_context` to
its alert, and every alert of the generated DAGs goes through `enrich` (the callbacks' hook, see
callbacks.py), which knows the failed task and so also covers failures that raised something else,
DAG runs that failed as a whole, and recoveries: a recovery says which downstream DAGs the failure
held back and that run late now (`extra.late`, the same shape as `extra.blast_radius`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..config import OrchestrationConfig
from ..plan import plan_from_config
from ..plan.lineage import blast_radius, still_arriving

if TYPE_CHECKING:
    from alerting.events import Alert

log = logging.getLogger(__name__)
FAILURES = ("task_failed", "dag_failed")


def radius(config: OrchestrationConfig, dag_id: str, task_id: str | None) -> dict[str, Any] | None:
    """The blast radius of `dag_id`'s task `task_id` failing (None: the run as a whole), as a dict;
    None when the DAG is not a Meltano or dbt DAG of the plan."""
    plan = plan_from_config(config, kinds=("meltano", "dbt"))  # the DAG files' cache: cheap
    if dag_id not in {d.dag_id for d in plan.dags}:
        return None
    return blast_radius(plan, dag_id, still_arriving(plan, dag_id, task_id)).to_dict()


def blast_radius_context(
    config: OrchestrationConfig, dag_id: str, emitted: set[str] | None = None, task_id: str | None = None
) -> dict[str, Any]:
    """`{"blast_radius": {...}}` for a failed DAG's alert, or {} when the plan cannot say (an alert
    must never fail because of it). `emitted`, what the failed task built, blocks like the rest: a
    failed task emits no Asset event (only its DAG's other tasks may, see `still_arriving`)."""
    try:
        found = radius(config, dag_id, task_id)
        return {"blast_radius": found} if found is not None else {}
    except Exception:  # noqa: BLE001 - detail for the alert, never a reason to lose it
        log.warning("blast radius of %s: the plan could not be read", dag_id, exc_info=True)
        return {}


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
