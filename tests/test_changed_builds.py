"""dbt work follows new data (`dbt.build: changed`, orchestrator/plan/changed.py).

- The rule, on any input (hypothesis): the selection built from the changed inputs, read with
  dbt's meaning of `a,b` (intersection), `x+` (x and what is downstream) and words (union), is
  exactly the DAG's nodes downstream of a changed input or of an always-built model; every input
  changed keeps the plan's arguments; nothing changed and nothing always built builds nothing.
- The plan on the demo: each dbt DAG's inputs in dbt's selection syntax, under `changed` only.
- The direct cycle's rule on the whole project (the Meltano tables as inputs).
- Real dbt on the demo project: `dbt ls` of a DAG's selection on a day where only one source
  brought rows lists only the affected subgraph.
- The dbt task on a day with no new rows: dbt does not run, and every relation's event says
  `nothing_new` (the downstream DAGs start as in a full cycle).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import REPO_ROOT, load_config
from orchestrator.plan import plan_from_config
from orchestrator.plan.changed import NOTHING_NEW, changed_inputs, changed_selection, event_is_new, split_args

# ------------------------------------------------------------------ the rule, on any input


def test_event_is_new_reads_meltano_and_dbt_events():
    assert event_is_new({"records_extracted": 3, "rows_written": 3})
    assert not event_is_new({"records_extracted": 0, "rows_written": 0})
    assert event_is_new({"records_extracted": 0, "rows_written": 2})  # an upsert the tap counted apart
    assert event_is_new({"records_extracted": 1})
    assert not event_is_new({"records_extracted": 0})
    assert not event_is_new({"unique_id": "model.x.y", NOTHING_NEW: True})
    assert event_is_new({"unique_id": "model.x.y", "status": "success"})  # a dbt event that built
    assert event_is_new({"cycle": "2026-01-01"})  # the tick's: no rows to tell by
    assert event_is_new(None)
    assert event_is_new({"records_extracted": True})  # not a count: when in doubt, build
    # the bookmark row an SDK tap re-sends: extracted and written again, but past no high-water mark
    assert not event_is_new({"records_extracted": 1, "rows_written": 1, "rows_new": 0})
    assert event_is_new({"records_extracted": 3, "rows_written": 3, "rows_new": 2})


_EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "rows_written": st.integers(-2, 5),
        "records_extracted": st.integers(-2, 5),
        NOTHING_NEW: st.booleans(),
        "cycle": st.text(max_size=5),
    },
)


@given(_EXTRAS)
def test_an_event_marked_nothing_new_is_never_new_and_a_positive_count_always_is(extra):
    if extra.get(NOTHING_NEW) is True:
        assert not event_is_new(extra)
    elif extra.get("rows_written", 0) > 0 or extra.get("records_extracted", 0) > 0:
        assert event_is_new(extra)
    elif "rows_written" in extra or "records_extracted" in extra:
        assert not event_is_new(extra)  # counted, and nothing counted


def test_changed_inputs_when_in_doubt_build():
    inputs = ["a", "b", "c"]
    assert changed_inputs([], inputs) == {"a", "b", "c"}  # started by hand: every input
    events = [("a", {"records_extracted": 0}), ("a", {"records_extracted": 2}), ("b", {"records_extracted": 0})]
    assert changed_inputs(events, inputs) == {"a", "c"}  # a: one of its events; c: no event to tell by


@st.composite
def _dags(draw):
    """A random dbt graph: sources s*, nodes n* (edges only forward), a DAG's select words (its
    nodes), which of its inputs changed, and which nodes opt out."""
    n_src = draw(st.integers(1, 4))
    n_nodes = draw(st.integers(1, 10))
    sources = [f"s{i}" for i in range(n_src)]
    nodes = [f"n{i}" for i in range(n_nodes)]
    parents = {}
    for i, n in enumerate(nodes):
        pool = sources + nodes[:i]
        parents[n] = set(draw(st.lists(st.sampled_from(pool), max_size=3)))
    members = draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True))
    read = {p for m in members for p in parents[m] if p not in members}  # what the DAG reads from outside
    inputs = {f"A_{p}": (f"source:{p}" if p.startswith("s") else p,) for p in sorted(read)}
    changed = draw(st.sets(st.sampled_from(sorted(inputs)))) if inputs else set()
    always = draw(st.lists(st.sampled_from(members), unique=True, max_size=2))
    return parents, members, inputs, changed, always


def _downstream(parents: dict[str, set[str]], root: str) -> set[str]:
    out, grew = {root}, True
    while grew:
        grew = False
        for n, ps in parents.items():
            if n not in out and ps & out:
                out.add(n)
                grew = True
    return out


def _dbt_selects(words: list[str], parents: dict[str, set[str]]) -> set[str]:
    """dbt's reading of `--select` words: union of words, `,` intersects, `x+` adds downstream."""
    out: set[str] = set()
    for word in words:
        parts = []
        for part in word.split(","):
            name = part.removeprefix("source:")
            parts.append(_downstream(parents, name.removesuffix("+")) if name.endswith("+") else {name})
        out |= set.intersection(*parts)
    return out


@given(_dags())
def test_the_selection_is_the_dags_nodes_downstream_of_what_changed(case):
    parents, members, inputs, changed, always = case
    args = ["build", "--select", *sorted(members), "--indirect-selection", "cautious"]
    result = changed_selection(args, inputs, changed, always)
    if changed == set(inputs):
        assert result == args  # the plan's exact selection
        return
    roots = [s.removeprefix("source:") for a in changed for s in inputs[a]] + list(always)
    expected = {m for m in members if any(m in _downstream(parents, r) for r in roots)}
    if not roots:
        assert result is None
        return
    assert result is not None
    _, _, rest = split_args(result)
    assert rest == ["--indirect-selection", "cautious"]
    assert _dbt_selects(split_args(result)[1], parents) == expected


# ------------------------------------------------------------------ the plan, on the demo


def _demo(build: str):
    config = load_config(REPO_ROOT / "orchestration.yml", "embedded")
    return config.model_copy(update={"dbt": config.dbt.model_copy(update={"build": build})})


def test_the_plan_names_each_input_in_dbts_syntax_under_changed_only(installed):
    changed = {d.dag_id: d for d in plan_from_config(_demo("changed"), cache_dir=None).dbt_dags()}
    assert changed["dbt_core"].inputs == {
        "raw_crm.accounts": ("source:crm.accounts",),
        "raw_shop.customers": ("source:shop.customers",),
        "raw_shop.orders": ("source:shop.orders",),
        "raw_shop.payments": ("source:shop.payments",),
    }
    assert changed["dbt_finance"].inputs["analytics.fct_orders"] == ("fct_orders",)
    assert changed["dbt_untagged"].inputs == {}  # on the tick alone: always its whole selection
    default = plan_from_config(_demo("all"), cache_dir=None).dbt_dags()
    assert all(d.inputs == {} and d.always_build == () for d in default)


def test_the_direct_cycle_builds_the_project_downstream_of_the_tables_with_rows(installed):
    from orchestrator.local.direct import project_selection

    plan = plan_from_config(_demo("changed"), cache_dir=None)
    tables = {a for d in plan.meltano_dags() for a in d.outlets}
    marketing = [(t, {"records_extracted": int(t.startswith("raw_marketing.")), "rows_written": 0}) for t in tables]
    args, changed = project_selection(plan, tables, marketing)
    assert changed == {"raw_marketing.ad_spend", "raw_marketing.campaigns"}
    assert args == ["build", "--select", "source:marketing.ad_spend+", "source:marketing.campaigns+"]
    assert project_selection(plan, tables, [(t, {"records_extracted": 0}) for t in tables]) == (None, set())
    assert project_selection(plan, tables, [(t, {"records_extracted": 3}) for t in tables])[0] == ["build"]


# ------------------------------------------------------------------ real dbt


def _dbt_ls(config, selection: list[str], tmp_path) -> set[str]:
    from orchestrator.runners.dbt import DbtProjectRef, run_dbt

    env = config.profile.environment()
    args = ["ls", "--resource-types", "model", "seed", "snapshot", "test", "--output", "json"]
    result = run_dbt(
        [*args, "--output-keys", "unique_id", *selection],
        env=env,
        project=DbtProjectRef.of(config, env),
        target_path=tmp_path,
    )
    return set(result.listed)


def test_a_day_with_only_crm_rows_lists_only_what_crm_reaches(installed, tmp_path):
    config = _demo("changed")
    core = next(d for d in plan_from_config(config, cache_dir=None).dbt_dags() if d.dag_id == "dbt_core")
    args = list(core.tasks[0].args)
    narrowed = changed_selection(args, core.inputs, {"raw_crm.accounts"}, core.always_build)
    assert narrowed is not None
    whole = _dbt_ls(config, args[1:], tmp_path / "whole")
    chosen = _dbt_ls(config, narrowed[1:], tmp_path / "narrowed")
    manifest = json.loads(config.manifest.read_text())
    children = manifest["child_map"]
    reach: set[str] = set()
    todo = [u for u in children if u.startswith("source.") and u.endswith(".crm.accounts")]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in reach:
                reach.add(c)
                todo.append(c)
    assert chosen and chosen < whole
    models = {u for u in chosen if u.startswith("model.")}
    assert models == {u for u in whole & reach if u.startswith("model.")}
    assert all(u in reach for u in chosen)  # every test listed reads what crm reaches


# ------------------------------------------------------------------ the task, no new rows


class _Outlets(dict):
    def __missing__(self, key):
        self[key] = SimpleNamespace(extra=None)
        return self[key]


def test_a_day_with_no_new_rows_builds_nothing_and_marks_every_event(installed, tmp_path, monkeypatch):
    from orchestrator.airflow import dbt_task

    monkeypatch.setenv("DBT_RUNS_DIR", str(tmp_path))
    config = _demo("changed")
    core = next(d for d in plan_from_config(config, cache_dir=None).dbt_dags() if d.dag_id == "dbt_core")
    ran: list = []
    monkeypatch.setattr(dbt_task, "run_dbt", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(dbt_task, "load_config", lambda *a, **k: config)
    task = core.tasks[0]
    events = {
        name: [SimpleNamespace(asset=SimpleNamespace(name=name), extra={"records_extracted": 0, "rows_written": 0})]
        for name in core.inputs
    }
    outlets = _Outlets()
    context = {
        "dag": SimpleNamespace(dag_id=core.dag_id),
        "task": SimpleNamespace(task_id=task.task_id, outlets=[]),
        "ti": SimpleNamespace(try_number=1, run_id="r1"),
        "run_id": "r1",
        "params": {},
        "triggering_asset_events": events,
        "outlet_events": outlets,
        # the build's own cycle look (cycle_wait.hold_build): every input's latest event names the cycle
        "inlet_events": _Latest("2026-01-02"),
        "dag_run": SimpleNamespace(start_date=None),
    }
    out = dbt_task.dbt_build(
        args=list(task.args),
        relations=dict(task.relations),
        outlets={a: f"uri://{a}" for _, a in task.relations},
        nodes=[*core.models, *core.tests],
        cycle_wait={"inputs": {a: f"uri://{a}" for a in core.inputs}, "timeout_s": 600, "poke_seconds": 60},
        inputs={a: list(s) for a, s in core.inputs.items()},
        always_build=[],
        **context,
    )
    assert ran == []  # dbt never ran
    assert out[NOTHING_NEW] is True
    extras = {asset.name: ev.extra for asset, ev in outlets.items()}
    assert set(extras) == {a for _, a in task.relations}
    assert all(e[NOTHING_NEW] is True and e["cycle"] == "2026-01-02" for e in extras.values())


class _Latest:
    """The Task SDK's `inlet_events`: for any input, its latest event names `cycle`."""

    def __init__(self, cycle: str):
        self.cycle = cycle

    def __getitem__(self, asset):
        return self

    def ascending(self, ascending: bool = True):
        return self

    def limit(self, n: int):
        return [SimpleNamespace(extra={"cycle": self.cycle})]


def test_a_model_that_opts_out_in_dbts_meta_is_an_always_built_root(installed, tmp_path):
    """`meta: {orchestrator: {always_build: true}}` (in its config or its YAML): built on every run."""
    config = _demo("changed")
    manifest = json.loads(config.manifest.read_text())
    uid = next(u for u, n in manifest["nodes"].items() if n["name"] == "stg_campaigns")
    manifest["nodes"][uid]["config"]["meta"] = {"orchestrator": {"always_build": True}}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    dags = {d.dag_id: d for d in plan_from_config(config.with_overrides(manifest=path), cache_dir=None).dbt_dags()}
    assert dags["dbt_marketing"].always_build == ("stg_campaigns",)
    assert all(d.always_build == () for name, d in dags.items() if name != "dbt_marketing")
    args = list(dags["dbt_marketing"].tasks[0].args)
    narrowed = changed_selection(args, dags["dbt_marketing"].inputs, set(), dags["dbt_marketing"].always_build)
    assert narrowed == ["build", "--select", "tag:marketing,stg_campaigns+", "--indirect-selection", "cautious"]
