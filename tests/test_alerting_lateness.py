"""alerting.lateness: `Expectation` is the typed interface; its dict shape (what the plan passes
to the alerting DAG) is validated with a message naming the DAG and the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerting.lateness import Expectation, ExpectationError, late_alerts

PLAN_SHAPE = {  # as orchestrator/plan/build.py writes it
    "dag_id": "dbt_marketing",
    "upstream": ["analytics.fct_orders", "raw_marketing.ad_spend"],
    "outlets": ["analytics.marketing_campaign_performance"],
    "within_s": 14400,
    "dag_tags": ["dbt", "dbt_tag:marketing"],
    "dbt_tag": "marketing",
}


def test_the_dict_shape_round_trips_and_equals_the_typed_value():
    e = Expectation.from_dict(PLAN_SHAPE)
    assert e == Expectation(
        dag_id="dbt_marketing",
        upstream=("analytics.fct_orders", "raw_marketing.ad_spend"),
        outlets=("analytics.marketing_campaign_performance",),
        within=timedelta(hours=4),
        dag_tags=("dbt", "dbt_tag:marketing"),
        dbt_tag="marketing",
    )
    assert Expectation.from_dict(e.to_dict()) == e
    # the optional keys may be left out; lists given to the constructor become tuples (hashable)
    short = Expectation.from_dict({k: PLAN_SHAPE[k] for k in ("dag_id", "upstream", "outlets", "within_s")})
    assert (short.dag_tags, short.dbt_tag) == ((), None)
    built = Expectation("d", ["a"], ["b"], timedelta(minutes=5))  # type: ignore[arg-type]
    assert built.upstream == ("a",) and hash(built)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"within_s": 0}, "lateness expectation 'dbt_marketing': within_s: must be greater than 0, got 0"),
        ({"within_s": "4h"}, "lateness expectation 'dbt_marketing': within_s: expected a number, got '4h'"),
        ({"upstream": "analytics.fct_orders"}, "lateness expectation 'dbt_marketing': upstream: expected a list"),
        ({"outlets": [1]}, "lateness expectation 'dbt_marketing': outlets[0]: expected a string, got 1"),
        ({"dbt_tag": ""}, "lateness expectation 'dbt_marketing': dbt_tag: must not be empty"),
        (
            {"within_minutes": 5},
            "lateness expectation 'dbt_marketing': within_minutes: unknown key (did you mean within_s? expected one "
            "of dag_id, upstream, outlets, within_s, dag_tags, dbt_tag)",
        ),
        ({"dag_id": None}, "lateness expectation: dag_id: expected a string, got None"),
    ],
)
def test_a_bad_dict_names_the_dag_and_the_key(change, message):
    with pytest.raises(ExpectationError) as info:
        Expectation.from_dict({**PLAN_SHAPE, **change})
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(message), str(info.value)


def test_missing_keys_are_all_named():
    with pytest.raises(ExpectationError) as info:
        Expectation.from_dict({"dag_id": "dbt_x"})
    assert str(info.value) == (
        "lateness expectation 'dbt_x': upstream: required; lateness expectation 'dbt_x': outlets: required; "
        "lateness expectation 'dbt_x': within_s: required"
    )


def test_the_constructor_checks_types_too():
    with pytest.raises(ExpectationError, match=r"'d': within: expected a positive timedelta, got 60"):
        Expectation("d", (), (), 60)  # type: ignore[arg-type]
    with pytest.raises(ExpectationError, match=r"'d': upstream: expected a list of Asset names, got 'a'"):
        Expectation("d", "a", (), timedelta(1))  # type: ignore[arg-type]


def test_typed_expectations_drive_late_alerts():
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    [alert] = late_alerts(
        [Expectation.from_dict(PLAN_SHAPE)], cycle_start=t0, now=t0 + timedelta(hours=5), last_event=lambda a: None
    )
    assert alert.dbt is not None and alert.dbt.tag == "marketing"
    assert alert.extra["missing_assets"] == ["analytics.fct_orders", "raw_marketing.ad_spend"]
