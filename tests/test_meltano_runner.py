"""The Meltano runner: argv only, streamed log, failures carry the log tail."""

from __future__ import annotations

import pytest

from orchestrator.config import REPO_ROOT
from orchestrator.runners.meltano import MeltanoError, record_counts, run_meltano

MELTANO_PROJECT = REPO_ROOT / "meltano"

LINES = [  # Meltano's console lines as they come (long by nature)
    '2026-01-01T00:00:00Z [info     ] tap-shop METRIC: {"type":"counter","metric":"record_count","value":60,"tags":{"stream":"orders"}}',  # noqa: E501
    '2026-01-01T00:00:00Z [info     ] tap-shop METRIC: {"type":"counter","metric":"record_count","value":5,"tags":{"stream":"orders"}}',  # noqa: E501
    '2026-01-01T00:00:00Z [info     ] tap-shop-mariadb METRIC: {"type":"counter","metric":"record_count","value":7,"tags":{"database":"demo_shop","table":"payments"}}',  # noqa: E501
    '2026-01-01T00:00:00Z [info     ] target-postgres METRIC: {"type":"counter","metric":"record_count","value":60,"tags":{"stream":"orders"}}',  # noqa: E501
    '2026-01-01T00:00:00Z [info     ] tap-shop METRIC: {"type":"timer","metric":"sync_duration","value":0.1,"tags":{}}',
    "2026-01-01T00:00:00Z [info     ] tap-shop METRIC: {not json",
]


def test_record_counts_count_the_extractor_only():
    assert record_counts(LINES, "tap-shop") == {"orders": 65}
    assert record_counts(LINES, "tap-shop-mariadb") == {"payments": 7}


@pytest.mark.meltano
def test_failure_raises_with_the_log_tail(embedded):
    profile, env = embedded
    seen: list[str] = []
    with pytest.raises(MeltanoError) as err:
        run_meltano(
            ["run", "tap-shop", "target-does-not-exist"],
            environment="dev",
            env=env,
            project_root=MELTANO_PROJECT,
            log=seen.append,
        )
    assert err.value.returncode != 0
    assert any("target-does-not-exist" in line for line in err.value.tail)
    assert err.value.tail == seen[-len(err.value.tail) :], "the tail is the end of the streamed log"
    assert "target-does-not-exist" in str(err.value)


@pytest.mark.meltano
def test_arguments_never_reach_a_shell(embedded, tmp_path):
    profile, env = embedded
    marker = tmp_path / "pwned"
    with pytest.raises(MeltanoError):
        run_meltano(
            ["run", f"tap-shop; touch {marker}", "target-duckdb"],
            environment="dev",
            env=env,
            project_root=MELTANO_PROJECT,
            log=lambda line: None,
        )
    assert not marker.exists()


def test_the_plugins_own_exception_is_the_failures_summary():
    from orchestrator.runners.meltano import MeltanoError

    tail = [
        '2026-11-21T16:09:38.041674Z [info     ] tap-marketing     raise ValueError(f"...") from exc',
        "2026-11-21T16:09:38.041723Z [info     ] tap-marketing ValueError: /d/ad_spend.jsonl:19: not valid JSON",
        "2026-11-21T16:09:38.179023Z [info     ] target-duckdb Loading 8 rows",
        "2026-11-21T16:09:38.267011Z [error    ] meltano      Extractor failed",
        "2026-11-21T16:09:38.267369Z [error    ] meltano      Block run completed",
    ]
    err = MeltanoError(["meltano", "run", "tap-marketing", "target-duckdb"], 1, tail)
    assert err.summary() == (
        "meltano run tap-marketing target-duckdb exited with 1: ValueError: /d/ad_spend.jsonl:19: not valid JSON"
    )
    assert (
        MeltanoError(["meltano", "run", "x"], 2, ["... [error    ] meltano      Block run completed"]).summary()
        == "meltano run x exited with 2"
    )
