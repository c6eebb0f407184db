"""Profiles: which Meltano environment, extractors, loader and dbt target run.

Read from the orchestration config file (`orchestration.yml`, validated by plan/schema.py).
The active profile is `$PIPELINE_PROFILE`, else the file's `default_profile`, else the only
profile. A profile's `env` holds defaults for the variables that meltano.yml and dbt's
profiles.yml reference, and its `paths` the variables that hold paths (relative to the config
file); the process environment always overrides both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting.routing.yaml_file import YamlFileError, read_yaml

from . import settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "orchestration.yml"
PROFILE_VAR = settings.PIPELINE_PROFILE.name


class ConfigError(ValueError):
    """A configuration file is missing or wrong; the message names the file (and the key)."""


@dataclass(frozen=True)
class Profile:
    name: str
    meltano_environment: str
    loader: str
    dbt_target: str | None
    extractors: tuple[str, ...]
    env_defaults: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    warehouse_uri: str = ""  # Asset URIs: <warehouse_uri>/<schema>/<table>
    warehouse_pool: str | None = None  # an Airflow pool serialising warehouse writes (DuckDB: one writer)
    airflow: Mapping[str, str] = field(default_factory=dict)  # how `orchestrator run/up` runs Airflow
    demo_data: str | None = None  # files | databases: this repo's demo writes its source data there

    def airflow_settings(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """executor, workers, metadata_db_url, broker_url: the profile's, then ORCHESTRATOR_AIRFLOW_*."""
        env = os.environ if env is None else env
        out = {"executor": "LocalExecutor", "workers": "0", "metadata_db_url": "", "broker_url": ""}
        out.update({k: str(v) for k, v in self.airflow.items()})
        for key in out:
            if value := settings.airflow_override(key, env):
                out[key] = value
        return out

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment for Meltano and dbt: defaults, then `base` (default os.environ) on top."""
        base = os.environ if base is None else base
        env = {**self.env_defaults, **base}
        env[PROFILE_VAR] = self.name
        if self.dbt_target:  # a profiles.yml may pick its target from it (the demo's does)
            env["DBT_TARGET"] = base.get("DBT_TARGET", self.dbt_target)
        env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        return env


def load_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping; ConfigError naming the file for any problem. The loader is
    alerting's, shared by every configuration file (duplicate keys, alias bombs, a byte-order mark)."""
    try:
        data = read_yaml(path)
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def config_path(path: str | Path | None = None) -> Path:
    return Path(path or settings.ORCHESTRATION_CONFIG.get() or DEFAULT_CONFIG).resolve()


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_path(base: Path, value: str) -> str:
    """A path from the config file: `~` expanded, relative ones against the file's directory."""
    expanded = os.path.expanduser(value)
    return expanded if os.path.isabs(expanded) else str((base / expanded).resolve())


def profile_from_schema(schema: Any, path: Path, name: str | None = None) -> Profile:
    """The active profile of a validated orchestration file (plan/schema.OrchestrationFile)."""
    profiles = schema.profiles
    name = (
        name
        or settings.PIPELINE_PROFILE.get()
        or schema.default_profile
        or (next(iter(profiles)) if len(profiles) == 1 else "embedded")
    )
    if name not in profiles:
        raise ConfigError(f"{path}: no profile {name!r} (known: {', '.join(sorted(profiles)) or 'none'})")
    raw = profiles[name]
    env = {k: _env_value(v) for k, v in raw.env.items()}
    for var, value in env.items():  # a relative SQLite database in a URL is relative to the config file too
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            env[var] = f"sqlite:///{resolve_path(path.parent, value[len('sqlite:///') :])}"
    env.update({var: resolve_path(path.parent, value) for var, value in raw.paths.items()})
    return Profile(
        name=name,
        meltano_environment=raw.meltano_environment,
        loader=raw.loader,
        dbt_target=raw.dbt_target,
        extractors=tuple(raw.extractors),
        env_defaults=env,
        description=raw.description,
        warehouse_uri=raw.warehouse_uri,
        warehouse_pool=raw.warehouse_pool,
        airflow={k: str(v) for k, v in raw.airflow.model_dump().items() if v not in ("", None)},
        demo_data=raw.demo_data,
    )


def profile_from_config(data: dict, path: Path, name: str | None = None) -> Profile:
    from .plan.schema import parse_orchestration

    return profile_from_schema(parse_orchestration(data, path), path, name)


def load_profile(name: str | None = None, path: str | Path | None = None) -> Profile:
    resolved = config_path(path)
    return profile_from_config(load_yaml(resolved), resolved, name)
