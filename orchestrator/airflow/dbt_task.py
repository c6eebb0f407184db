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
- **`dbt.build: changed`** (plan/changed.py): a run builds only what is downstream of the inputs
  whose triggering events brought new rows (and the models that opt out); the relations it did
  not rebuild get an event marked `nothing_new`, so every downstream DAG still runs as in a
  full cycle, and builds nothing in turn. The run form's select/exclude or full refresh builds
  what it says.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from ..config import load_config
from ..plan.changed import NOTHING_NEW, changed_inputs, changed_selection
from ..plan.cycles import CYCLE_KEY
from ..runners.dbt import FAILED, DbtError, DbtProjectRef, DbtRunResult, run_dbt
from ..runners.dbt_profile import resolve_target
from ..runners.root_error import dbt_node_root
from ..runners.warehouse_lock import warehouse_lock
from .cycle_wait import hold_build
from .dbt_form import FormError, extra_args, form_values, selection_words
from .tasks import TaskFailure, set_extra, triggering_cycle

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


def _check_selection(dbt, values: dict, dag_args: list[str], allowed: set[str]) -> None:
    """`dbt ls` the form's selection; refuse it when it reaches a node this DAG does not build or test.
    Ephemeral models are no DAG's nodes (nothing is built for them): selecting one is harmless."""
    selection = form_selection(values, dag_args, also_exclude=("config.materialized:ephemeral",))
    args = ["ls", "--resource-types", "model", "seed", "snapshot", "test"]
    args += ["--output", "json", "--output-keys", "unique_id", *selection]
    listing = dbt(args)
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
    cycle_task: str | None = None,
    cycle_wait: dict[str, Any] | None = None,
    inputs: dict[str, list[str]] | None = None,
    always_build: list[str] | None = None,
    config_path: str | None = None,
    profile: str | None = None,
    **context,
) -> dict[str, Any]:
    """Run dbt for this task's nodes; an Asset event per relation built, with rows, duration, status
    and the try that built it. `relations` maps a node's unique_id to its Asset; `nodes` are every
    model and test of the DAG (what the run form may select); `cycle_task` the task that found the
    cycle the inputs agree on (its XCom goes into every event's extra), or `cycle_wait` what this task
    needs to find it itself, before dbt starts (cycle_wait.hold_build). A failure's alert lists the failed
    models and tests with their owners (the blast radius is the callbacks': lineage_alert.enrich).
    `inputs`/`always_build` (`dbt.build: changed`): what each input Asset is in dbt's selection
    syntax, and the models built on every run (plan/changed.py)."""
    # whether this process started with dbt imported (local/airflow_env.py: warm_task_start)
    log.info("dbt: %s", _warmth())
    # first: inputs of two cycles give the warehouse slot back (a reschedule) before anything runs
    cycle = (hold_build(**cycle_wait, **context) if cycle_wait else None) or _cycle(context, cycle_task)
    config = load_config(config_path, profile)  # the config its DAG was rendered from
    env = config.profile.environment()
    project = DbtProjectRef.of(config, env)
    values = _form(context.get("params"), nodes)
    attempt = _Try.of(context, config.dbt_runs_dir(env), values, config.dbt.retry_from_failure)
    # no manifest.json per run (runners/dbt.py run_dbt): 0.07-0.18 s of each dbt task on the warehouse's one slot
    dbt = functools.partial(
        run_dbt, env=env, project=project, target_path=attempt.target_path, raise_on_failure=False, manifest_json=False
    )
    follows = attempt.record.get("follows_changes", False) if attempt.retry else _follows(values, inputs)
    if follows and not attempt.retry:
        changed = changed_inputs(_triggering(context), inputs or {})
        narrowed = changed_selection(args, inputs or {}, changed, always_build or ())
        log.info("dbt.build changed: new rows in %s", ", ".join(sorted(changed)) or "none of the inputs")
        if narrowed is None:
            return _nothing_new(context, relations, outlets, cycle, attempt)
        args = narrowed
    invocation = _retry_invocation(attempt) if attempt.retry else _build_invocation(values, args, nodes, dbt)
    with warehouse_lock(resolve_target(config, env).duckdb_path(config.dbt_project_dir), log.info):
        result = dbt(invocation)
    built = attempt.save(result, relations, invocation, follows)
    narrowed_run = (attempt.partial or attempt.retry) and not follows
    _emit(context, result, built, relations, outlets, narrowed=narrowed_run, cycle=cycle, unchanged=follows)
    if not result.success:  # the message lists the failed models and tests; the alert gets them with owners
        alert = dbt_alert_context(attempt.target_path / "run_results.json", result, owners or {}, tag)
        raise TaskFailure(str(DbtError(result)), alert)
    return {
        "success": result.success,
        "duration_s": round(result.duration_s, 3),
        "try": attempt.number,
        "retry": attempt.retry,
        "invocation": invocation,
        "models": {n.unique_id: n.status for n in result.of_type("model")},
        "tests": {n.unique_id: n.status for n in result.of_type("test")},
        "failed": [n.unique_id for n in result.failed],
    }


def _warmth() -> str:
    """Whether this process started with dbt imported, and with dbt's serialisers compiled by the
    preload's parse (orchestrator/airflow/preload.py)."""
    preload = sys.modules.get("orchestrator.airflow.preload")
    if preload is not None and "dbt parse" in preload.inherited():
        return "preloaded, project parsed at start"
    return "preloaded" if "dbt.cli.main" in sys.modules else "not imported yet (imported on first run)"


def _follows(values: dict[str, Any], inputs: dict[str, list[str]] | None) -> bool:
    """Does this run build only what new rows reach? Not when the run form selects, excludes or
    fully refreshes (it builds what it says), nor without inputs to tell by."""
    return bool(inputs) and not (values["select"] or values["exclude"] or values["full_refresh"])


def _triggering(context: dict) -> list[tuple[str, Any]]:
    """(Asset name, extra) of each event that started this run (none: started by hand, or a cron)."""
    events = context.get("triggering_asset_events") or {}
    return [
        (getattr(getattr(e, "asset", None), "name", None) or str(key), getattr(e, "extra", None))
        for key, evs in events.items()
        for e in evs
    ]


def _nothing_new(
    context: dict, relations: dict[str, str], outlets: dict[str, str], cycle: str | None, attempt: _Try
) -> dict[str, Any]:
    """No input brought new rows: dbt does not run; every relation's event says `nothing_new`, so
    the DAGs downstream, the lateness checks and the recoveries see the cycle through."""
    for uid, asset in relations.items():
        if asset in outlets:
            extra: dict[str, Any] = {"unique_id": uid, NOTHING_NEW: True}
            if cycle is not None:
                extra[CYCLE_KEY] = cycle
            set_extra(context, asset, outlets[asset], extra)
    _save_record(attempt.target_path, {"run_id": attempt.run_id, "try": attempt.number, "built": {}, "failed": []})
    log.info(
        "dbt.build changed: no input brought new rows; nothing built, %s event(s) marked nothing_new", len(relations)
    )
    return {
        "success": True,
        "duration_s": 0.0,
        "try": attempt.number,
        "retry": False,
        "invocation": [],
        NOTHING_NEW: True,
        "models": {},
        "tests": {},
        "failed": [],
    }


def _cycle(context: dict, cycle_task: str | None) -> str | None:
    """The cycle this run builds: the one its wait task found the inputs agree on, else the newest
    cycle of the events that started the run (a DAG with one input has no wait task)."""
    ti = context.get("ti")
    if cycle_task and ti is not None:
        cycle = ti.xcom_pull(task_ids=cycle_task)
        if cycle:
            return str(cycle)
    return triggering_cycle(context)


def _form(params: dict | None, nodes: list[str] | None) -> dict[str, Any]:
    """The run form's values, refused (without retries) when dbt must not run them."""
    try:
        values = form_values(params)
    except FormError as exc:
        raise FormRefused(f"run form: {exc}") from None
    if (values["select"] or values["exclude"]) and nodes is None:
        raise FormRefused("run form: select/exclude apply to whole-DAG dbt tasks, not to per-model tasks")
    return values


@dataclass
class _Try:
    """This try of the task: its private target directory (per DAG and task), the record the tries
    of this DAG run keep there, and whether it retries the last one from its point of failure."""

    target_path: Path
    run_id: str
    number: int
    record: dict[str, Any]  # the previous try's, or a fresh one
    retry: bool
    partial: bool  # the run form selects within the DAG

    @classmethod
    def of(cls, context: dict, runs_dir: Path, values: dict[str, Any], retry_from_failure: bool) -> _Try:
        dag_id = context["dag"].dag_id if context.get("dag") else "adhoc"
        task = context.get("task")
        target_path = runs_dir / dag_id / (task.task_id if task is not None else "dbt")
        target_path.mkdir(parents=True, exist_ok=True)
        ti = context.get("ti")
        run_id = str(context.get("run_id") or getattr(ti, "run_id", "") or "")
        number = int(getattr(ti, "try_number", 1) or 1)
        record = _record(target_path)
        same_run = record.get("run_id") == run_id and record.get("try", 0) < number
        retry = bool(
            same_run
            and record.get("failed")
            and values["retry_from_failure"]
            and retry_from_failure
            and (target_path / "run_results.json").exists()  # what `dbt retry` reads; without it: build again
        )
        if not retry:
            record = {"run_id": run_id, "built": {}}
        return cls(target_path, run_id, number, record, retry, bool(values["select"] or values["exclude"]))

    def save(
        self, result: DbtRunResult, relations: dict[str, str], invocation: list[str], follows: bool = False
    ) -> dict[str, int]:
        """Record what this try built (with what earlier tries of a retried run built) and what
        failed; return unique_id -> the try that built it."""
        built: dict[str, int] = dict(self.record.get("built") or {}) if self.retry else {}
        for node in result.nodes:
            if node.status == "success" and node.unique_id in relations:
                built[node.unique_id] = self.number
        failed = [n.unique_id for n in result.failed]
        _save_record(
            self.target_path,
            {
                "run_id": self.run_id,
                "try": self.number,
                "built": built,
                "failed": failed,
                "invocation": invocation,
                "follows_changes": follows,
            },
        )
        return built


def _retry_invocation(attempt: _Try) -> list[str]:
    # No form flags: `dbt retry` takes the previous invocation's (--full-refresh, --vars,
    # --select...) from its run_results.json; of its own command line it applies only --vars
    # and --threads (dbt/task/retry.py), so the form's flags there would be ignored or redundant.
    log.info(
        "retry from the point of failure: `dbt retry` on try %s's results (%s failed)",
        attempt.record.get("try"),
        len(attempt.record.get("failed") or []),
    )
    return ["retry"]


def _build_invocation(values: dict[str, Any], dag_args: list[str], nodes: list[str] | None, dbt) -> list[str]:
    """The DAG's own selection, or the run form's within it (checked first with `dbt ls`), and the form's flags."""
    if values["select"] or values["exclude"]:
        _check_selection(dbt, values, dag_args, set(nodes or ()))
        invocation = ["build", *form_selection(values, dag_args)]
    else:
        invocation = list(dag_args)
    return invocation + extra_args(values)


def _emit(
    context: dict,
    result: DbtRunResult,
    built: dict[str, int],
    relations: dict[str, str],
    outlets: dict[str, str],
    *,
    narrowed: bool,
    cycle: str | None = None,
    unchanged: bool = False,
) -> None:
    """The extra of each Asset event (every relation this DAG run built, in whichever try); a run
    that built less than the whole selection emits only what it built, except under `dbt.build:
    changed` (`unchanged`), where a relation no new row reached gets an event marked `nothing_new`."""
    by_node = {n.unique_id: n for n in result.nodes}
    for uid, asset in relations.items():
        if unchanged and uid not in built and asset in outlets:
            same: dict[str, Any] = {"unique_id": uid, NOTHING_NEW: True}
            if cycle is not None:
                same[CYCLE_KEY] = cycle
            set_extra(context, asset, outlets[asset], same)
        elif uid in built and asset in outlets:
            this_try = by_node.get(uid)
            extra: dict[str, Any] = {"unique_id": uid, "built_in_try": built[uid]}
            if cycle is not None:
                extra[CYCLE_KEY] = cycle
            if this_try is not None:
                extra.update(
                    status=this_try.status,
                    rows_affected=this_try.rows_affected,
                    duration_s=round(this_try.duration_s, 3),
                )
            set_extra(context, asset, outlets[asset], extra)
    task = context.get("task")
    if task is not None and not unchanged and (narrowed or len(built) < len(relations)):
        # Only what this DAG run built gets an Asset event: Airflow emits one per outlet the task
        # still declares when it succeeds.
        emitted = {relations[u] for u in built}
        task.outlets = [a for a in task.outlets if getattr(a, "name", None) in emitted]


def dbt_alert_context(run_results: Path, result, owners: dict[str, str], tag: str | None) -> dict[str, Any]:
    """The failed models and tests from dbt's run_results.json (the runner's own records if it
    was not written), each with its owners (meta.owner; a test's are its models')."""
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
