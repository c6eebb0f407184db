"""The plan cache's entry (orchestrator/plan/cache.py, asset_table.py): a cached plan is the plan a
fresh build gives, on generated projects (bench/gen_dbt_project.py) of every shape (whole-DAG and
per-model tasks, `dbt.build: changed`, forced cycles split into stages, kinds), and on plans whose
Assets, owners and long tuples hypothesis makes up (extras of several shapes, unhashable and
look-alike values, owners of some nodes only)."""

from __future__ import annotations

import gc
import tempfile
import weakref
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_placement import _generator

from orchestrator.config import REPO_ROOT, load_config
from orchestrator.plan import plan_from_config
from orchestrator.plan.asset_table import AssetTable
from orchestrator.plan.cache import _decode, _encode
from orchestrator.plan.model import KINDS, AssetSpec, DbtDag, Issue, Plan, Schedule, TaskSpec


def _same(cached: Plan, fresh: Plan) -> None:
    assert isinstance(cached.assets, AssetTable)
    assert cached.to_dict() == fresh.to_dict()
    assert cached == fresh  # the classes too: DAG kinds, owners, tasks, Assets, warnings
    assert list(cached.assets) == list(fresh.assets)  # the order the plan made them in
    for name in fresh.assets:  # what the renderer reads (render.assets)
        spec = cached.assets[name]
        assert (spec.uri, spec.group, spec.extra) == (
            fresh.assets[name].uri,
            fresh.assets[name].group,
            fresh.assets[name].extra,
        )
        assert cached.uri(name) == fresh.uri(name) and name in cached.assets
    assert "no such Asset" not in cached.assets and len(cached.assets) == len(fresh.assets)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_models=st.integers(20, 160),
    n_tags=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    both_ways=st.sampled_from([0.0, 0.3]),
    granularity=st.sampled_from(["dag", "model"]),
    build=st.sampled_from(["all", "changed"]),
    kinds=st.sampled_from([("dbt",), KINDS, ("alerting",)]),
)
def test_a_cached_generated_plan_is_the_plan_a_fresh_build_gives(
    n_models, n_tags, seed, both_ways, granularity, build, kinds
):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "project"
        _generator().generate(n_models, n_tags, out, seed=seed, both_ways=both_ways)
        config = load_config(REPO_ROOT / "orchestration.yml", "embedded").with_overrides(
            manifest=out / "target" / "manifest.json", tags=tuple(f"domain_{i}" for i in range(n_tags))
        )
        dbt = config.dbt.model_copy(update={"task_granularity": granularity, "build": build})
        config = config.model_copy(update={"dbt": dbt})
        fresh = plan_from_config(config, kinds=kinds, cache_dir=None)
        plan_from_config(config, kinds=kinds, cache_dir=Path(tmp) / "cache")  # builds and stores
        cached = plan_from_config(config, kinds=kinds, cache_dir=Path(tmp) / "cache")  # loads
        _same(cached, fresh)
        if "dbt" in kinds:
            assert any(max(len(d.models), len(d.tests)) >= 8 for d in fresh.dbt_dags())  # stored apart


_TEXT = st.text("abc.", max_size=4)
_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2, 300), _TEXT, st.lists(st.integers(0, 2), max_size=2))
_KEYS = st.sampled_from([(), ("unique_id", "tag"), ("a", "b", "c"), ("a",)])


def _dbt_dag(dag_id: str, tasks: tuple[TaskSpec, ...], **nodes) -> DbtDag:
    """A made-up dbt DAG: these tasks and node fields, the rest fixed."""
    fixed = {"description": "d", "doc_md": "", "tags": ("dbt",), "owner": "o", "tag": None}
    return DbtDag(dag_id=dag_id, schedule=Schedule(assets=("tick",)), tasks=tasks, **{"outlets": (), **fixed, **nodes})


@st.composite
def _plans(draw) -> Plan:
    names = draw(st.lists(st.text("xyz._", min_size=1, max_size=5), unique=True, max_size=30))
    assets: dict[str, AssetSpec] = {}
    for name in names:
        keys = draw(_KEYS)
        assets[name] = AssetSpec(
            draw(_TEXT),
            draw(st.sampled_from(["asset", "staging", "marts"])),
            {k: draw(_VALUE) for k in keys},
            draw(st.none() | _TEXT),
            draw(st.none() | st.just("db")),
        )
    ids = st.lists(st.sampled_from([f"model.p.m{i}" for i in range(40)]), max_size=20)  # repeats, any order
    dags = []
    for i in range(draw(st.integers(0, 3))):
        models, tests = tuple(draw(ids)), tuple(draw(ids))
        outlets = tuple(draw(st.lists(st.sampled_from(names), max_size=12))) if names else ()
        relations = tuple(zip(models, outlets, strict=False))
        task = TaskSpec(
            task_id="dbt_build",
            kind="dbt_build",
            args=("build", "--select", *draw(ids)),
            outlets=draw(st.sampled_from([outlets, tuple(reversed(outlets))])),
            models=draw(st.sampled_from([models, tuple(sorted(models))])),
            relations=relations,
        )
        owners = {u: draw(st.sampled_from(["a@x", "b@x"])) for u in draw(st.lists(st.sampled_from(models or ("x",))))}
        dags.append(
            _dbt_dag(
                f"dbt_{i}",
                (task,),
                outlets=outlets,
                models=models,
                tests=tests,
                # mostly of its own nodes (stored by index); sometimes of others too (stored as is)
                owners=owners if draw(st.booleans()) else {u: o for u, o in owners.items() if u in (*models, *tests)},
            )
        )
    warnings = [Issue("f", "s", "m")] if draw(st.booleans()) else []
    return Plan(dags, assets, warnings, [], "p", {})


@settings(max_examples=100, deadline=None)
@given(_plans())
def test_the_layout_gives_back_any_plan(plan):
    cached = _decode(_encode([], {}, plan), {})
    assert cached is not None
    _same(cached, plan)
    for fresh, back in zip(plan.dbt_dags(), cached.dbt_dags(), strict=True):
        assert back.tasks[0].relations == fresh.tasks[0].relations  # pairs, not a flat tuple
        if fresh.tasks[0].models == fresh.models:  # one tuple for both, as the plan has it
            assert back.tasks[0].models == back.models


@settings(max_examples=60, deadline=None)
@given(_plans(), st.sampled_from(["dag", "task", "task without its plan"]))
def test_a_cached_dbt_dags_node_lists_are_decoded_on_their_first_read(plan, first):
    """What a DAG file renders from is decoded with the plan; the node lists and dbt arguments
    (model.Deferred) only when read, by the DAG or by a task first, even with the plan dropped."""
    cached = _decode(_encode([], {}, plan), {})
    assert cached is not None
    pairs = list(zip(plan.dbt_dags(), cached.dbt_dags(), strict=True))
    for fresh, back in pairs:
        task, fresh_task = back.tasks[0], fresh.tasks[0]
        assert not set(DbtDag.DEFERRED) & back.__dict__.keys()
        assert not set(TaskSpec.DEFERRED) & task.__dict__.keys()
        assert (back.dag_id, back.outlets, back.schedule) == (fresh.dag_id, fresh.outlets, fresh.schedule)
        assert (task.task_id, task.outlets, task.upstream) == (
            fresh_task.task_id,
            fresh_task.outlets,
            fresh_task.upstream,
        )
        assert back.node_counts() == fresh.node_counts() == (len(fresh.models), len(fresh.tests))
    if first == "task without its plan":  # only the tasks kept: the plan and its DAGs are freed
        tasks = [(back.tasks[0], fresh.tasks[0]) for fresh, back in pairs]
        gone = [weakref.ref(back) for _, back in pairs]
        cached = pairs = back = None  # type: ignore[assignment]  # (back: the first loop's last DAG)
        gc.collect()
        assert [ref() for ref in gone] == [None] * len(gone)
        for task, fresh_task in tasks:
            assert (task.args, task.models, task.relations) == (
                fresh_task.args,
                fresh_task.models,
                fresh_task.relations,
            )
            assert "_fill" not in task.__dict__
        return
    for fresh, back in pairs:
        task, fresh_task = back.tasks[0], fresh.tasks[0]
        if first == "task":
            assert (task.args, task.models, task.relations) == (
                fresh_task.args,
                fresh_task.models,
                fresh_task.relations,
            )
            assert "_fill" not in task.__dict__ and "_fill" in back.__dict__
        assert (back.models, back.tests, back.owners) == (fresh.models, fresh.tests, fresh.owners)
        assert (back.inputs, back.always_build) == (fresh.inputs, fresh.always_build)
        assert "_fill" not in back.__dict__
        assert task == fresh_task
        with pytest.raises(AttributeError, match="no_such_field"):
            back.no_such_field  # noqa: B018 - any other missing name is still an AttributeError


def test_a_dbt_dag_of_many_tasks_decodes_its_node_lists_once(monkeypatch):
    """Reading every task of a per-model DAG (the CLI, a plan's equality) decodes the DAG's part
    once, not once per task: at 10,000 models that was 7 s against 0.03 s."""
    from orchestrator.plan import cache

    models = tuple(f"model.p.m{i}" for i in range(50))
    tasks = tuple(
        TaskSpec(
            task_id=f"m{i}",
            kind="dbt_build",
            args=("build", "--select", f"m{i}"),
            models=(u,),
            relations=((u, f"s.m{i}"),),
        )
        for i, u in enumerate(models)
    )
    dag = _dbt_dag("dbt_x", tasks, models=models, owners=dict.fromkeys(models, "a@x"))
    plan = Plan([dag], {}, [], [], "p", {})
    cached = _decode(_encode([], {}, plan), {})
    decodes = []
    real = cache._NODES
    monkeypatch.setattr(
        cache, "_NODES", type("Counting", (), {"decode": lambda self, raw: decodes.append(1) or real.decode(raw)})()
    )
    [back] = cached.dbt_dags()
    assert [(t.args, t.models, t.relations) for t in back.tasks] == [(t.args, t.models, t.relations) for t in tasks]
    assert back.owners == dag.owners and back == dag
    assert len(decodes) == 1
