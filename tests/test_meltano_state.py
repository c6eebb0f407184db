"""Meltano state operations, against real Meltano on an isolated system database.

Every Meltano call costs ~2 s, so one module-scoped database is seeded once and
shared. The read tests come first and expect the seed; the write tests follow in
file order (set, merge, then clear, which restores from its backup at the end).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import isolated_embedded

from orchestrator.config import REPO_ROOT, load_config
from orchestrator.plan.translator import Translator
from orchestrator.runners.meltano_state import (
    StateError,
    StateResult,
    deep_merge,
    expected_state_ids,
    parse_state_id,
    parse_state_json,
    run_state_action,
    write_backup,
)

SHOP = "dev:tap-shop-to-target-duckdb"
NAMES = Translator()  # the default naming: Meltano's own rule
MELTANO_PROJECT = REPO_ROOT / "meltano"
SEED = {
    "singer_state": {
        "bookmarks": {
            "orders": {"replication_key": "updated_at", "replication_key_value": "2026-01-02T00:00:00+00:00"},
            "customers": {"replication_key": "updated_at", "replication_key_value": "2026-01-01T00:00:00+00:00"},
        }
    }
}
NEW = {
    "singer_state": {
        "bookmarks": {
            "orders": {"replication_key": "updated_at", "replication_key_value": "2026-01-01T00:00:00+00:00"},
            "customers": {"replication_key": "updated_at", "replication_key_value": "2026-01-01T00:00:00+00:00"},
        }
    }
}
PATCH = {
    "singer_state": {
        "bookmarks": {
            "orders": {"replication_key_value": "2025-12-31T00:00:00+00:00"},
            "payments": {"replication_key": "updated_at", "replication_key_value": "2025-12-30T00:00:00+00:00"},
        }
    }
}


class Ctx:
    """The shared isolated Meltano state DB and a shorthand to call run_state_action on it."""

    def __init__(self, root: Path):
        self.profile, self.env = isolated_embedded(root)  # the `embedded` fixture's isolation, at module scope
        self.backups = root / "backups"
        self.log: list[str] = []

    def run(self, action, state_id=None, state_json=None, **kwargs) -> StateResult:
        kwargs = {"backup_dir": self.backups, "log": self.log.append, **kwargs}
        kwargs.update(project_root=MELTANO_PROJECT, names=NAMES)
        return run_state_action(action, state_id, state_json, profile=self.profile, env=self.env, **kwargs)

    def get(self, state_id=SHOP) -> dict:
        return self.run("get", state_id, known_ids=[state_id]).before


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, meltano_installed) -> Ctx:
    ctx = Ctx(tmp_path_factory.mktemp("meltano_state"))
    # Seeding is itself a first backfill: SHOP has never run, so it is not known yet
    # (known_ids=[] stands for an empty `meltano state list`, one Meltano call less).
    ctx.seed = ctx.run("set", SHOP, json.dumps(SEED), dry_run=False, known_ids=[])
    return ctx


def backup_of(result: StateResult) -> dict:
    return json.loads(Path(result.backup_path).read_text())


# --- pure logic (no Meltano) -------------------------------------------------------------


def test_state_ids_parse_by_meltanos_rule():
    s = parse_state_id(SHOP, NAMES)
    assert (s.environment, s.extractor, s.loader, s.suffix) == ("dev", "tap-shop", "target-duckdb", None)
    s = parse_state_id("prod:tap-go-to-market-to-target-postgres", NAMES)
    assert (s.environment, s.extractor, s.loader) == ("prod", "tap-go-to-market", "target-postgres")
    s = parse_state_id("dev:tap-shop-to-target-duckdb:backfill_2024", NAMES)  # Meltano's state_id_suffix
    assert (s.extractor, s.loader, s.suffix) == ("tap-shop", "target-duckdb", "backfill_2024")
    for bad in ("tap-shop-to-target-duckdb", "dev:tap-shop", "dev:x; rm -rf /-to-target", ""):
        with pytest.raises(StateError, match="pattern"):
            parse_state_id(bad, NAMES)


def test_deep_merge_merges_objects_and_replaces_the_rest():
    assert deep_merge({"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2], "z": 3}, "c": 4}) == {
        "a": {"x": 1, "y": [2], "z": 3},
        "b": 1,
        "c": 4,
    }


def test_backup_is_written_atomically(tmp_path):
    path = write_backup(tmp_path, "dev:tap-x-to-target-y", "set", SEED)
    assert path.parent.parent == tmp_path and path.parent.name.startswith("dev_tap-x-to-target-y-")
    assert json.loads(path.read_text())["state"] == SEED
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left behind"
    # IDs that flatten to the same folder name keep their backups apart
    other = write_backup(tmp_path, "dev_tap-x-to-target-y", "set", {})
    assert other.parent != path.parent


def test_a_state_nested_too_deeply_is_refused_not_a_recursion_error():
    deep = '{"singer_state": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(StateError, match="nests deeper"):
        parse_state_json(deep)
    value: dict = {"singer_state": {}}
    cursor = value["singer_state"]
    for _ in range(200):
        cursor["x"] = {}
        cursor = cursor["x"]
    with pytest.raises(StateError, match="nests deeper"):
        parse_state_json(value)


def test_result_is_json_serialisable():
    result = StateResult("set", SHOP, True, before={}, after=SEED, diff="+x", message="m")
    assert json.loads(json.dumps(result.to_dict()))["after"] == SEED


# --- refusals: checked before anything is written ----------------------------------------


@pytest.mark.parametrize(
    "action, state_id, state_json, reason",
    [
        ("drop", SHOP, None, "unknown action 'drop'"),
        ("get", "", None, "state ID is required"),
        ("set", SHOP, "{not json", "not valid JSON"),
        ("set", SHOP, "[1, 2]", "must be an object, got list"),
        ("merge", SHOP, '{"bookmarks": {}}', 'lacks the top-level "singer_state"'),
        ("set", SHOP, '{"singer_state": "x"}', '"singer_state" must be an object, got str'),
        ("set", SHOP, "", "state JSON is required"),
        ("get", "dev:tap-nope-to-target-duckdb", None, "unknown state ID"),
        # a never-run ID may be created only by set, and only for a configured extractor
        ("merge", "dev:tap-crm-to-target-duckdb", json.dumps(PATCH), "unknown state ID"),
        ("set", "dev:tap-typo-to-target-duckdb", json.dumps(SEED), "never-run extractor's ID"),
        ("clear", "prod:tap-shop-to-target-duckdb", None, "belongs to environment 'prod'"),
    ],
)
def test_invalid_requests_are_refused_with_the_reason(action, state_id, state_json, reason):
    profile = load_config(profile="embedded").profile
    with pytest.raises(StateError, match=re.escape(reason)):
        run_state_action(
            action,
            state_id,
            state_json,
            profile=profile,
            env={},
            dry_run=False,
            known_ids=[SHOP, "prod:tap-shop-to-target-duckdb"],
            backup_dir="/nonexistent",
            project_root=MELTANO_PROJECT,
            names=NAMES,
        )


def test_a_busy_source_refuses_writes(tmp_path):
    profile = load_config(profile="embedded").profile
    with pytest.raises(StateError, match="refusing to set .*tap-shop is running"):
        run_state_action(
            "set",
            SHOP,
            json.dumps(NEW),
            profile=profile,
            env={},
            dry_run=False,
            known_ids=[SHOP],
            is_source_busy=lambda sid: f"DAG meltano_{parse_state_id(sid, NAMES).extractor}: tap-shop is running",
            backup_dir=tmp_path,
            project_root=MELTANO_PROJECT,
            names=NAMES,
        )
    assert not any(tmp_path.iterdir()), "no backup, nothing written"


def test_expected_state_ids_follow_the_profile():
    assert SHOP in expected_state_ids(load_config(profile="embedded").profile, NAMES)


# --- real Meltano: reads ----------------------------------------------------------------------


@pytest.mark.meltano
def test_seed_created_a_never_run_id_and_backed_up_its_absence(ctx):
    assert ctx.seed.before == {} and ctx.seed.after == SEED
    backup = backup_of(ctx.seed)
    assert backup["state_id"] == SHOP and backup["action"] == "set"
    assert backup["state"] == {} and backup["empty"] is True


@pytest.mark.meltano
def test_list_shows_the_state_id(ctx):
    result = ctx.run("list")
    assert result.state_ids == [SHOP]
    assert not any(line.startswith("{") for line in result.state_ids)


@pytest.mark.meltano
def test_get_returns_the_state(ctx):
    result = ctx.run("get", SHOP, known_ids=[SHOP])
    assert result.before == SEED and result.after == SEED and result.backup_path is None


@pytest.mark.meltano
def test_unknown_state_id_is_refused_against_the_listed_ids(ctx):
    with pytest.raises(StateError, match=rf"unknown state ID 'dev:tap-crm-to-target-duckdb' \(known: {SHOP}\)"):
        ctx.run("clear", "dev:tap-crm-to-target-duckdb", dry_run=False)


@pytest.mark.meltano
def test_dry_run_set_returns_a_diff_and_writes_nothing(ctx):
    guard_calls = []
    result = ctx.run(
        "set", SHOP, json.dumps(NEW), known_ids=[SHOP], is_source_busy=lambda sid: guard_calls.append(sid) or "busy"
    )  # dry run: no guard
    assert result.dry_run and result.backup_path is None and not guard_calls
    assert result.before == SEED and result.after == NEW
    assert '-        "replication_key_value": "2026-01-02T00:00:00+00:00"' in result.diff.splitlines()
    assert '+        "replication_key_value": "2026-01-01T00:00:00+00:00"' in result.diff.splitlines()
    assert "nothing written" in result.message
    assert ctx.get() == SEED


@pytest.mark.meltano
def test_failed_backup_leaves_the_state_alone(ctx, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(StateError, match="could not write the backup.*state not modified"):
        ctx.run("clear", SHOP, dry_run=False, known_ids=[SHOP], backup_dir=not_a_dir)
    assert ctx.get() == SEED


@pytest.mark.meltano
def test_shell_syntax_in_a_state_id_is_harmless(ctx, tmp_path):
    marker = tmp_path / "pwned"
    evil = f"x; touch {marker}"
    with pytest.raises(StateError, match="unknown state ID"):
        ctx.run("set", evil, json.dumps(SEED), dry_run=False, known_ids=[SHOP])
    # Even when it reaches Meltano (a caller claims it is known), it is one argv item.
    assert ctx.run("get", evil, known_ids=[evil]).before == {}
    assert not marker.exists()


# --- real Meltano: writes, in order -------------------------------------------------------


@pytest.mark.meltano
def test_set_backs_up_then_replaces(ctx):
    result = ctx.run("set", SHOP, json.dumps(NEW), dry_run=False, known_ids=[SHOP], is_source_busy=lambda sid: None)
    assert result.before == SEED and result.after == NEW  # `after` is read back from Meltano
    assert backup_of(result)["state"] == SEED and backup_of(result)["empty"] is False
    changed = [line for line in result.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == [
        '-        "replication_key_value": "2026-01-02T00:00:00+00:00"',
        '+        "replication_key_value": "2026-01-01T00:00:00+00:00"',
    ]


@pytest.mark.meltano
def test_merge_merges_bookmarks(ctx):
    preview = ctx.run("merge", SHOP, PATCH, known_ids=[SHOP])  # a dict is accepted as well as a JSON string
    before = preview.before
    expected = {
        "singer_state": {
            "bookmarks": {
                **before["singer_state"]["bookmarks"],
                "orders": {"replication_key": "updated_at", "replication_key_value": "2025-12-31T00:00:00+00:00"},
                "payments": PATCH["singer_state"]["bookmarks"]["payments"],
            }
        }
    }
    assert preview.after == expected
    result = ctx.run("merge", SHOP, json.dumps(PATCH), dry_run=False, known_ids=[SHOP])
    assert result.after == expected, "Meltano's merge is what the dry run predicted"
    assert backup_of(result)["state"] == before
    assert "WARNING" not in result.message


@pytest.mark.meltano
def test_clear_backs_up_and_removes_and_restore_brings_it_back(ctx):
    result = ctx.run("clear", SHOP, dry_run=False)  # validated against `meltano state list`
    before = result.before
    assert before["singer_state"]["bookmarks"]["payments"] and result.after == {}
    assert backup_of(result)["state"] == before
    assert SHOP not in ctx.run("list").state_ids
    # Restore = set with the backup's state (the ID is a configured extractor's, so set may recreate it).
    restored = ctx.run("set", SHOP, backup_of(result)["state"], dry_run=False)
    assert restored.after == before
    assert len(list(Path(result.backup_path).parent.glob("*.json"))) == 5  # seed, set, merge, clear, restore
