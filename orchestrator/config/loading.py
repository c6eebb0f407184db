"""The orchestration config: `orchestration.yml` validated (schema.py), with its active profile and
every path it names resolved against the file's directory.

    config = load_config()                          # $ORCHESTRATION_CONFIG or this checkout's, $PIPELINE_PROFILE
    config = load_config("orchestration.yml", "production")
    config.dbt.mode, config.tick.asset              # what the file says, typed, defaults included
    config.manifest, config.meltano_project         # where it points, resolved
    config.profile.loader, config.profile.environment()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, get_args

from pydantic import PrivateAttr

from .. import settings
from .errors import ConfigError
from .locations import config_path, resolve_path
from .profile import Profile, active_profile
from .schema import Dbt, OrchestrationFile, validated
from .yaml_file import load_yaml

MODES: tuple[str, ...] = get_args(Dbt.model_fields["mode"].annotation)


@dataclass(frozen=True)
class ResolvedPaths:
    """Every path the config names, absolute: relative to its directory, or given on the command line."""

    dbt_project_dir: Path
    manifest: Path
    dbt_profiles_dir: Path | None  # None: dbt's own rules
    meltano_project: Path
    alerting_config: Path
    var_dir: Path  # what the orchestrator writes: cache, dbt runs, state backups, local Airflow


class OrchestrationConfig(OrchestrationFile):
    """The validated file (every key, typed, with its documented default), and what loading adds:
    the file's path, the active profile and the resolved paths."""

    _path: Path = PrivateAttr()
    _profile: Profile = PrivateAttr()
    _resolved: ResolvedPaths = PrivateAttr()

    @classmethod
    def of(cls, data: Any, path: Path, profile: str | None = None) -> OrchestrationConfig:
        """The config a file at `path` holding `data` makes (ConfigError naming the file and key)."""
        config = validated(cls, data, path)
        config._path, config._profile = path, active_profile(config, path, profile)
        config._resolved = _resolve(config, path.parent)
        return config

    @property
    def path(self) -> Path:
        return self._path

    @property
    def profile(self) -> Profile:
        return self._profile

    @property
    def dbt_project_dir(self) -> Path:
        return self._resolved.dbt_project_dir

    @property
    def manifest(self) -> Path:
        return self._resolved.manifest

    @property
    def dbt_profiles_dir(self) -> Path | None:
        return self._resolved.dbt_profiles_dir

    @property
    def meltano_project(self) -> Path:
        return self._resolved.meltano_project

    @property
    def alerting_config(self) -> Path:
        return self._resolved.alerting_config

    @property
    def var_dir(self) -> Path:
        return self._resolved.var_dir

    @property
    def dags_folder(self) -> Path | None:
        """`paths.dags`, the DAG folder `init` wrote (what `check` imports by default); None: unset."""
        return Path(resolve_path(self.path.parent, self.paths.dags)) if self.paths.dags else None

    def with_overrides(
        self,
        *,
        tags: tuple[str, ...] | None = None,
        mode: str | None = None,
        manifest: Path | None = None,
        meltano_project: Path | None = None,
    ) -> OrchestrationConfig:
        """The command line's flags over the file's values."""
        if mode is not None and mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
        dbt: dict[str, Any] = {"tags": tuple(tags)} if tags is not None else {}
        if mode is not None:
            dbt["mode"] = mode
        config = self.model_copy(update={"dbt": self.dbt.model_copy(update=dbt)}) if dbt else self.model_copy()
        paths: dict[str, Path] = {}
        if manifest is not None:
            paths["manifest"] = manifest
        if meltano_project is not None:
            paths["meltano_project"] = meltano_project
        config._resolved = replace(self._resolved, **paths)
        return config

    def fingerprint(self) -> str:
        """Everything a plan depends on in the config (the plan cache's key): the file, the profile's
        resolved variables and the resolved paths."""
        return repr((str(self._path), self.model_dump(), self.profile.name, self.profile.env_defaults, self._resolved))

    # ---- where the orchestrator writes: under the var dir unless a setting says otherwise

    def cache_dir(self) -> Path | None:
        """The plan cache (None: off)."""
        value = settings.CACHE_DIR.get()
        if value == "off" or (settings.CACHE_DIR.is_set() and not value):
            return None
        return Path(value) if value else self.var_dir / "cache"

    def dbt_runs_dir(self, env: Mapping[str, str] | None = None) -> Path:
        """Where each dbt DAG keeps its private target directory."""
        return Path(settings.DBT_RUNS_DIR.get(env) or self.var_dir / "dbt")

    def state_backup_dir(self) -> Path:
        return Path(settings.STATE_BACKUP_DIR.get() or self.var_dir / "meltano_state_backups")

    def airflow_home(self, env: Mapping[str, str] | None = None) -> Path:
        """The local Airflow of `orchestrator run`/`up`."""
        return Path(settings.AIRFLOW_HOME.get(env) or self.var_dir / "airflow")

    def outbox_url(self, env: Mapping[str, str] | None = None) -> str:
        """The alert outbox: `$ALERTING_OUTBOX_URL` (the profile's env sets it), else a SQLite file at
        `$ALERTING_OUTBOX_PATH` (relative to this file), else in the var dir; never the worker's
        working directory."""
        env = self.profile.environment() if env is None else env
        if url := settings.ALERTING_OUTBOX_URL.get(env):
            return url
        path = settings.ALERTING_OUTBOX_PATH.get(env)
        database = resolve_path(self.path.parent, path) if path else self.var_dir / "alerting" / "outbox.sqlite"
        return f"sqlite:///{database}"


def _resolve(config: OrchestrationFile, base: Path) -> ResolvedPaths:
    def at(value: str) -> Path:
        return Path(resolve_path(base, value))

    dbt = config.dbt
    project_dir = at(dbt.project_dir)
    return ResolvedPaths(
        dbt_project_dir=project_dir,
        manifest=at(dbt.manifest) if dbt.manifest else project_dir / "target" / "manifest.json",
        dbt_profiles_dir=at(dbt.profiles_dir) if dbt.profiles_dir else None,
        meltano_project=at(config.meltano.project_dir),
        alerting_config=at(config.alerting.config),
        var_dir=Path(settings.VAR_DIR.get() or resolve_path(base, config.paths.var)),
    )


def load_config(path: str | Path | None = None, profile: str | None = None) -> OrchestrationConfig:
    """The orchestration config at `path` (default: `$ORCHESTRATION_CONFIG`, else this checkout's),
    with the profile `profile` (default: `$PIPELINE_PROFILE`, the file's `default_profile`, its only one)."""
    path = config_path(path)
    return OrchestrationConfig.of(load_yaml(path), path, profile)
