"""The blast radius in every failure alert, from the plan's lineage: the downstream DAGs that will
not run this cycle, how many models go stale and their owners where they differ from the failed
DAG's; on the recovery, what ran late. Pure: blast_radius on the demo plan and on the six real
manifests (vendored in tests/data/manifests), the alert enrichment, the exact Slack and e-mail text. Real:
one Meltano extractor failure through a real Airflow, its Slack message naming the blocked dbt DAGs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_placement import MANIFESTS, REAL_MANIFESTS, real, top_tags

from alerting.events import Alert, MeltanoContext
from alerting.rendering.email_message import render_email
from alerting.rendering.slack_message import render_recovered, render_slack
from orchestrator.airflow.lineage_alert import enrich, radius
from orchestrator.config import REPO_ROOT, load_config
from orchestrator.plan import plan_from_config
from orchestrator.plan.lineage import blast_radius, still_arriving

SHOP_BLOCKED = ("dbt_core", "dbt_finance", "dbt_marketing", "dbt_untagged_2")
ALL_OWNERS = ("core-data@example.com", "data-platform@example.com", "finance-data@example.com")
ALL_OWNERS += ("marketing-data@example.com",)
SLACK_IDS = {"core-data@example.com": "U00COREDATA", "finance-data@example.com": "U00FINANCE"}


def demo_config(**overrides):
    config = load_config(REPO_ROOT / "orchestration.yml", "embedded")
    return config.with_overrides(**overrides) if overrides else config


@pytest.fixture(scope="module")
def demo():
    return plan_from_config(demo_config(), cache_dir=None)


# ------------------------------------------------------------------------------ the demo plan


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
@pytest.mark.parametrize(
    "failed, blocked, stale, owners",
    [
        # an extractor: everything that reads the shop, then what reads that (the summary, through finance)
        ("meltano_tap_shop", SHOP_BLOCKED, 13, ALL_OWNERS),
        ("meltano_tap_crm", SHOP_BLOCKED, 13, ALL_OWNERS),  # dbt_core waits for accounts too (AND)
        ("meltano_tap_marketing", ("dbt_marketing", "dbt_untagged_2"), 4, ALL_OWNERS[1:2] + ALL_OWNERS[3:]),
        # dbt: its own owners are left out; the catch-all summary's owner is another team
        ("dbt_core", SHOP_BLOCKED[1:], 7, ALL_OWNERS[1:]),
        ("dbt_finance", ("dbt_untagged_2",), 1, ("data-platform@example.com",)),
        ("dbt_marketing", ("dbt_untagged_2",), 1, ("data-platform@example.com",)),
        # the untagged seed (no owner of its own): finance reads it, the summary reads finance
        ("dbt_untagged", ("dbt_finance", "dbt_untagged_2"), 4, ("data-platform@example.com", ALL_OWNERS[2])),
        ("dbt_untagged_2", (), 0, ()),  # the last stage: nothing after it
    ],
)
def test_blast_radius_of_each_demo_dag(demo, failed, blocked, stale, owners):
    r = blast_radius(demo, failed)
    assert (r.blocked, r.stale_models, r.owners) == (blocked, stale, owners)
    assert set(r.missing) == set(blocked)
    assert all(r.missing[d] for d in blocked)  # each blocked DAG names the Assets it misses


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_missing_assets_say_why_each_dag_is_blocked(demo):
    r = blast_radius(demo, "meltano_tap_shop")
    assert r.missing == {
        "dbt_core": ("raw_shop.customers", "raw_shop.orders", "raw_shop.payments"),  # accounts came
        "dbt_finance": ("analytics.fct_orders", "raw_shop.payments"),  # the seed came
        "dbt_marketing": ("analytics.fct_orders",),  # the marketing tables came
        "dbt_untagged_2": ("analytics.finance_daily_revenue", "staging.stg_ad_spend"),
    }


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_a_failed_task_emits_nothing_whatever_it_built(demo):
    """Airflow emits a task's Asset events only on success: what a failed dbt build did build
    blocks downstream DAGs all the same (what it built must not shrink the radius)."""
    config = demo_config()
    ctx = {"blast_radius": radius(config, "dbt_core", "dbt_build")}
    assert ctx["blast_radius"]["blocked"] == list(SHOP_BLOCKED[1:])
    assert still_arriving(demo, "dbt_core", "dbt_build") == frozenset()


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_per_model_tasks_other_branches_still_arrive():
    config = demo_config()
    config = config.model_copy(update={"dbt": config.dbt.model_copy(update={"task_granularity": "model"})})
    plan = plan_from_config(config, cache_dir=None)
    # stg_accounts feeds dim_customers only: fct_orders still comes, so finance and marketing run
    arriving = still_arriving(plan, "dbt_core", "stg_accounts")
    assert "analytics.fct_orders" in arriving and "analytics.dim_customers" not in arriving
    assert "staging.stg_accounts" not in arriving
    assert blast_radius(plan, "dbt_core", arriving).blocked == ()
    # stg_orders feeds fct_orders: everything after core waits
    lost = blast_radius(plan, "dbt_core", still_arriving(plan, "dbt_core", "stg_orders"))
    assert lost.blocked == SHOP_BLOCKED[1:]


# ---------------------------------------------------------------------------- real manifests

# name -> (dbt DAGs, models in them, the dbt DAG with the largest radius, DAGs it blocks, stale models)
REAL = {
    "mattermost": (3, 274, "dbt_untagged", 2, 219),
    "gitlab": (5, 833, "dbt_daily", 4, 789),
    "tuva": (17, 821, "dbt_input_layer", 14, 738),
    "calitp": (2, 620, "dbt_untagged", 1, 3),
    "flipside": (1, 62, None, 0, 0),
    "jaffle_shop": (2, 8, "dbt_untagged", 1, 1),
}


def _downstream(plan, dag_id: str) -> set[str]:
    """Plain reachability over "emits an Asset the other is scheduled on": what AND-scheduling
    blocks when nothing of the failed DAG arrives (a second way to the same answer)."""
    producer = {a: d.dag_id for d in plan.dags for a in d.outlets}
    edges: dict[str, set[str]] = {}
    for d in plan.dags:
        for a in d.schedule.assets:
            if a in producer:
                edges.setdefault(producer[a], set()).add(d.dag_id)
    seen, todo = set(), [dag_id]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen - {dag_id}


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_blast_radius_on_real_manifests(name, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    found = sorted(REAL_MANIFESTS.glob(MANIFESTS[name]))
    assert found, f"{REAL_MANIFESTS}/{MANIFESTS[name]} not found (vendored: tests/data/README.md)"
    config = demo_config(manifest=found[0], tags=tuple(top_tags(real(name))))
    plan = plan_from_config(config, cache_dir=None)
    assert plan.errors == []
    dbt = plan.dbt_dags()
    models = {d.dag_id: len(d.models) for d in dbt}
    t0 = time.process_time()  # CPU, not wall: a loaded machine must not fail a speed bound
    radii = {d.dag_id: blast_radius(plan, d.dag_id) for d in plan.dags}
    elapsed = time.process_time() - t0
    for dag_id, r in radii.items():
        assert set(r.blocked) == _downstream(plan, dag_id), dag_id
        assert r.stale_models == sum(models.get(d, 0) for d in r.blocked), dag_id
    # the tick failing blocks every dbt DAG: every model goes stale
    assert set(models) <= set(radii["tick"].blocked)
    assert radii["tick"].stale_models == sum(models.values())
    worst = max((radii[d.dag_id] for d in dbt), key=lambda r: (r.stale_models, len(r.blocked)))
    n_dags, n_models, worst_dag, worst_blocked, worst_stale = REAL[name]
    assert (len(dbt), sum(models.values())) == (n_dags, n_models)
    if worst_dag is None:
        assert worst.blocked == ()
    else:
        assert (worst.dag_id, len(worst.blocked), worst.stale_models) == (worst_dag, worst_blocked, worst_stale)
    assert elapsed < 1, f"{len(radii)} blast radii took {elapsed:.2f}s of CPU"


# ----------------------------------------------------------------------------- the enrichment


def _failure(dag_id="meltano_tap_shop", task_id="meltano_run", **kw) -> Alert:
    kw.setdefault("occurred_at", datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
    return Alert(kind=kw.pop("kind", "task_failed"), dag_id=dag_id, task_id=task_id, **kw)


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_enrich_adds_the_radius_to_failures_and_what_ran_late_to_recoveries():
    config = demo_config()
    failed = _failure()
    enrich(config, failed)
    assert failed.extra["blast_radius"]["blocked"] == list(SHOP_BLOCKED)
    assert failed.extra["blast_radius"]["stale_models"] == 13
    recovered = _failure(kind="recovered")
    enrich(config, recovered)
    assert recovered.extra["late"]["blocked"] == list(SHOP_BLOCKED) and "blast_radius" not in recovered.extra
    dag_failed = _failure("dbt_core", None, kind="dag_failed")  # a timeout: the run as a whole
    enrich(config, dag_failed)
    assert dag_failed.extra["blast_radius"]["blocked"] == list(SHOP_BLOCKED[1:])
    for quiet in (_failure(kind="retry"), _failure("dbt_untagged_2", "dbt_build"), _failure("alerting", "x")):
        enrich(config, quiet)  # a retry, a DAG with nothing after it, a DAG outside the plan's lineage
        assert "blast_radius" not in quiet.extra and "late" not in quiet.extra


def test_a_failing_enricher_never_loses_the_alert(tmp_path, monkeypatch):
    from alerting_fakes import FakeSlack, FakeSMTP
    from test_alerting_airflow import context, routing

    from alerting.airflow import AirflowAlerts
    from alerting.delivery import Notifier
    from alerting.outbox import Outbox

    def broken(alert):
        raise RuntimeError("the plan is unreadable")

    monkeypatch.setenv("ADAPTER_SLACK_TOKEN", "xoxb-enrich")
    with FakeSlack(tokens={"xoxb-enrich"}) as slack, FakeSMTP() as smtp:
        outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
        alerts = AirflowAlerts(notifier_factory=lambda: Notifier(routing(slack, smtp), outbox), enrich=broken)
        alerts.on_task_failure(context(exception=RuntimeError("boom")))
        [posted] = slack.posted()
    assert posted["text"].startswith("🔴 Task failed: dbt_finance.dbt_build") and "boom" in posted["text"]


# ------------------------------------------------------------------------------ the rendering


def _shop_failure() -> Alert:
    alert = _failure(
        run_id="scheduled__2026-01-01T00:00:00+00:00",
        try_number=2,
        max_tries=2,
        error="meltano run tap-shop target-duckdb exited with 1",
        meltano=MeltanoContext("tap-shop", "dev:tap-shop-to-target-duckdb", ["ValueError: not valid JSON"]),
    )
    enrich(demo_config(), alert)
    return alert


BLAST_SLACK = (
    "*Blast radius:* 4 downstream DAGs will not run this cycle: "
    "`dbt_core`, `dbt_finance`, `dbt_marketing`, `dbt_untagged_2`\n"
    "*Stale:* 13 models will be stale; owners besides this DAG's: "
    "<@U00COREDATA>, data-platform@example.com, <@U00FINANCE>, marketing-data@example.com"
)
BLAST_TEXT = [
    "Blast radius: 4 downstream DAGs will not run this cycle: dbt_core, dbt_finance, dbt_marketing, dbt_untagged_2",
    "Stale: 13 models will be stale; owners besides this DAG's: "
    "core-data@example.com, data-platform@example.com, finance-data@example.com, marketing-data@example.com",
]
LATE_TEXT = (
    "Ran late: 4 downstream DAGs held back by the failure until this run: "
    "dbt_core, dbt_finance, dbt_marketing, dbt_untagged_2 (13 models)"
)


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_the_failure_message_shows_the_blast_radius():
    alert = _shop_failure()
    blocks = render_slack(alert, SLACK_IDS.get).blocks
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert BLAST_SLACK in sections
    # after the error, before the Meltano detail (it survives the 50-block trim with it)
    at = next(i for i, b in enumerate(blocks) if b.get("text", {}).get("text") == BLAST_SLACK)
    assert blocks[at + 1]["fields"][0]["text"] == "*Extractor*\ntap-shop"
    email = render_email(alert)
    lines = email.text.splitlines()
    i = lines.index(BLAST_TEXT[0])
    assert lines[i - 1 : i + 3] == ["", *BLAST_TEXT, ""][:4]
    assert lines[i + 2 : i + 4] == ["", "Meltano extractor: tap-shop"]
    assert "<h3>Blast radius</h3><p>Blast radius: 4 downstream DAGs will not run this cycle: dbt_core, " in email.html


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_the_recovery_says_what_ran_late():
    alert = _failure(
        kind="recovered",
        run_id="scheduled__2026-01-02T00:00:00+00:00",
        try_number=1,
        extra={"failing_since": "2026-01-01T00:05:00+00:00", "failures": 1},
    )
    enrich(demo_config(), alert)
    reply = render_recovered(alert).text
    assert reply == (
        "✅ Recovered: meltano_tap_shop.meltano_run succeeded in run scheduled__2026-01-02T00:00:00+00:00 "
        "(try 1); failing since 2026-01-01T00:05:00, 1 failure\n" + LATE_TEXT
    )
    sections = [b["text"]["text"] for b in render_slack(alert).blocks if b["type"] == "section" and "text" in b]
    assert "*Ran late:* 4 downstream DAGs held back by the failure until this run: `dbt_core`, `dbt_finance`, " in (
        "\n".join(sections)
    )
    email = render_email(alert).text
    assert email.endswith(reply.split("\n")[0] + "\n" + LATE_TEXT + "\n")
    assert email.count("Ran late:") == 1


def test_names_are_escaped_and_long_lists_capped():
    blocked = [f"dbt_<!here>_{i:02d}" for i in range(25)]
    alert = _failure(extra={"blast_radius": {"blocked": blocked, "stale_models": 1, "owners": ["@channel"]}})
    [text] = [
        b["text"]["text"] for b in render_slack(alert).blocks if b.get("text", {}).get("text", "").startswith("*Blast")
    ]
    assert "<!here>" not in text and "`dbt_&lt;!here&gt;_19` and 5 more" in text
    assert "@channel" not in text and "1 model will be stale" in text


# ---------------------------------------------------------------------- a real Airflow, a real failure


@pytest.mark.airflow
@pytest.mark.meltano
@pytest.mark.timeout(900)
def test_a_meltano_failure_in_airflow_names_the_blocked_dbt_dags_and_owners(tmp_path, installed):
    from alerting_fakes import FakeSlack, FakeSMTP
    from conftest import airflow_test_env, pipeline_config

    from demo_data.writers import FileDestination, advance
    from orchestrator.local.airflow_cycle import prepare, run_cycle_in, start_airflow
    from orchestrator.local.direct import prepare_warehouse

    token = "xoxb-blast-radius-1"
    config = load_config(pipeline_config(tmp_path, retries=0), "embedded")
    with FakeSlack(tokens={token}) as slack, FakeSMTP() as smtp:
        env = airflow_test_env(config, tmp_path, slack, smtp, token)
        prepare_warehouse(config, env)
        advance(FileDestination(env["DEMO_DATA_DIR"]))  # day 1 ...
        with open(Path(env["DEMO_DATA_DIR"]) / "shop" / "orders.jsonl", "a") as fh:
            fh.write('{"id": 99999, "broken json\n')  # ... and the shop's export is corrupt
        plan = plan_from_config(config, cache_dir=None)
        af = start_airflow(config, env, plan)
        try:
            prepare(af, plan)
            cycle = run_cycle_in(af, config, env, plan, new_day=False)
            states = {r.dag_id: r.state for r in cycle.reports}
            assert states["meltano_tap_shop"] == "failed"
            assert {d: states[d] for d in SHOP_BLOCKED} == dict.fromkeys(SHOP_BLOCKED, "blocked")
            deadline = time.monotonic() + 300  # the callback posts, then mails (the route mails always)
            while not ((posted := [m for m in slack.posted() if m["channel"] == "#data-ingestion"]) and smtp.received):
                assert time.monotonic() < deadline, f"no Slack message or e-mail for the failure: {slack.posted()}"
                time.sleep(0.5)
            mails = [r.message() for r in smtp.received]
        finally:
            af.stop()
    [message] = posted
    assert message["text"].startswith("🔴 Task failed: meltano_tap_shop.meltano_run")
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]
    # the owners in alerting.yml's `owners` map are mentioned; data-platform has no Slack id
    assert BLAST_SLACK.replace("<@U00FINANCE>, marketing-data@example.com", "<@U00FINANCE>, <@U00MARKETING>") in (
        sections
    ), json.dumps(sections, indent=1)
    [mail] = [m for m in mails if "meltano_tap_shop" in m["Subject"]]
    body = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # SMTP's line ends
    assert "\n".join(BLAST_TEXT) in body
