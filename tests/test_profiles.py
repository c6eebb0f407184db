from __future__ import annotations

import pytest

from orchestrator.config import REPO_ROOT, ConfigError, load_config


def test_embedded_is_the_default_and_resolves_paths(monkeypatch):
    monkeypatch.delenv("PIPELINE_PROFILE", raising=False)
    profile = load_config().profile
    assert profile.name == "embedded" and profile.dbt_target == "duckdb"
    env = profile.environment({})
    assert env["WAREHOUSE_DUCKDB_PATH"] == str(REPO_ROOT / "var" / "warehouse.duckdb")
    assert env["DBT_TARGET"] == "duckdb" and env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    # Meltano's state lives beside the warehouse: a relative SQLite URI resolves against the config's folder.
    assert env["MELTANO_DATABASE_URI"] == f"sqlite:///{REPO_ROOT / 'var' / 'meltano.db'}"


def test_one_setting_switches_to_production(monkeypatch):
    monkeypatch.setenv("PIPELINE_PROFILE", "production")
    profile = load_config().profile
    assert (profile.meltano_environment, profile.loader, profile.dbt_target) == ("prod", "target-postgres", "postgres")
    assert profile.extractors == ("tap-shop-mariadb", "tap-crm-postgres", "tap-marketing-postgres")


def test_process_environment_wins_over_profile_defaults():
    env = load_config(profile="production").profile.environment({"WAREHOUSE_PG_DATABASE": "elsewhere", "SECRET": "x"})
    assert env["WAREHOUSE_PG_DATABASE"] == "elsewhere"
    assert env["SOURCE_PG_DATABASE"] == "demo_sources"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("profiles: [", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("profiles: {embedded: {loader: x}}", "profiles.embedded.meltano_environment: required"),
    ],
)
def test_bad_config_names_the_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "orchestration.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as err:
        load_config(path, "embedded")
    assert str(path) in str(err.value)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match="no profile 'nope' \\(known: embedded, production\\)"):
        load_config(profile="nope")


def test_the_alert_outbox_is_where_the_config_says_never_the_working_directory(tmp_path, monkeypatch):
    """ALERTING_OUTBOX_URL (a profile's env sets it) wins; else ALERTING_OUTBOX_PATH, relative to the
    config file; else the config's var dir. The current directory plays no part."""
    config_dir = tmp_path / "deploy"
    config_dir.mkdir()
    path = config_dir / "orchestration.yml"
    path.write_text("profiles:\n  p: {meltano_environment: dev, loader: target-x, extractors: [tap-x]}\n")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    monkeypatch.delenv("ALERTING_OUTBOX_URL", raising=False)
    monkeypatch.delenv("ALERTING_OUTBOX_PATH", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_VAR_DIR", raising=False)
    config = load_config(path, "p")
    assert config.outbox_url() == f"sqlite:///{config_dir / 'var' / 'alerting' / 'outbox.sqlite'}"
    monkeypatch.setenv("ALERTING_OUTBOX_PATH", "alerts/outbox.sqlite")
    assert config.outbox_url() == f"sqlite:///{config_dir / 'alerts' / 'outbox.sqlite'}"
    monkeypatch.setenv("ALERTING_OUTBOX_URL", "postgresql+psycopg://db/alerting")
    assert config.outbox_url() == "postgresql+psycopg://db/alerting"
