"""The Meltano State DAG's form and task: the Airflow side of orchestrator.runners.meltano_state."""

from __future__ import annotations

import json
import logging

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import Param

from ..config import OrchestrationConfig, load_config
from ..plan.model import StateDag
from ..runners.meltano_state import ACTIONS, StateError, run_state_action
from . import form
from .tasks import TaskFailure

log = logging.getLogger(__name__)

_EXAMPLE = {
    "singer_state": {
        "bookmarks": {"orders": {"replication_key": "updated_at", "replication_key_value": "2024-01-01T00:00:00"}}
    }
}


def params(spec: StateDag) -> dict[str, Param]:
    ids = list(spec.state_ids)
    return {
        "action": form.field(
            "get",
            enum=list(ACTIONS),
            title="Action",
            description="list the IDs, get a state, set (replace) it, merge into it, or clear it",
        ),
        "state_id": form.field(
            ids[0] if ids else "",
            enum=ids or [""],
            title="State ID",
            description="the source's Meltano state ID (<environment>:<extractor>-to-<loader>[:<suffix>])",
        ),
        "state_json": form.field(
            json.dumps(_EXAMPLE, indent=2),
            type="string",
            title="State JSON (set, merge)",
            description="an object with `singer_state`; ignored by list, get and clear",
            format="multiline",
        ),
        "dry_run": form.field(
            True, type="boolean", title="Dry run", description="show what would change and write nothing (default)"
        ),
    }


def _run(*, state_dags: dict[str, str], config_path: str | None = None, profile: str | None = None, **context) -> dict:
    p = context["params"]
    ti = context["ti"]

    def busy(state_id: str) -> str | None:
        dag_id = state_dags.get(state_id)
        if dag_id is None:
            return None
        n = ti.get_dr_count(dag_id=dag_id, states=["running", "queued"])
        return f"DAG {dag_id} has {n} run(s) running or queued; wait for it, or pause it first" if n else None

    from ..plan.translator import load_translator  # a task run's import, not a DAG parse's

    config = load_config(config_path, profile)
    try:
        result = run_state_action(
            p["action"],
            p.get("state_id"),
            p.get("state_json"),
            profile=config.profile,
            dry_run=p.get("dry_run", True),  # not coerced: a "false" string is refused, not read as true
            expected_ids=list(state_dags),
            is_source_busy=busy,
            backup_dir=config.state_backup_dir(),
            project_root=config.meltano_project,
            executable=config.meltano.executable,
            names=load_translator(config),
            log=log.info,
        )
    except StateError as exc:
        raise TaskFailure(str(exc)) from None
    log.info("%s", result.message)
    if result.diff:
        log.info("diff:\n%s", result.diff)
    return result.to_dict()


def state_task(spec: StateDag, config: OrchestrationConfig) -> PythonOperator:
    # No retries: a refused or failed state edit needs a person, not a second attempt.
    kwargs = {"state_dags": spec.state_dags, "config_path": str(config.path), "profile": config.profile.name}
    [task] = spec.tasks
    return PythonOperator(task_id=task.task_id, python_callable=_run, op_kwargs=kwargs, retries=0)
