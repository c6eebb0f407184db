"""Lineage-aware placement of dbt nodes in DAGs: the invariants of tests/plan_invariants.py on the
six real manifests vendored in tests/data/manifests with realistic tag sets, and on generated manifests
(hypothesis); the rules one by one on small hand-made graphs."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_invariants import check

from orchestrator.config import OrchestrationConfig
from orchestrator.plan.dbt_plan import plan_dbt
from orchestrator.plan.dbt_wiring import orchestration_tags
from orchestrator.plan.manifest import DbtProject, load_manifest, parse_manifest
from orchestrator.plan.relations import Loaded, qualified
from orchestrator.plan.translator import load_translator

REAL_MANIFESTS = Path(__file__).resolve().parent / "data" / "manifests"  # vendored: tests/data/README.md
V12 = "https://schemas.getdbt.com/dbt/manifest/v12.json"
PROFILE = {"meltano_environment": "dev", "loader": "target-x", "dbt_target": "x", "extractors": ["tap-x"]}


def config(tags=(), mode: str = "multi", catch_all: bool = True, on_forced_cycle: str = "split") -> OrchestrationConfig:
    dbt = {"tags": list(tags), "mode": mode, "catch_all": {"enabled": catch_all}, "on_forced_cycle": on_forced_cycle}
    return OrchestrationConfig.of({"dbt": dbt, "profiles": {"p": PROFILE}}, Path("orchestration.yml"), "p")


def produced_sources(project: DbtProject) -> dict[str, str]:
    """As if Meltano loaded every source the project does not build itself (the same database,
    schema and name), into the source's database: `database.schema.table` -> the Meltano DAG."""
    built = {qualified(n.database, n.relation) for n in project.buildable if n.relation}
    ids = {qualified(s.database, s.relation) for s in project.sources.values()}
    return {i: "meltano_x" for i in ids if i not in built}


def loaded_of(produced: dict[str, str]) -> Loaded:
    """`database.schema.table` (or `schema.table`: an unknown database) -> DAG, as Meltano's Assets."""
    tables = []
    for ident, dag in produced.items():
        db, rel = (ident.split(".", 1)[0], ident.split(".", 1)[1]) if ident.count(".") == 2 else (None, ident)
        tables.append((db, rel, rel, dag))
    return Loaded.of(None, tables)


def plan_and_check(project: DbtProject, cfg: OrchestrationConfig, produced: dict[str, str] | None = None):
    produced = produced_sources(project) if produced is None else produced
    part, placed = plan_dbt(cfg, project, loaded_of(produced), load_translator(cfg))
    dags, warnings, errors = part.dags, part.warnings, part.errors
    node_tags = {
        n.unique_id: orchestration_tags(cfg, n.tags) for n in project.buildable if n.materialized != "ephemeral"
    }
    if cfg.dbt.mode == "monolith":
        node_tags = {u: [] for u in node_tags}
    violations = check(
        project, dags, errors, node_tags, set(produced), catch_all=cfg.dbt.catch_all.enabled, warnings=warnings
    )
    return dags, warnings, errors, placed, violations


# ----------------------------------------------------------------------- real manifests

MANIFESTS = {
    "mattermost": "mattermost_*.json.gz",
    "gitlab": "gitlab-*.json.gz",
    "tuva": "tuva_*.json.gz",
    "calitp": "calitp_*.json.gz",
    "flipside": "flipside_*.json.gz",
    "jaffle_shop": "cosmos_*.json.gz",
}
TAG_SETS = {  # besides each manifest's 20 most frequent tags ("top")
    "mattermost": {
        "cadence": ["nightly", "hourly"],
        "layer": ["staging", "intermediate", "marts"],
        "cadence_then_layer": ["hourly", "nightly", "staging", "intermediate", "marts"],
    },
    "gitlab": {"product_daily": ["product", "daily"], "daily_product": ["daily", "product"]},
    "tuva": {
        "domains": [
            "claims_preprocessing",
            "encounters",
            "service_category_grouper",
            "core",
            "financial_pmpm",
            "cms_hcc",
            "readmissions",
            "quality_measures",
            "terminology",
        ],
        "quality": ["data_quality", "dq", "dq2", "dq_analytics"],
    },
    "calitp": {},
    "flipside": {},
    "jaffle_shop": {},
}
_loaded: dict[str, DbtProject] = {}


def real(name: str) -> DbtProject:
    if name not in _loaded:
        found = sorted(REAL_MANIFESTS.glob(MANIFESTS[name]))
        # Vendored in the repo: a missing manifest is a failure, not a skip.
        assert found, f"{REAL_MANIFESTS}/{MANIFESTS[name]} not found (vendored: tests/data/README.md)"
        _loaded[name] = load_manifest(found[0])
    return _loaded[name]


def top_tags(project: DbtProject, n: int = 20) -> list[str]:
    counts = Counter(t for node in project.buildable for t in node.tags)
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


CASES = [(m, "top") for m in MANIFESTS] + [(m, s) for m, sets in TAG_SETS.items() for s in sets]


@pytest.mark.parametrize("name, tag_set", CASES)
def test_real_manifests_keep_every_invariant(name, tag_set):
    project = real(name)
    tags = top_tags(project) if tag_set == "top" else TAG_SETS[name][tag_set]
    t0 = time.process_time()  # CPU, not wall: a loaded machine must not fail a speed bound
    dags, warnings, errors, placed, violations = plan_and_check(project, config(tags))
    elapsed = time.process_time() - t0
    assert violations == [], "\n".join(violations[:20])
    assert errors == [], [str(e) for e in errors]  # none of these tag sets forces a cycle
    assert dags, "every manifest has nodes to build"
    # A guard against a blow-up (a quadratic scan took minutes once), not a speed claim: a loaded
    # 2-core machine inflates even CPU time, and the budget lives in bench/plan_time.py.
    assert elapsed < 20, f"plan took {elapsed:.2f}s of CPU"
    # every rule-placed node is explained
    assert all(p["reason"] and p["rule"] for p in placed.values())


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_real_manifests_in_monolith_mode(name):
    dags, _, errors, _, violations = plan_and_check(real(name), config(mode="monolith"))
    assert violations == [] and errors == []
    assert [d.dag_id for d in dags] == ["dbt_all"]


def test_mattermost_untagged_intermediates_after_hourly_get_a_second_stage():
    """The case that used to be a false cycle: one catch-all cannot hold both the untagged seed an
    hourly model reads and the untagged models that read hourly models."""
    dags, _, errors, placed, violations = plan_and_check(real("mattermost"), config(["nightly", "hourly"]))
    assert violations == [] and errors == []
    ids = {d.dag_id for d in dags}
    assert {"dbt_nightly", "dbt_hourly", "dbt_untagged"} <= ids
    stages = Counter(p["dag_id"] for p in placed.values() if p["rule"] == "catch_all")
    assert stages, placed
    for dag_id in stages:
        assert dag_id == "dbt_untagged" or dag_id.startswith("dbt_untagged_")


# ----------------------------------------------------------------------- small graphs, one rule each


def model(name, tags=(), deps=(), materialized="table", rtype="model", schema="analytics"):
    return {
        "unique_id": f"{rtype}.p.{name}",
        "resource_type": rtype,
        "name": name,
        "package_name": "p",
        "schema": schema,
        "alias": name,
        "tags": list(tags),
        "config": {"materialized": materialized},
        "depends_on": {"nodes": list(deps)},
        "original_file_path": f"models/{name}.sql",
        "fqn": ["p", name],
    }


def dtest(name, deps, tags=()):
    return {
        "unique_id": f"test.p.{name}",
        "resource_type": "test",
        "name": name,
        "package_name": "p",
        "tags": list(tags),
        "config": {"materialized": "test"},
        "depends_on": {"nodes": list(deps)},
        "fqn": ["p", name],
    }


def source(table, schema="raw"):
    return {
        "unique_id": f"source.p.raw.{table}",
        "name": table,
        "source_name": "raw",
        "schema": schema,
        "identifier": table,
    }


def manifest(nodes, sources=()) -> DbtProject:
    raw = {
        "metadata": {"dbt_schema_version": V12},
        "nodes": {n["unique_id"]: n for n in nodes},
        "sources": {s["unique_id"]: s for s in sources},
    }
    return parse_manifest(json.dumps(raw).encode())


def m(name):
    return f"model.p.{name}"


def test_ephemeral_models_belong_to_no_dag_and_pass_on_what_they_read():
    project = manifest(
        [
            model("a", ["x"]),
            model("e", ["y"], [m("a")], materialized="ephemeral"),  # tagged y, read by x only
            model("b", ["x"], [m("e")]),
            model("c", ["y"]),
        ]
    )
    dags, _, errors, _, violations = plan_and_check(project, config(["x", "y"]))
    assert violations == [] and errors == []
    by_id = {d.dag_id: d for d in dags}
    assert by_id["dbt_y"].schedule.assets == ("tick",)  # e's read of a counts for no DAG of y
    assert m("e") not in by_id["dbt_y"].models and m("e") not in by_id["dbt_x"].models


def test_untagged_node_between_two_nodes_of_a_tag_joins_it():
    project = manifest([model("a", ["x"]), model("u", [], [m("a")]), model("b", ["x"], [m("u")])])
    dags, _, errors, placed, violations = plan_and_check(project, config(["x"]))
    assert violations == [] and errors == []
    assert [d.dag_id for d in dags] == ["dbt_x"]
    assert placed[m("u")]["rule"] == "joins_tag" and placed[m("u")]["dag_id"] == "dbt_x"
    assert "between models of dbt_x" in placed[m("u")]["reason"]


def test_catch_all_splits_in_stages_around_a_tag_dag():
    project = manifest(
        [
            model("seed_codes", rtype="seed"),
            model("h", ["hourly"], ["seed.p.seed_codes"]),
            model("after", [], [m("h")]),
            model("n", ["nightly"], [m("after")]),
            model("last", [], [m("n")]),
        ]
    )
    dags, _, errors, placed, violations = plan_and_check(project, config(["nightly", "hourly"]))
    assert violations == [] and errors == []
    assert placed["seed.p.seed_codes"]["dag_id"] == "dbt_untagged"
    assert placed[m("after")]["dag_id"] == "dbt_untagged_2"
    assert placed[m("last")]["dag_id"] == "dbt_untagged_3"
    by_id = {d.dag_id: d for d in dags}
    assert by_id["dbt_hourly"].schedule.assets == ("analytics.seed_codes",)
    assert by_id["dbt_untagged_2"].schedule.assets == ("analytics.h",)


def test_two_untagged_groups_that_need_no_stage_share_one_catch_all():
    project = manifest([model("s1", rtype="seed"), model("a", ["x"], ["seed.p.s1"]), model("u", [], [m("a")])])
    dags, _, errors, placed, violations = plan_and_check(project, config(["x"]))
    assert violations == [] and errors == []
    assert placed["seed.p.s1"]["dag_id"] == "dbt_untagged" and placed[m("u")]["dag_id"] == "dbt_untagged_2"
    project = manifest([model("s1", rtype="seed"), model("a", ["x"]), model("u", [], [m("a")])])
    _, _, _, placed, _ = plan_and_check(project, config(["x"]))
    assert placed["seed.p.s1"]["dag_id"] == placed[m("u")]["dag_id"] == "dbt_untagged"


def test_a_multi_tag_node_takes_the_first_tag_that_keeps_the_plan_acyclic():
    # b carries x and y; in x it would make dbt_x both before and after dbt_y (a is y, c is x).
    project = manifest(
        [model("a", ["y"]), model("b", ["x", "y"], [m("a")]), model("c", ["y"], [m("b")]), model("d", ["x"], [m("c")])]
    )
    dags, warnings, errors, placed, violations = plan_and_check(project, config(["x", "y"]))
    assert violations == [] and errors == []
    assert placed[m("b")]["dag_id"] == "dbt_y" and placed[m("b")]["rule"] == "multi_tag"
    assert any(w.subject == m("b") and "dbt_y" in w.message for w in warnings)


FORCED = [
    model("f1", ["finance"]),
    model("k1", ["marketing"], [m("f1")]),
    model("f2", ["finance"], [m("k1")]),
    model("c1", ["core"]),
]


def test_with_on_forced_cycle_error_a_forced_cycle_is_an_error_naming_the_path_and_the_fix():
    project = manifest(FORCED)
    cfg = config(["core", "finance", "marketing"], on_forced_cycle="error")
    dags, _, errors, _, violations = plan_and_check(project, cfg)
    assert violations == []
    assert len(errors) == 1
    e = errors[0]
    assert set(e.dags) == {"dbt_finance", "dbt_marketing"}
    assert "model.p.f1 (dbt_finance) -> model.p.k1 (dbt_marketing) -> model.p.f2 (dbt_finance)" in e.message
    assert "on model.p.k1: add the tag `finance` (or remove `marketing`)" in e.message and "monolith" in e.message
    assert "dbt_core" in {d.dag_id for d in dags}


def test_the_cycle_error_subject_names_the_chain_it_cites():
    """The subject used to be the shortest cycle through the alphabetically first DAG, which could
    be another pair of DAGs than the node chain of the message."""
    project = manifest(
        [
            model("a1", ["a"]),
            model("b1", ["b"], [m("a1")]),
            model("c1", ["c"], [m("b1")]),
            model("c2", ["c"]),
            model("d1", ["d"], [m("c2")]),
            model("c3", ["c"], [m("d1")]),
            model("b2", ["b"], [m("c1")]),
            model("a2", ["a"], [m("b2")]),
        ]
    )
    _, _, errors, _, _ = plan_and_check(project, config(["a", "b", "c", "d"], on_forced_cycle="error"))
    (e,) = errors
    chain = e.message.split("forced by the tags of the models on it: ")[1].split(". Smallest fix")[0]
    dags = [hop.rsplit(" (", 1)[1].rstrip(")") for hop in chain.split(" -> ")]
    cited = [d for i, d in enumerate(dags) if i == 0 or d != dags[i - 1]]
    assert e.subject == " -> ".join(cited), (e.subject, chain)


def test_a_forced_cycle_splits_the_tag_into_stages_each_scheduled_on_what_it_reads():
    project = manifest(FORCED)
    dags, warnings, errors, placed, violations = plan_and_check(project, config(["core", "finance", "marketing"]))
    assert violations == [] and errors == []
    by_id = {d.dag_id: d for d in dags}
    assert set(by_id) == {"dbt_core", "dbt_finance", "dbt_finance_2", "dbt_marketing"}
    assert by_id["dbt_finance"].models == (m("f1"),) and by_id["dbt_finance"].schedule.assets == ("tick",)
    assert by_id["dbt_marketing"].schedule.assets == ("analytics.f1",)
    assert by_id["dbt_finance_2"].models == (m("f2"),) and by_id["dbt_finance_2"].schedule.assets == ("analytics.k1",)
    assert by_id["dbt_finance_2"].tag == "finance" and "stage 2 of 2" in by_id["dbt_finance_2"].description
    assert "tag:finance" not in by_id["dbt_finance"].tasks[0].args  # tag:finance would select f2 too
    (w,) = [w for w in warnings if "cycle between dbt DAGs" in w.message]
    assert w.subject == "dbt_finance -> dbt_marketing -> dbt_finance"
    assert (
        "dbt_finance into 2 stages (dbt_finance_2 after reads model.p.f1 -> model.p.k1, model.p.k1 -> model.p.f2)"
        in (w.message)
    )
    assert "on model.p.k1: add the tag `finance` (or remove `marketing`)" in w.message
    assert placed[m("f2")]["rule"] == "tag_stage" and placed[m("f2")]["dag_id"] == "dbt_finance_2"


def test_unrelated_nodes_of_two_tags_reading_each_other_split_one_tag_only():
    # a1 -> b1 and b2 -> a2: no node path is a cycle, the DAG graph is; three DAGs suffice
    project = manifest(
        [model("a1", ["a"]), model("b1", ["b"], [m("a1")]), model("b2", ["b"]), model("a2", ["a"], [m("b2")])]
    )
    dags, warnings, errors, _, violations = plan_and_check(project, config(["a", "b"]))
    assert violations == [] and errors == []
    assert len(dags) == 3
    (w,) = [w for w in warnings if "cycle between dbt DAGs" in w.message]
    assert "model.p.b1 (dbt_b) reads model.p.a1 (dbt_a)" in w.message
    assert "on model.p.a2: add the tag `b` (or remove `a`), so it joins dbt_b" in w.message
    fixed = manifest(
        [model("a1", ["a"]), model("b1", ["b"], [m("a1")]), model("b2", ["b"]), model("a2", ["b"], [m("b2")])]
    )
    dags, warnings, errors, _, violations = plan_and_check(fixed, config(["a", "b"]))
    assert violations == [] and errors == [] and len(dags) == 2  # the fix avoids the split


def test_a_split_stage_named_like_another_tags_dag_is_an_error():
    project = manifest([*FORCED, model("x", ["finance_2"])])
    _, _, errors, _, _ = plan_and_check(project, config(["core", "finance", "marketing", "finance_2"]))
    assert any(e.subject == "dbt_finance_2" and "rename that tag" in e.message for e in errors)


def test_tests_run_in_the_dag_after_all_their_parents():
    project = manifest(
        [
            model("a", ["x"]),
            model("b", ["y"], [m("a")]),
            model("c", ["z"]),
            dtest("rel_b_a", [m("b"), m("a")]),
            dtest("rel_b_c", [m("b"), m("c")]),
            model("d", ["w"], [m("b"), m("c")]),
            dtest("nn_a", [m("a")], tags=["y"]),
        ]
    )
    dags, warnings, errors, _, violations = plan_and_check(project, config(["w", "x", "y", "z"]))
    assert violations == [] and errors == []
    by_id = {d.dag_id: d for d in dags}
    assert "test.p.rel_b_a" in by_id["dbt_y"].tests
    assert "test.p.rel_b_c" in by_id["dbt_w"].tests  # y and z unrelated: the first DAG after both
    # nn_a carries the tag y: `tag:y` would run it in dbt_y too, so dbt_y names its nodes instead
    assert "tag:y" not in by_id["dbt_y"].tasks[0].args


def test_reading_a_source_that_a_dbt_node_builds_waits_for_that_node():
    project = manifest(
        [
            model("snap", ["x"], rtype="snapshot", materialized="snapshot", schema="snapshots"),
            model("r", ["y"], ["source.p.raw.snap"]),
        ],
        [source("snap", "snapshots")],
    )
    dags, _, errors, _, violations = plan_and_check(project, config(["x", "y"]))
    assert violations == [] and errors == []
    assert {d.dag_id: d for d in dags}["dbt_y"].schedule.assets == ("snapshots.snap",)


# ----------------------------------------------------------------------- property-based

TAGS = ["a", "b", "c"]


@st.composite
def manifests(draw):
    n = draw(st.integers(1, 12))
    nodes, sources = [], [source(f"s{i}") for i in range(3)]
    for i in range(n):
        rtype = draw(st.sampled_from(["model"] * 6 + ["seed", "snapshot"]))
        deps = (
            []
            if rtype == "seed"
            else sorted(
                set(
                    draw(st.lists(st.sampled_from([f"n{j}" for j in range(i)] + ["src0", "src1", "src2"]), max_size=3))
                    if i
                    else draw(st.lists(st.sampled_from(["src0", "src1", "src2"]), max_size=2))
                )
            )
        )
        resolved = []
        for dep in deps:
            if dep.startswith("src"):
                resolved.append(f"source.p.raw.s{dep[3:]}")
            else:
                resolved.append(next(x["unique_id"] for x in nodes if x["name"] == dep))
        materialized = draw(st.sampled_from(["table", "view", "ephemeral"])) if rtype == "model" else rtype
        tags = draw(st.lists(st.sampled_from(TAGS + ["other"]), max_size=3, unique=True))
        nodes.append(model(f"n{i}", tags, resolved, materialized=materialized, rtype=rtype))
    for k in range(draw(st.integers(0, 4))):
        targets = draw(st.lists(st.sampled_from([x["unique_id"] for x in nodes]), min_size=1, max_size=2, unique=True))
        nodes.append(dtest(f"t{k}", targets, tags=draw(st.lists(st.sampled_from(TAGS), max_size=1))))
    order = draw(st.permutations(TAGS))
    produced = draw(st.sets(st.sampled_from(["raw.s0", "raw.s1", "raw.s2"])))
    return manifest(nodes, sources), list(order), {r: "meltano_x" for r in produced}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_invariants_hold_on_generated_manifests(case):
    project, tags, produced = case
    *_, violations = plan_and_check(project, config(tags), produced)
    assert violations == [], violations


@settings(max_examples=100, deadline=None)
@given(manifests())
def test_invariants_hold_with_the_catch_all_off_and_in_monolith_mode(case):
    project, tags, produced = case
    *_, violations = plan_and_check(project, config(tags, catch_all=False), produced)
    assert violations == [], violations
    *_, violations = plan_and_check(project, config(tags, mode="monolith"), produced)
    assert violations == [], violations


@st.composite
def both_ways(draw):
    """Mostly single-tag nodes reading any earlier node: tags reference each other both ways, so
    most of these force cycles between tag DAGs."""
    n = draw(st.integers(2, 30))
    nodes = []
    for i in range(n):
        deps = sorted(set(draw(st.lists(st.integers(0, i - 1), max_size=3)))) if i else []
        rtype = "seed" if not deps and draw(st.booleans()) else "model"
        materialized = draw(st.sampled_from(["table"] * 5 + ["view", "ephemeral"])) if rtype == "model" else rtype
        tags = draw(st.sampled_from([["a"], ["b"], ["c"], ["d"], [], ["a", "b"]]))
        resolved = [nodes[j]["unique_id"] for j in deps]
        nodes.append(model(f"n{i}", tags, resolved, materialized=materialized, rtype=rtype))
    for k in range(draw(st.integers(0, 4))):
        targets = draw(st.lists(st.sampled_from([x["unique_id"] for x in nodes]), min_size=1, max_size=2, unique=True))
        nodes.append(dtest(f"t{k}", targets))
    return manifest(nodes), list(draw(st.permutations(["a", "b", "c", "d"])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(both_ways(), st.booleans())
def test_forced_cycles_split_into_stages_keep_every_invariant(case, catch_all):
    """Split (the default), every project renders whole: no error, every invariant, and a tag is
    split only when a forced cycle runs through its DAG."""
    project, tags = case
    dags, warnings, errors, _, violations = plan_and_check(project, config(tags, catch_all=catch_all))
    assert violations == [], violations
    assert errors == [], [str(e) for e in errors]
    split = [w for w in warnings if "cycle between dbt DAGs" in w.message]  # invariant 1: iff forced
    on_cycles = {d for w in split for d in w.subject.split(" -> ")}
    for d in dags:
        if d.tag and d.dag_id != f"dbt_{d.tag}":  # a later stage: only of a tag on a forced cycle
            assert f"dbt_{d.tag}" in on_cycles or any(f"dbt_{d.tag} into" in w.message for w in split), d.dag_id


def _generator():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / "gen_dbt_project.py"
    spec = importlib.util.spec_from_file_location("gen_dbt_project", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_dbt_project", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n_models, share", [(400, 0.3), (1000, 0.5)])
def test_generated_projects_whose_domains_reference_each_other_both_ways_render_every_model(tmp_path, n_models, share):
    """bench/gen_dbt_project.py --both-ways: refs cross domains in both directions (t15 -> t05 -> t15),
    which forces cycles between the domain DAGs. Split, every model is built and every invariant holds;
    with on_forced_cycle: error, the cycle is reported as before."""
    _generator().generate(n_models, 20, tmp_path, seed=7, both_ways=share)
    project = load_manifest(tmp_path / "target" / "manifest.json")
    tags = sorted({t for n in project.buildable for t in n.tags if t.startswith("domain_")}, key=lambda t: int(t[7:]))
    *_, errors, _, violations = plan_and_check(project, config(tags, on_forced_cycle="error"))
    assert violations == [] and any("cycle between dbt DAGs" in e.message for e in errors)
    dags, warnings, errors, placed, violations = plan_and_check(project, config(tags))
    assert violations == [] and errors == [], violations[:5] or [str(e) for e in errors]
    assert any("Split into stages" in w.message for w in warnings)
    assert len(dags) > len(tags)  # some tags run in stages
    built = {u for d in dags for u in d.models}
    assert built == {n.unique_id for n in project.buildable if n.materialized != "ephemeral"}
    assert all(p["reason"] for p in placed.values() if p["rule"] == "tag_stage")


def test_the_invariant_checker_itself_catches_violations():
    """The checker must be able to fail: tamper with a correct plan, one invariant at a time."""
    project = manifest([model("a", ["x"]), model("b", ["y"], [m("a")]), dtest("rel_b_a", [m("b"), m("a")])])
    cfg = config(["x", "y"])
    part, _ = plan_dbt(cfg, project, {}, load_translator(cfg))
    node_tags = {"model.p.a": ["x"], "model.p.b": ["y"]}
    assert check(project, part.dags, [], node_tags, set()) == []
    x, y = (next(d for d in part.dags if d.dag_id == i) for i in ("dbt_x", "dbt_y"))
    wrong_schedule = replace(y, schedule=replace(y.schedule, assets=("tick",)))
    assert any(v.startswith("5:") for v in check(project, [x, wrong_schedule], [], node_tags, set()))
    both = replace(
        y, tasks=(replace(y.tasks[0], args=("build", "--select", "a", "b", "--indirect-selection", "cautious")),)
    )
    found = check(project, [x, both], [], node_tags, set())
    assert any(v.startswith("2: model.p.a is built by") for v in found)
    no_test = replace(
        x, tasks=(replace(x.tasks[0], args=("build", "--select", "a", "--indirect-selection", "cautious")),)
    )
    lost = replace(y, tasks=(replace(y.tasks[0], args=("build", "--select", "b", "--indirect-selection", "cautious")),))
    assert "6: test.p.rel_b_a runs in no DAG" in check(project, [no_test, lost], [], node_tags, set())
    swapped = check(project, [x, y], [], {"model.p.a": ["y"], "model.p.b": ["y"]}, set())
    assert any(v.startswith("3: model.p.a") for v in swapped)
    assert check(project, [], [], {"model.p.a": ["x"], "model.p.b": ["x"], "c": []}, set())  # nothing built


# ------------------------------------------------- tests handled a node at a time (DbtGraph.only_tests)


@st.composite
def projects_with_tests(draw):
    """Models (some ephemeral, some owned, one snapshot on a declared source's relation) and tests of
    every shape dbt makes and a few it does not: of one node, of two, of a source, of an ephemeral
    model, of a node twice, of a node the manifest lacks, tagged or not."""
    n = draw(st.integers(1, 10))
    sources = [source(f"s{i}") for i in range(3)]
    nodes: list[dict] = []
    for i in range(n):
        deps = draw(st.lists(st.sampled_from([nodes[j]["unique_id"] for j in range(i)] or [None]), max_size=2))
        deps = sorted({d for d in deps if d}) + draw(
            st.lists(st.sampled_from([s["unique_id"] for s in sources]), max_size=1)
        )
        rtype = "snapshot" if i == 0 and draw(st.booleans()) else "model"
        node = model(
            f"n{i}",
            draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True)),
            deps,
            rtype=rtype,
            materialized=draw(st.sampled_from(["table", "table", "view", "ephemeral"])) if rtype == "model" else rtype,
            schema="raw" if rtype == "snapshot" else "analytics",
        )
        if rtype == "snapshot":
            node["alias"] = "s0"  # the relation of the source raw.s0: that source is a read of this node
        if draw(st.booleans()):
            node["meta"] = {"owner": draw(st.sampled_from(["ana", "bo"]))}
        nodes.append(node)
    targets = [x["unique_id"] for x in nodes] + [s["unique_id"] for s in sources] + ["model.p.gone"]
    for k in range(draw(st.integers(0, 8))):
        deps = draw(st.lists(st.sampled_from(targets), min_size=1, max_size=3))
        nodes.append(dtest(f"t{k}", deps, tags=draw(st.lists(st.sampled_from(TAGS), max_size=1))))
    return manifest(nodes, sources), list(draw(st.permutations(TAGS)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(projects_with_tests(), st.sampled_from(["dag", "model"]))
def test_tests_grouped_by_their_node_are_placed_selected_and_owned_as_one_by_one(case, granularity):
    """The graph groups the tests of one built node (most tests) to handle them a node at a time: every
    test is in exactly one group or in `other_tests`; each test runs in the DAG of all its parents;
    its owners are those of the nodes it reads; and every invariant holds (each DAG's selection,
    re-implemented from dbt's cautious indirect selection, is exactly its nodes and tests)."""
    from orchestrator.plan.dbt_graph import build_graph

    project, tags = case
    graph = build_graph(project)
    grouped = [t for ts in graph.only_tests.values() for t in ts]
    assert sorted(grouped + list(graph.other_tests)) == sorted(t.unique_id for t in project.tests)
    for node, ts in graph.only_tests.items():
        assert node in graph.built
        assert all(set(project.nodes[t].depends_on) == {node} and graph.test_parents[t] == (node,) for t in ts)
    cfg = config(tags)
    cfg = cfg.model_copy(update={"dbt": cfg.dbt.model_copy(update={"task_granularity": granularity})})
    dags, _, errors, _, violations = plan_and_check(project, cfg)
    assert violations == [], violations
    owner = {n.unique_id: n.owner for n in project.buildable}
    for d in dags:
        for t in d.tests:  # a tests-only DAG: the owners of the built nodes the test reads
            tested_nodes = project.nodes[t].depends_on if d.models else graph.test_parents[t]
            tested = sorted({o for p in tested_nodes if (o := owner.get(p))})
            assert d.owners.get(t) == (", ".join(tested) or None), (t, d.dag_id)


def test_a_resource_type_the_fast_decode_does_not_know_is_read_the_plain_way():
    """parse_manifest decodes each node by its resource_type (a test skips a relation's fields); a
    type it has no class for (an old dbt's `rpc`, a future one) falls back to the plain decode:
    the same nodes. A value of the wrong type is still refused, naming where."""
    from orchestrator.plan.manifest import ManifestError

    nodes = [model("a", ["x"]), model("s", rtype="seed", materialized="seed"), dtest("t", [m("a")], tags=["x"])]
    odd = {**model("r"), "unique_id": "rpc.p.r", "resource_type": "rpc"}
    fast, plain = manifest(nodes), manifest([*nodes, odd])
    assert plain.nodes == fast.nodes and list(plain.nodes) == ["model.p.a", "seed.p.s", "test.p.t"]
    assert fast.nodes["test.p.t"].resource_type == "test" and fast.nodes["seed.p.s"].relation == "analytics.s"
    with pytest.raises(ManifestError, match=r"does not look like a dbt manifest: Expected `array`.*\$\.nodes"):
        manifest([{**model("b"), "tags": "x"}])


def test_a_name_two_nodes_share_selects_each_by_its_fqn():
    """`dbt --select orders` would select both packages' `orders`: the plan names each by its fqn,
    kept undecoded by parse_manifest and decoded for those nodes alone. Every other node keeps its
    bare name, and each DAG still selects exactly its nodes."""
    a = model("orders", ["x"])
    b = {
        **model("orders", ["y"], schema="other"),
        "unique_id": "model.other.orders",
        "package_name": "other",
        "fqn": ["other", "marts", "orders"],
    }
    c = model("customers", ["y"], [m("orders")])
    project = manifest([a, b, c, dtest("orders_check", [m("orders")])])
    assert [project.nodes[u].selector for u in ("model.p.orders", "model.other.orders", "model.p.customers")] == [
        "p.orders",
        "other.marts.orders",
        "customers",
    ]
    assert project.nodes["test.p.orders_check"].selector == "orders_check"
    dags, _, errors, _, violations = plan_and_check(project, config(["x", "y"]))
    assert violations == [] and errors == []
    per_model = config(["x", "y"])
    per_model = per_model.model_copy(update={"dbt": per_model.dbt.model_copy(update={"task_granularity": "model"})})
    dags, _, errors, _, violations = plan_and_check(project, per_model)
    assert violations == [] and errors == []
    assert {"p.orders", "other.marts.orders", "customers"} <= {a for d in dags for t in d.tasks for a in t.args}
