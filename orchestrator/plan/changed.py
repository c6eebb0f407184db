"""dbt work follows new data (`dbt.build: changed`): which inputs of a dbt run brought new rows,
and the `dbt build` arguments that build only what is downstream of them.

Pure (no Airflow, no dbt): the dbt task (orchestrator/airflow/dbt_task.py) and the direct cycle
(orchestrator/local/direct.py) apply it; dbt's own graph operators do the selection: each word
of the DAG's `--select` intersected (`,`) with `<input>+` of every input that changed and of every
model that opts out (`meta: {orchestrator: {always_build: true}}`), with the DAG's own
`--indirect-selection cautious`.

When in doubt, build: an event this module cannot read (the tick's, one emitted by hand, a shape
it does not know) counts as new rows, and so does a run with no triggering events at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

NOTHING_NEW = "nothing_new"  # the extra of a dbt Asset event whose relation was not rebuilt
ROW_KEYS = ("rows_written", "records_extracted")  # a Meltano event's (runners/reconcile.py, tasks.py)


def event_is_new(extra: Any) -> bool:
    """Did the run behind this Asset event bring new rows? A dbt event: unless it says
    `nothing_new`; a Meltano event: when it extracted or wrote a row (both are read: without
    `_sdc_batched_at`, an upsert of existing keys writes no *new* row but changes one), or, when
    the reconciliation read the stream's replication key, when a row got past the key's
    high-water mark of before the load (`rows_new`: not the bookmark row an SDK tap re-sends);
    any other event: yes."""
    if not isinstance(extra, Mapping):
        return True
    if extra.get(NOTHING_NEW) is True:
        return False
    fresh = extra.get("rows_new")
    if isinstance(fresh, int) and not isinstance(fresh, bool):
        return fresh > 0
    counts = [v for k in ROW_KEYS if isinstance(v := extra.get(k), int) and not isinstance(v, bool)]
    return any(v > 0 for v in counts) if counts else True


def changed_inputs(events: Iterable[tuple[str, Any]], inputs: Iterable[str]) -> set[str]:
    """The inputs (Asset names) with at least one new event among `events` ((Asset, extra) pairs:
    the events that triggered the run). An input without any event counts as changed; so do all
    of them when there are no events at all (a run by hand, a cron)."""
    inputs = set(inputs)
    seen: dict[str, bool] = {}
    for asset, extra in events:
        seen[asset] = seen.get(asset, False) or event_is_new(extra)
    if not seen:
        return inputs
    return {a for a in inputs if seen.get(a, True)}


def split_args(args: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """A dbt command line as (command, its `--select` words, every other flag)."""
    args = list(args)
    if "--select" not in args:
        return args[:1], [], args[1:]
    at = args.index("--select")
    words = args[at + 1 :]
    end = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
    return args[:1], words[:end], args[1:at] + words[end:]


def changed_selection(
    args: Iterable[str],
    inputs: Mapping[str, Iterable[str]],
    changed: Iterable[str],
    always_build: Iterable[str] = (),
) -> list[str] | None:
    """The DAG's `dbt build` arguments narrowed to the nodes downstream of the `changed` inputs and
    of the `always_build` models; None when that is nothing (build nothing). `inputs` maps each
    input Asset to the dbt selectors of what it is (`source:s.t`, a model's name). Every input
    changed, or no inputs to tell by (a DAG on the tick alone): the DAG's own arguments, unchanged."""
    args = list(args)
    changed = set(changed) & set(inputs)
    always = sorted(set(always_build))
    if changed == set(inputs):
        return args
    roots = sorted({f"{s}+" for a in changed for s in inputs[a]} | {f"{s}+" for s in always})
    if not roots:
        return None
    command, select, rest = split_args(args)
    words = [f"{w},{r}" for w in select for r in roots] if select else roots
    return [*command, "--select", *words, *rest]
