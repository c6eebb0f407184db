"""The orchestration config file (`orchestration.yml`): tick, dbt tags, Meltano, defaults, profiles."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..profiles import ConfigError, Profile, config_path, load_yaml, profile_from_config

MODES = ("multi", "monolith")
GRANULARITIES = ("dag", "model")


@dataclass(frozen=True)
class OrchestrationConfig:
    path: Path
    profile: Profile
    tick_dag_id: str = "tick"
    tick_cron: str = "0 0 * * *"
    tick_asset: str = "tick"
    dbt_project_dir: Path = Path("dbt_project")
    manifest: Path = Path("dbt_project/target/manifest.json")
    mode: str = "multi"
    tags: tuple[str, ...] = ()
    tag_prefix: str | None = None
    dbt_dag_id_prefix: str = "dbt_"
    catch_all: bool = True
    catch_all_dag_id: str = "dbt_untagged"
    monolith_dag_id: str = "dbt_all"
    task_granularity: str = "dag"
    meltano_project: Path = Path("meltano")
    meltano_dag_id_prefix: str = "meltano_"
    meltano_tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    state_dag_id: str = "meltano_state"
    owner: str = "data-platform"
    retries: int = 2
    retry_delay_seconds: int = 60
    max_retry_delay_seconds: int = 600
    alerting_config: Path = Path("alerting.yml")
    alerting_dag_id: str = "alerting"
    alerting_cron: str = "*/5 * * * *"
    late_after_minutes: int | None = 240  # None: no lateness alerts
    late_after_overrides: dict[str, int | None] = field(default_factory=dict)  # dag_id glob -> minutes

    def with_overrides(
        self,
        *,
        tags: tuple[str, ...] | None = None,
        mode: str | None = None,
        manifest: Path | None = None,
        meltano_project: Path | None = None,
    ) -> OrchestrationConfig:
        """CLI flags override the file."""
        changes: dict[str, Any] = {}
        if tags is not None:
            changes["tags"] = tags
        if mode is not None:
            if mode not in MODES:
                raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
            changes["mode"] = mode
        if manifest is not None:
            changes["manifest"] = manifest
        if meltano_project is not None:
            changes["meltano_project"] = meltano_project
        return replace(self, **changes)


def _section(data: dict, key: str, path: Path) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: `{key}` must be a mapping")
    return value


def _dag_id(value: Any, what: str, path: Path) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise ConfigError(f"{path}: {what} must be a DAG id (letters, digits, _ . -), got {value!r}")
    return value


def load_config(path: str | Path | None = None, profile: str | None = None) -> OrchestrationConfig:
    path = config_path(path)
    data = load_yaml(path)
    base = path.parent
    tick, dbt, meltano, defaults, alerting = (
        _section(data, k, path) for k in ("tick", "dbt", "meltano", "defaults", "alerting")
    )
    lateness = alerting.get("lateness") or {}
    if not isinstance(lateness, dict) or not isinstance(lateness.get("dags") or {}, dict):
        raise ConfigError(f"{path}: alerting.lateness must be a mapping with `after_minutes` and `dags`")

    def minutes(value: Any, what: str) -> int | None:
        if value is None or value is False:
            return None
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"{path}: {what} must be minutes (a whole number >= 0) or null, got {value!r}")
        return value

    catch_all = dbt.get("catch_all", {})
    if not isinstance(catch_all, dict):
        catch_all = {"enabled": bool(catch_all)}
    tags = dbt.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ConfigError(f"{path}: dbt.tags must be a list of tag names")
    mode = dbt.get("mode", "multi")
    if mode not in MODES:
        raise ConfigError(f"{path}: dbt.mode must be one of {', '.join(MODES)}, got {mode!r}")
    granularity = dbt.get("task_granularity", "dag")
    if granularity not in GRANULARITIES:
        raise ConfigError(
            f"{path}: dbt.task_granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}"
        )
    tables = meltano.get("tables") or {}
    if not isinstance(tables, dict) or not all(isinstance(v, list) for v in tables.values()):
        raise ConfigError(f"{path}: meltano.tables must map an extractor to a list of tables")
    try:
        numbers = {
            k: int(defaults.get(k, d))
            for k, d in (("retries", 2), ("retry_delay_seconds", 60), ("max_retry_delay_seconds", 600))
        }
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: defaults: {exc}") from exc
    return OrchestrationConfig(
        path=path,
        profile=profile_from_config(data, path, profile),
        tick_dag_id=_dag_id(tick.get("dag_id", "tick"), "tick.dag_id", path),
        tick_cron=str(tick.get("cron", "0 0 * * *")),
        tick_asset=str(tick.get("asset", "tick")),
        dbt_project_dir=base / dbt.get("project_dir", "dbt_project"),
        manifest=base / dbt.get("manifest", "dbt_project/target/manifest.json"),
        mode=mode,
        tags=tuple(tags),
        tag_prefix=dbt.get("tag_prefix") or None,
        dbt_dag_id_prefix=str(dbt.get("dag_id_prefix", "dbt_")),
        catch_all=bool(catch_all.get("enabled", True)),
        catch_all_dag_id=_dag_id(catch_all.get("dag_id", "dbt_untagged"), "dbt.catch_all.dag_id", path),
        monolith_dag_id=_dag_id(dbt.get("monolith_dag_id", "dbt_all"), "dbt.monolith_dag_id", path),
        task_granularity=granularity,
        meltano_project=base / meltano.get("project_dir", "meltano"),
        meltano_dag_id_prefix=str(meltano.get("dag_id_prefix", "meltano_")),
        meltano_tables={str(k): tuple(str(t) for t in v) for k, v in tables.items()},
        state_dag_id=_dag_id(meltano.get("state_dag_id", "meltano_state"), "meltano.state_dag_id", path),
        owner=str(defaults.get("owner", "data-platform")),
        **numbers,
        alerting_config=base / alerting.get("config", "alerting.yml"),
        alerting_dag_id=_dag_id(alerting.get("dag_id", "alerting"), "alerting.dag_id", path),
        alerting_cron=str(alerting.get("cron", "*/5 * * * *")),
        late_after_minutes=minutes(lateness.get("after_minutes", 240), "alerting.lateness.after_minutes"),
        late_after_overrides={
            str(k): minutes(v, f"alerting.lateness.dags.{k}") for k, v in (lateness.get("dags") or {}).items()
        },
    )
