"""The rule that keeps a dbt DAG from building on two cycles' data (orchestrator/plan/cycles.py):
examples from the incident in issue 17, then properties that hold on any inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.plan.cycles import cycle_of, cycle_order, cycle_verdict

DAY_N, DAY_N1 = "2026-12-06 00:00:00+00:00", "2026-12-07 00:00:00+00:00"


def test_the_incident_a_new_crm_load_beside_last_cycles_shop_load_waits_for_the_shop():
    v = cycle_verdict({"raw_crm.accounts": DAY_N1, "raw_shop.customers": DAY_N, "raw_shop.orders": DAY_N})
    assert not v.ready
    assert v.cycle == DAY_N1
    assert v.stale == ("raw_shop.customers", "raw_shop.orders")
    assert v.describe() == (
        f"waiting for cycle {DAY_N1} of raw_shop.customers (cycle {DAY_N}), raw_shop.orders (cycle {DAY_N})"
    )


def test_inputs_of_one_cycle_build_at_once():
    v = cycle_verdict({"raw_crm.accounts": DAY_N1, "raw_shop.orders": DAY_N1})
    assert (v.ready, v.cycle, v.stale) == (True, DAY_N1, ())


def test_an_input_without_a_cycle_never_holds_a_run_back():
    v = cycle_verdict({"raw_crm.accounts": DAY_N1, "outside.loaded": None, "legacy": "not a date"})
    assert (v.ready, v.cycle) == (True, DAY_N1)
    assert cycle_verdict({"a": None}).describe() == "no input names a cycle"


def test_one_instant_in_two_spellings_is_one_cycle():
    assert cycle_verdict({"a": "2026-12-07T00:00:00+00:00", "b": "2026-12-07 00:00:00", "c": DAY_N1}).ready


def test_the_cycle_of_a_run_is_the_newest_its_triggering_events_name():
    assert cycle_of([{"cycle": DAY_N}, {"cycle": DAY_N1}, None, {"other": 1}]) == DAY_N1
    assert cycle_of([{}, None]) is None


# ---------------------------------------------------------------- properties

BASE = datetime(2026, 1, 1, tzinfo=UTC)
cycles = st.integers(0, 6).map(lambda d: (BASE + timedelta(days=d)).isoformat())
maybe_cycle = st.one_of(st.none(), cycles, st.sampled_from(["", "manual__x", "garbage"]))
inputs = st.dictionaries(st.text("abcdef.", min_size=1, max_size=6), maybe_cycle, max_size=8)


def _known(inp):
    return {a: cycle_order(c) for a, c in inp.items() if isinstance(c, str) and cycle_order(c) is not None}


@given(inputs)
def test_ready_exactly_when_every_known_cycle_is_the_same(inp):
    v = cycle_verdict(inp)
    assert v.ready == (len(set(_known(inp).values())) <= 1)


@given(inputs)
def test_stale_inputs_are_exactly_those_behind_the_newest_known_cycle(inp):
    v = cycle_verdict(inp)
    known = _known(inp)
    if not known:
        assert (v.ready, v.cycle, v.stale) == (True, None, ())
        return
    newest = max(known.values())
    assert cycle_order(v.cycle) == newest
    assert set(v.stale) == {a for a, w in known.items() if w < newest}
    assert list(v.stale) == sorted(v.stale)
    assert not (set(v.stale) - set(known))  # an unknown input is never stale


@given(inputs, st.dictionaries(st.text("xyz", min_size=1, max_size=4), st.sampled_from([None, "nope"])))
def test_unknown_inputs_change_nothing(inp, unknown):
    a, b = cycle_verdict(inp), cycle_verdict({**unknown, **inp})
    assert (a.ready, a.cycle, a.stale) == (b.ready, b.cycle, b.stale)


@given(inputs)
def test_bringing_the_stale_inputs_up_to_the_cycle_makes_the_run_ready(inp):
    v = cycle_verdict(inp)
    after = cycle_verdict({**inp, **dict.fromkeys(v.stale, v.cycle)})
    assert after.ready and after.cycle == v.cycle


@given(inputs)
def test_the_order_of_the_inputs_does_not_matter(inp):
    a, b = cycle_verdict(inp), cycle_verdict(dict(reversed(list(inp.items()))))
    assert (a.ready, a.stale) == (b.ready, b.stale)
    assert (a.cycle is None) == (b.cycle is None)
    assert a.cycle is None or cycle_order(a.cycle) == cycle_order(b.cycle)
