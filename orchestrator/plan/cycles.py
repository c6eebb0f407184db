"""Which cycle a run's inputs belong to, and whether they agree: the pure rule behind the wait
that keeps a dbt DAG from building on a mix of two cycles' data.

A cycle is named by the tick's logical date; every Asset event of the pipeline carries it in
`extra["cycle"]` (tick -> Meltano -> dbt). Airflow's Asset schedule means "each input updated
since my last run", not "updated in the same cycle": when one source's day N is late and another
source's day N+1 lands, a dbt DAG starts on one new input and one left over. The rule here says
what the run must do with the latest event of each input.

An input whose latest event carries no cycle (a loader outside the pipeline, a Meltano DAG on
its own schedule, a manual run, an event from before this rule) is *unknown*: it never holds a
run back, and never moves the cycle the others must reach.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

CYCLE_KEY = "cycle"  # the key of an Asset event's extra that names its cycle


def cycle_order(cycle: str) -> datetime | None:
    """The point in time a cycle's name stands for (None: not a timestamp, so it is unknown).
    Naive timestamps are UTC, as Airflow's are."""
    try:
        when = datetime.fromisoformat(cycle)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _known(cycle: object) -> datetime | None:
    return cycle_order(cycle) if isinstance(cycle, str) else None


def cycle_of(extras: Iterable[Mapping | None]) -> str | None:
    """The cycle a run belongs to, from the extras of the events that started it: the newest
    cycle any of them names (a Meltano DAG started by two queued ticks loads for the later one);
    None when none names one."""
    best: tuple[datetime, str] | None = None
    for extra in extras:
        cycle = (extra or {}).get(CYCLE_KEY)
        when = _known(cycle)
        if when is not None and (best is None or when > best[0]):
            best = (when, str(cycle))
    return best[1] if best else None


@dataclass(frozen=True)
class CycleVerdict:
    """What a run does with its inputs' latest events.

    `ready`: every input whose cycle is known is at the same cycle (or none is known): build.
    `cycle`: the cycle they agree on, or the newest one, which the `stale` inputs must reach.
    `stale`: the inputs behind `cycle`, sorted; empty when ready."""

    ready: bool
    cycle: str | None
    stale: tuple[str, ...]
    cycles: Mapping[str, str | None]

    def describe(self) -> str:
        """One line: what agrees, or which input is behind which cycle."""
        if self.ready:
            return f"every input is at cycle {self.cycle}" if self.cycle else "no input names a cycle"
        behind = ", ".join(f"{a} (cycle {self.cycles[a]})" for a in self.stale)
        return f"waiting for cycle {self.cycle} of {behind}"


def cycle_verdict(inputs: Mapping[str, object]) -> CycleVerdict:
    """Do these inputs (Asset name -> the cycle of its latest event, None if it has none) agree?

    The target is the newest known cycle: inputs only move forward, so waiting for an older one
    could never end, and building the newest is what the next run would do anyway."""
    known = {a: (w, str(c)) for a, c in inputs.items() if (w := _known(c)) is not None}
    cycles = {a: (str(c) if a in known else None) for a, c in inputs.items()}
    if not known:
        return CycleVerdict(True, None, (), cycles)
    newest_when, newest = max(known.values())
    stale = tuple(sorted(a for a, (w, _) in known.items() if w < newest_when))
    return CycleVerdict(not stale, newest, stale, cycles)
