"""The orchestration config (`orchestration.yml`), validated (plan/schema.py) and resolved: every
relative path is relative to the config file's directory."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import settings
from ..profiles import ConfigError, Profile, config_path, load_yaml, profile_from_schema, resolve_path
from .schema import parse_orchestration

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
    dbt_profiles_dir: Path | None = None  # None: dbt's own rules
    mode: str = "multi"
    tags: tuple[str, ...] = ()
    tag_prefix: str | None = None
    dbt_dag_id_prefix: str = "dbt_"
    catch_all: bool = True
    catch_all_dag_id: str = "dbt_untagged"
    monolith_dag_id: str = "dbt_all"
    task_granularity: str = "dag"
    dbt_retry_from_failure: bool = True
    meltano_project: Path = Path("meltano")
    meltano_executable: str | None = None  # None: `meltano` beside this Python, else on PATH
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
    var_dir: Path = Path("var")  # what the orchestrator writes: cache, dbt runs, state backups, local Airflow
    translator: str | None = None  # dotted path of a Translator subclass

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

    # ---- where the orchestrator writes (all under the var dir unless a setting says otherwise)

    def cache_dir(self) -> Path | None:
        value = settings.CACHE_DIR.get()
        if value == "off" or (settings.CACHE_DIR.is_set() and not value):
            return None
        return Path(value) if value else self.var_dir / "cache"

    def dbt_runs_dir(self) -> Path:
        return Path(settings.DBT_RUNS_DIR.get() or self.var_dir / "dbt")

    def state_backup_dir(self) -> Path:
        return Path(settings.STATE_BACKUP_DIR.get() or self.var_dir / "meltano_state_backups")

    def airflow_home(self) -> Path:
        return Path(settings.AIRFLOW_HOME.get() or self.var_dir / "airflow")


def load_config(path: str | Path | None = None, profile: str | None = None) -> OrchestrationConfig:
    path = config_path(path)
    schema = parse_orchestration(load_yaml(path), path)
    base = path.parent

    def at(value: str) -> Path:
        return Path(resolve_path(base, value))

    dbt, meltano, alerting = schema.dbt, schema.meltano, schema.alerting
    project_dir = at(dbt.project_dir)
    return OrchestrationConfig(
        path=path,
        profile=profile_from_schema(schema, path, profile),
        tick_dag_id=schema.tick.dag_id,
        tick_cron=schema.tick.cron,
        tick_asset=schema.tick.asset,
        dbt_project_dir=project_dir,
        manifest=at(dbt.manifest) if dbt.manifest else project_dir / "target" / "manifest.json",
        dbt_profiles_dir=at(dbt.profiles_dir) if dbt.profiles_dir else None,
        mode=dbt.mode,
        tags=tuple(dbt.tags),
        tag_prefix=dbt.tag_prefix,
        dbt_dag_id_prefix=dbt.dag_id_prefix,
        catch_all=dbt.catch_all.enabled,
        catch_all_dag_id=dbt.catch_all.dag_id,
        monolith_dag_id=dbt.monolith_dag_id,
        task_granularity=dbt.task_granularity,
        dbt_retry_from_failure=dbt.retry_from_failure,
        meltano_project=at(meltano.project_dir),
        meltano_executable=meltano.executable,
        meltano_dag_id_prefix=meltano.dag_id_prefix,
        meltano_tables={k: tuple(v) for k, v in meltano.tables.items()},
        state_dag_id=meltano.state_dag_id,
        owner=schema.defaults.owner,
        retries=schema.defaults.retries,
        retry_delay_seconds=schema.defaults.retry_delay_seconds,
        max_retry_delay_seconds=schema.defaults.max_retry_delay_seconds,
        alerting_config=at(alerting.config),
        alerting_dag_id=alerting.dag_id,
        alerting_cron=alerting.cron,
        late_after_minutes=alerting.lateness.after_minutes,
        late_after_overrides=dict(alerting.lateness.dags),
        var_dir=Path(settings.VAR_DIR.get() or resolve_path(base, schema.paths.var)),
        translator=schema.translator,
    )
