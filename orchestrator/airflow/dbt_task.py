"""The dbt task: one `dbt build` of the DAG's selection, in the worker.

- **Retry from the point of failure.** Each try leaves its artifacts in the task's private
  target directory with a record of the run (`orchestrator_try.json`: run id, try, what each
  try built). A retry of the same DAG run (try >= 2, or a cleared task) runs `dbt retry` on
  them: only the nodes that failed, and those their failure skipped, run again. A new DAG run,
  or `retry_from_failure` off (the run form, or `dbt.retry_from_failure: false`), builds the
  whole selection. The directory is per task, not per run: clearing a failed task of an older
  run after a newer run of the DAG (whose artifacts replaced its own) builds the whole selection.
- **The run form** (dbt_form): select/exclude within the DAG's own nodes, checked with
  `dbt ls` before anything runs; full refresh; vars.
- **Asset events**: one per relation built in this DAG run, in whichever try, with the try
  that built it in `extra`. A partial (manual) run emits only what it built, so only the
  downstream DAGs whose Assets it updated can start.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from .dbt_form import FormError, extra_args, form_values, selection_words
from .tasks import TaskFailure, set_extra

log = logging.getLogger(__name__)
RECORD = "orchestrator_try.json"


class FormRefused(TaskFailure, AirflowFailException):
    """A run form dbt must not run: the same on every try, so the task fails at once, without retries."""


def _record(target_path: Path) -> dict[str, Any]:
    try:
        data = json.loads((target_path / RECORD).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_record(target_path: Path, record: dict[str, Any]) -> None:
    tmp = target_path / (RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    tmp.replace(target_path / RECORD)


def _dag_select(args: list[str]) -> list[str]:
    """The words of the DAG's own `--select` (none in monolith mode: the whole project)."""
    if "--select" not in args:
        return []
    words = args[args.index("--select") + 1 :]
    end = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
    return words[:end]


def form_selection(values: dict, dag_args: list[str], also_exclude: tuple[str, ...] = ()) -> list[str]:
    """The form's select/exclude as dbt arguments. An empty select is the DAG's own selection (an
    exclude alone narrows the DAG, not the project); tests as the DAG picks them (cautious)."""
    select = selection_words(values["select"]) or _dag_select(dag_args)
    out = ["--select", *select] if select else []
    exclude = [*selection_words(values["exclude"]), *also_exclude]
    if exclude:
        out += ["--exclude", *exclude]
    return out + ["--indirect-selection", "cautious"]


def _check_selection(run_dbt, project, env, target_path: Path, values: dict, dag_args: list[str], allowed: set[str]):
    """`dbt ls` the form's selection; refuse it when it reaches a node this DAG does not build or test.
    Ephemeral models are no DAG's nodes (nothing is built for them): selecting one is harmless."""
    selection = form_selection(values, dag_args, also_exclude=("config.materialized:ephemeral",))
    args = ["ls", "--resource-types", "model", "seed", "snapshot", "test"]
    args += ["--output", "json", "--output-keys", "unique_id", *selection]
    listing = run_dbt(args, env=env, project=project, target_path=target_path, raise_on_failure=False)
    if not listing.success:
        raise FormRefused(f"the run form's selection is not valid dbt selection syntax: {listing.exception}")
    chosen = set(listing.listed)
    outside = sorted(chosen - allowed)
    if outside:
        shown = ", ".join(outside[:10]) + (f" and {len(outside) - 10} more" if len(outside) > 10 else "")
        raise FormRefused(
            f"the run form's selection reaches outside this DAG: {shown}. Select only this DAG's "
            "nodes (its docs list them), or trigger the DAG that builds them"
        )
    if not chosen:
        raise FormRefused("the run form's selection matches nothing in this DAG")


def dbt_build(
    *,
    args: list[str],
    relations: dict[str, str],
    outlets: dict[str, str],
    owners: dict[str, str] | None = None,
    tag: str | None = None,
    nodes: list[str] | None = None,
    config_path: str | None = None,
    profile: str | None = None,
    **context,
) -> dict[str, Any]:
    """Run dbt for this task's nodes; an Asset event per relation built, with rows, duration, status
    and the try that built it. `relations` maps a node's unique_id to its Asset; `nodes` are every
    model and test of the DAG (what the run form may select)."""
    from ..plan import load_config
    from ..runners.dbt import DbtError, DbtProjectRef, run_dbt, runs_dir
    from ..runners.dbt_profile import resolve_target
    from ..runners.warehouse_lock import warehouse_lock
    from .lineage_alert import blast_radius_context

    config = load_config(config_path, profile)  # the config its DAG was rendered from
    env = config.profile.environment()
    project = DbtProjectRef.of(config, env)
    dag_id = context["dag"].dag_id if context.get("dag") else "adhoc"
    task = context.get("task")
    task_id = task.task_id if task is not None else "dbt"
    ti = context.get("ti")
    run_id = str(context.get("run_id") or getattr(ti, "run_id", "") or "")
    try_number = int(getattr(ti, "try_number", 1) or 1)
    target_path = runs_dir(env, config) / dag_id / task_id
    target_path.mkdir(parents=True, exist_ok=True)
    try:
        values = form_values(context.get("params"))
    except FormError as exc:
        raise FormRefused(f"run form: {exc}") from None
    partial = bool(values["select"] or values["exclude"])
    if partial and nodes is None:
        raise FormRefused("run form: select/exclude apply to whole-DAG dbt tasks, not to per-model tasks")

    record = _record(target_path)
    same_run = record.get("run_id") == run_id and record.get("try", 0) < try_number
    retry = (
        same_run
        and record.get("failed")
        and values["retry_from_failure"]
        and config.dbt_retry_from_failure
        and (target_path / "run_results.json").exists()  # what `dbt retry` reads; without it: build again
    )
    if retry:
        # No form flags: `dbt retry` takes the previous invocation's (--full-refresh, --vars,
        # --select...) from its run_results.json; of its own command line it applies only --vars
        # and --threads (dbt/task/retry.py), so the form's flags there would be ignored or redundant.
        invocation = ["retry"]
        log.info(
            "retry from the point of failure: `dbt retry` on try %s's results (%s failed)",
            record.get("try"),
            len(record.get("failed") or []),
        )
    else:
        if partial:
            _check_selection(run_dbt, project, env, target_path, values, args, set(nodes or ()))
            invocation = ["build", *form_selection(values, args)]
        else:
            invocation = list(args)
        invocation += extra_args(values)
        record = {"run_id": run_id, "built": {}}
    target = resolve_target(config, env)
    with warehouse_lock(target.duckdb_path(config.dbt_project_dir), log.info):
        result = run_dbt(invocation, env=env, project=project, target_path=target_path, raise_on_failure=False)

    built: dict[str, int] = dict(record.get("built") or {}) if retry else {}
    for node in result.nodes:
        if node.status == "success" and node.unique_id in relations:
            built[node.unique_id] = try_number
    failed = [n.unique_id for n in result.failed]
    _save_record(
        target_path, {"run_id": run_id, "try": try_number, "built": built, "failed": failed, "invocation": invocation}
    )
    by_node = {n.unique_id: n for n in result.nodes}
    for uid, asset in relations.items():
        if uid in built and asset in outlets:
            this_try = by_node.get(uid)
            extra: dict[str, Any] = {"unique_id": uid, "built_in_try": built[uid]}
            if this_try is not None:
                extra.update(
                    status=this_try.status,
                    rows_affected=this_try.rows_affected,
                    duration_s=round(this_try.duration_s, 3),
                )
            set_extra(context, asset, outlets[asset], extra)
    if task is not None and (partial or retry or len(built) < len(relations)):
        # Only what this DAG run built gets an Asset event: Airflow emits one per outlet the task
        # still declares when it succeeds.
        emitted = {relations[u] for u in built}
        task.outlets = [a for a in task.outlets if getattr(a, "name", None) in emitted]
    summary = {
        "success": result.success,
        "duration_s": round(result.duration_s, 3),
        "try": try_number,
        "retry": bool(retry),
        "invocation": invocation,
        "models": {n.unique_id: n.status for n in result.of_type("model")},
        "tests": {n.unique_id: n.status for n in result.of_type("test")},
        "failed": failed,
    }
    if not result.success:  # the message lists the failed models and tests; the alert gets them with owners
        alert = dbt_alert_context(target_path / "run_results.json", result, owners or {}, tag)
        alert.setdefault("extra", {}).update(blast_radius_context(config, dag_id, {relations[u] for u in built}))
        raise TaskFailure(str(DbtError(result)), alert)
    return summary


def dbt_alert_context(run_results: Path, result, owners: dict[str, str], tag: str | None) -> dict[str, Any]:
    """The failed models and tests from dbt's run_results.json (the runner's own records if it
    was not written), each with its owners (meta.owner; a test's are its models')."""
    from ..runners.dbt import FAILED
    from ..runners.root_error import dbt_node_root

    try:
        rows = [
            (r["unique_id"], r["status"], r.get("message") or "")
            for r in json.loads(run_results.read_text())["results"]
        ]
    except (OSError, ValueError, KeyError):
        rows = [(n.unique_id, n.status, n.message or "") for n in result.nodes]
    failures = [
        {
            "name": u.split(".")[2] if u.count(".") >= 2 else u,
            "resource_type": u.split(".", 1)[0],
            "owners": [o.strip() for o in owners.get(u, "").split(",") if o.strip()],
            "message": msg,
        }
        for u, st, msg in rows
        if st in FAILED
    ]
    skipped = sum(1 for _, st, _ in rows if st == "skipped")
    what = ", ".join(f"{f['resource_type']} {f['name']}" for f in failures[:3]) + (" …" if len(failures) > 3 else "")
    error = f"dbt {' '.join(result.args[:1])}: {len(failures)} failed ({what})"
    if skipped:
        error += f", {skipped} skipped"
    if failures:  # the root cause: the first failure's own error
        error += f": {dbt_node_root(failures[0]['resource_type'], failures[0]['name'], failures[0]['message'])}"
    if result.exception:
        error = f"dbt {' '.join(result.args[:1])} could not run: {result.root_error()}"
    return {"error": error, "dbt": {"tag": tag, "failures": failures}}
