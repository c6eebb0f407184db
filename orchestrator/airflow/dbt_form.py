"""The run form of every dbt DAG (Airflow Params, shown on "Trigger"), and how its values become
dbt arguments: always an argument list, never a shell string.

    select / exclude   dbt selection syntax, within the DAG's own nodes (checked with `dbt ls`)
    full_refresh       --full-refresh
    vars               --vars '<JSON object>'
    retry_from_failure on a retry, build only what did not succeed the try before (default on)

A scheduled run (Asset-triggered) uses the defaults: the DAG's whole selection.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import Param

from ..plan.model import DbtDag
from . import form


def params(spec: DbtDag) -> dict[str, Param]:
    models, tests = spec.node_counts()  # not the lists: a cached plan decodes them for the task that runs
    what = "nodes" if models else "tests"
    return {
        # ["null", "string"] with a None default: Airflow's form marks a field whose type has no
        # "null" as required, and an empty required field disables "Trigger".
        "select": form.field(
            None,
            type=["null", "string"],
            title="Select",
            description=f"dbt selection syntax, within this DAG's {models or tests} {what} "
            "(e.g. `fct_orders+`, `tag:daily`); empty: all of them",
        ),
        "exclude": form.field(
            None, type=["null", "string"], title="Exclude", description="dbt selection syntax; empty: nothing"
        ),
        "full_refresh": form.field(
            False,
            type="boolean",
            title="Full refresh",
            description="rebuild incremental models and seeds from scratch (--full-refresh)",
        ),
        "vars": form.field(
            {},
            type="object",
            title="vars",
            description='dbt variables, a JSON object (--vars), e.g. {"start_date": "2024-01-01"}',
        ),
        "retry_from_failure": form.field(
            True,
            type="boolean",
            title="Retry from the point of failure",
            description="on a retry (or a cleared task), build only the nodes that failed "
            "or were skipped the try before; off: the whole selection again",
        ),
    }


class FormError(ValueError):
    """A run-form value dbt must not get; the message says which and why."""


def form_values(context_params: dict[str, Any] | None) -> dict[str, Any]:
    """The form's values, checked (types), with the defaults of a scheduled run."""
    p = dict(context_params or {})
    out = {
        "select": p.get("select") or "",
        "exclude": p.get("exclude") or "",
        "full_refresh": p.get("full_refresh", False),
        "vars": p.get("vars") or {},
        "retry_from_failure": p.get("retry_from_failure", True),
    }
    for key in ("select", "exclude"):
        if not isinstance(out[key], str):
            raise FormError(f"{key}: expected dbt selection syntax (a string), got {out[key]!r}")
        if "\n" in out[key] or "\x00" in out[key]:
            raise FormError(f"{key}: one line of dbt selection syntax, please")
        # Each word goes to dbt as an argument of --select/--exclude: one starting with "-" would be
        # read as an option (--profiles-dir, --target-path...). No selector starts with "-".
        flags = [w for w in selection_words(out[key]) if w.startswith("-")]
        if flags:
            raise FormError(f"{key}: dbt selection syntax only, not options ({', '.join(flags)})")
    for key in ("full_refresh", "retry_from_failure"):
        if not isinstance(out[key], bool):
            raise FormError(f"{key}: expected true or false, got {out[key]!r}")
    out["vars"] = _vars(out["vars"])
    return out


# dbt's --vars are a few settings (dates, flags, names): these bounds are far above any real use, and
# keep a hostile form from making the task hit a RecursionError (which Airflow retries) or handing dbt
# megabytes on its command line.
VARS_MAX_CHARS = 100_000
VARS_MAX_DEPTH = 32


def _vars(value: Any) -> dict[str, Any]:
    """The form's `vars`: a JSON object (or its text), at most VARS_MAX_DEPTH deep and
    VARS_MAX_CHARS long as JSON; a FormError otherwise, before anything recurses over it."""
    if isinstance(value, str):  # the form may hand over the JSON text
        if len(value) > VARS_MAX_CHARS:
            raise FormError(f"vars: {len(value):,} characters of JSON; at most {VARS_MAX_CHARS:,}")
        try:
            value = json.loads(value) if value.strip() else {}
        except RecursionError:
            raise FormError(f"vars: nested more than {VARS_MAX_DEPTH} levels deep") from None
        except ValueError as exc:
            raise FormError(f"vars: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise FormError(f"vars: expected a JSON object, got {type(value).__name__}")
    if _deeper_than(value, VARS_MAX_DEPTH):
        raise FormError(f"vars: nested more than {VARS_MAX_DEPTH} levels deep")
    size = len(json.dumps(value, sort_keys=True))  # safe now: bounded depth
    if size > VARS_MAX_CHARS:
        raise FormError(f"vars: {size:,} characters as JSON; at most {VARS_MAX_CHARS:,}")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and lists nest in `value` more than `limit` levels (iteratively: a hostile
    value cannot make this recurse)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def extra_args(values: dict[str, Any]) -> list[str]:
    """The flags the form adds to every dbt invocation of the run."""
    args = []
    if values["full_refresh"]:
        args.append("--full-refresh")
    if values["vars"]:
        args += ["--vars", json.dumps(values["vars"], sort_keys=True)]
    return args


def selection_words(value: str) -> list[str]:
    """dbt selection syntax as dbt's CLI splits it: on spaces (a union of its parts)."""
    return [w for w in value.split() if w]
