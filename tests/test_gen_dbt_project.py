"""bench/gen_dbt_project.py: the directly written manifest is the one `dbt parse` writes.

Runs the real dbt (dbt-core 1.11 + dbt-duckdb from the venv) on a generated project of
200 models; the orchestrator-facing fields must agree exactly, and so must every other
field of every node, source, exposure and map (macros aside, which are synthetic).
"""

from __future__ import annotations

import collections
import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gen_dbt_project", REPO / "bench" / "gen_dbt_project.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_dbt_project"] = gen  # dataclasses look their module up
_spec.loader.exec_module(gen)

N_MODELS, N_TAGS = 200, 20


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The project, the direct manifest and dbt's own, for 200 models / 20 domains."""
    out = tmp_path_factory.mktemp("bench_200")
    summary = gen.generate(N_MODELS, N_TAGS, out, seed=42)
    direct = json.loads((out / "target" / "manifest.json").read_text(encoding="utf-8"))
    (out / "target" / "manifest.json").rename(out / "target" / "manifest.direct.json")
    gen.run_dbt_parse(out)
    parsed = json.loads((out / "target" / "manifest.json").read_text(encoding="utf-8"))
    return out, summary, direct, parsed


def _models(manifest):
    return {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}


@pytest.mark.dbt
def test_direct_manifest_agrees_with_dbt_parse(generated):
    _, _, direct, parsed = generated
    d, p = _models(direct), _models(parsed)
    assert len(d) == N_MODELS
    assert set(d) == set(p)
    for uid in d:
        assert d[uid]["tags"] == p[uid]["tags"], uid  # order matters: "first-listed wins"
        assert d[uid]["config"]["tags"] == p[uid]["config"]["tags"], uid
        assert d[uid]["config"]["materialized"] == p[uid]["config"]["materialized"], uid
        assert (d[uid]["schema"], d[uid]["alias"]) == (p[uid]["schema"], p[uid]["alias"]), uid
        assert gen._deps(d[uid]["depends_on"]["nodes"]) == gen._deps(p[uid]["depends_on"]["nodes"]), uid

    def relations(m):
        return {uid: (s["database"], s["schema"], s["identifier"]) for uid, s in m["sources"].items()}

    assert relations(direct) == relations(parsed)
    assert gen.compare_manifests(direct, parsed) == []


@pytest.mark.dbt
def test_direct_manifest_agrees_field_by_field(generated):
    _, _, direct, parsed = generated
    assert gen.compare_manifests(direct, parsed, full=True) == []
    assert (
        direct["metadata"]["dbt_schema_version"]
        == parsed["metadata"]["dbt_schema_version"]
        == "https://schemas.getdbt.com/dbt/manifest/v12.json"
    )
    assert list(direct) == list(parsed)  # the same top-level keys, in order
    # synthetic macros, but as many and about as large as dbt's + dbt-duckdb's
    assert abs(len(direct["macros"]) - len(parsed["macros"])) < 0.1 * len(parsed["macros"])

    def size(m):
        return len(json.dumps(m["macros"]))

    assert 0.7 < size(direct) / size(parsed) < 1.3


@pytest.mark.dbt
def test_compare_detects_differences(generated):
    _, _, direct, parsed = generated
    uid = next(u for u, n in _models(direct).items() if len(n["tags"]) > 1)
    swapped = copy.deepcopy(direct)
    swapped["nodes"][uid]["tags"].reverse()
    assert any("tags" in line for line in gen.compare_manifests(swapped, parsed))
    missing = copy.deepcopy(direct)
    del missing["sources"][next(iter(missing["sources"]))]
    assert gen.compare_manifests(missing, parsed)


@pytest.mark.dbt
def test_project_is_realistic(generated):
    _, summary, direct, _ = generated
    models = _models(direct)
    layer = collections.Counter(n["fqn"][1] for n in models.values())
    assert layer["staging"] == N_MODELS // 10 and layer["intermediate"] == 3 * N_MODELS // 10
    mat = collections.Counter(n["config"]["materialized"] for n in models.values())
    assert {"view", "table", "incremental", "ephemeral"} <= set(mat)
    assert 0.02 < mat["ephemeral"] / N_MODELS < 0.10

    def domain(n):
        return int(n["fqn"][2].removeprefix("domain_"))

    domain_tags = [[t for t in n["tags"] if t.startswith("domain_")] for n in models.values()]
    assert all(tags and tags[0] == n["fqn"][2] for tags, n in zip(domain_tags, models.values(), strict=False))
    assert 0.02 <= sum(len(t) == 2 for t in domain_tags) / N_MODELS <= 0.04
    assert {n["meta"]["owner"] for n in models.values()} >= {"core-data@example.com"}
    assert len({domain(n) for n in models.values()}) == N_TAGS
    cross = 0
    for n in models.values():
        deps = n["depends_on"]["nodes"]
        assert 1 <= len(deps) <= 4
        if n["fqn"][1] == "staging":
            assert all(d.startswith("source.") for d in deps)
            assert all(direct["sources"][d]["schema"] == "raw_" + direct["sources"][d]["source_name"] for d in deps)
        for dep in deps:
            if dep.startswith("model."):
                assert domain(models[dep]) <= domain(n)  # domains only read lower domains: no cycle
                cross += domain(models[dep]) != domain(n)
    assert cross > 0
    tests = [n for n in direct["nodes"].values() if n["resource_type"] == "test"]
    assert 2 <= summary["tests"] / N_MODELS <= 3.5
    assert {t["test_metadata"]["name"] for t in tests} == {"unique", "not_null", "relationships", "accepted_values"}
    assert any(n["config"]["alias"] for n in models.values())
    assert {n["schema"] for n in models.values()} == {"staging", "intermediate", "marts"}
    assert direct["disabled"] and direct["exposures"] and direct["selectors"]


def test_generation_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    gen.generate(120, 5, a, seed=3)
    gen.generate(120, 5, b, seed=3)
    gen.generate(120, 5, c, seed=4)

    def read(d):
        return (d / "target" / "manifest.json").read_bytes()

    assert read(a) == read(b) != read(c)

    def files(d):
        return {p.relative_to(d): p.read_bytes() for p in (d / "models").rglob("*") if p.is_file()}

    assert files(a) == files(b)


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: precious\n")
    with pytest.raises(SystemExit):
        gen.generate(10, 2, tmp_path)
    assert (tmp_path / "dbt_project.yml").read_text() == "name: precious\n"
