"""What a failure alert adds from the plan's lineage: the blast radius (see plan/lineage.py)."""

from __future__ import annotations

import logging
from typing import Any

from ..plan.config import OrchestrationConfig

log = logging.getLogger(__name__)


def blast_radius_context(config: OrchestrationConfig, dag_id: str, emitted: set[str] | None = None) -> dict[str, Any]:
    """`{"blast_radius": {...}}` for a failed DAG's alert, or {} when the plan cannot say (an alert
    must never fail because of it)."""
    try:
        from ..plan import plan_from_config
        from ..plan.lineage import blast_radius

        plan = plan_from_config(config, kinds=("meltano", "dbt"))  # the DAG files' cache: cheap
        return {"blast_radius": blast_radius(plan, dag_id, frozenset(emitted or ())).to_dict()}
    except Exception:  # noqa: BLE001 - detail for the alert, never a reason to lose it
        log.warning("blast radius of %s: the plan could not be read", dag_id, exc_info=True)
        return {}
