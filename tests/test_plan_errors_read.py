"""The errors file's read of the plan (`plan_from_config(..., errors_only=True)`, what
dags/plan_errors.py shows on each parse): the same errors as the whole plan, from a fresh build, a
stored entry and a rebuilt one, and only them."""

from __future__ import annotations

from test_plan import SOURCES, model, project, write_manifest  # noqa: F401 - project is a fixture

from orchestrator.config import load_config
from orchestrator.plan import plan_from_config


def test_the_errors_only_read_gives_the_whole_plans_errors(project, tmp_path):  # noqa: F811
    # two tags that make one DAG id: an error that leaves DAGs out (the errors file's own case)
    write_manifest(project.root / "manifest.json", [model("a", ["finance"]), model("b", ["Finance"])], SOURCES)
    config = load_config(project.root / "orchestration.yml").with_overrides(tags=("finance", "Finance"))
    cache = tmp_path / "cache"
    whole = plan_from_config(config, cache_dir=None)
    assert whole.errors and any(e.dags for e in whole.errors)

    built = plan_from_config(config, cache_dir=cache, errors_only=True)  # no entry yet: builds, stores
    (entry,) = cache.glob("plan-*.msgpack")
    stored = entry.read_bytes()
    read = plan_from_config(config, cache_dir=cache, errors_only=True)  # from the entry
    assert built.errors == read.errors == whole.errors
    assert read.dags == [] and read.assets == {} and read.warnings == []  # only the errors
    assert plan_from_config(config, cache_dir=cache) == whole  # the entry is the whole plan's

    entry.write_bytes(stored[: len(stored) // 2])  # torn: rebuilt, and the errors are still read
    assert plan_from_config(config, cache_dir=cache, errors_only=True).errors == whole.errors
    assert entry.read_bytes() == stored
    assert plan_from_config(config, cache_dir=None, errors_only=True).errors == whole.errors
