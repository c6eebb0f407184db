"""Profiles: which Meltano environment, extractors, loader and dbt target run.

Read from the orchestration config file (`orchestration.yml`). The active
profile is `$PIPELINE_PROFILE`, else the file's `default_profile`. A profile's
`env` holds defaults for the variables that meltano.yml and dbt's profiles.yml
reference; the process environment always overrides them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "orchestration.yml"
PROFILE_VAR = "PIPELINE_PROFILE"
_PATH_VARS = ("DEMO_DATA_DIR", "WAREHOUSE_DUCKDB_PATH")
_SQLITE_URL_VARS = ("MELTANO_DATABASE_URI", "ALERTING_OUTBOX_URL")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: YAML is read at every DAG parse


class ConfigError(ValueError):
    """A configuration file is missing or wrong; the message names the file."""


@dataclass(frozen=True)
class Profile:
    name: str
    meltano_environment: str
    loader: str
    dbt_target: str
    extractors: tuple[str, ...]
    env_defaults: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    warehouse_uri: str = ""  # Asset URIs: <warehouse_uri>/<schema>/<table>
    warehouse_pool: str | None = None  # an Airflow pool serialising warehouse writes (DuckDB: one writer)
    airflow: Mapping[str, str] = field(default_factory=dict)  # how `orchestrator run/up` runs Airflow

    def airflow_settings(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """executor, workers, metadata_db_url, broker_url: the profile's, then ORCHESTRATOR_AIRFLOW_*."""
        env = os.environ if env is None else env
        out = {"executor": "LocalExecutor", "workers": "0", "metadata_db_url": "", "broker_url": ""}
        out.update({k: str(v) for k, v in self.airflow.items()})
        for key in out:
            if env.get(f"ORCHESTRATOR_AIRFLOW_{key.upper()}"):
                out[key] = env[f"ORCHESTRATOR_AIRFLOW_{key.upper()}"]
        return out

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment for Meltano and dbt: defaults, then `base` (default os.environ) on top."""
        base = os.environ if base is None else base
        env = {**self.env_defaults, **base}
        env[PROFILE_VAR] = self.name
        env["DBT_TARGET"] = base.get("DBT_TARGET", self.dbt_target)
        env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        return env


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def config_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("ORCHESTRATION_CONFIG") or DEFAULT_CONFIG).resolve()


def profile_from_config(data: dict, path: Path, name: str | None = None) -> Profile:
    profiles = data.get("profiles") or {}
    name = name or os.environ.get(PROFILE_VAR) or data.get("default_profile") or "embedded"
    if name not in profiles:
        raise ConfigError(f"{path}: no profile {name!r} (known: {', '.join(sorted(profiles)) or 'none'})")
    raw = profiles[name]
    missing = [k for k in ("meltano_environment", "loader", "dbt_target", "extractors") if not raw.get(k)]
    if missing:
        raise ConfigError(f"{path}: profile {name!r} lacks {', '.join(missing)}")
    env = {str(k): "" if v is None else str(v) for k, v in (raw.get("env") or {}).items()}
    for var in _PATH_VARS:  # relative paths are relative to the config file
        if env.get(var) and not os.path.isabs(env[var]):
            env[var] = str(path.parent / env[var])
    for var in _SQLITE_URL_VARS:  # and so are relative SQLite paths in database URLs
        uri = env.get(var, "")
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            env[var] = f"sqlite:///{path.parent / uri[len('sqlite:///') :]}"
    return Profile(
        name=name,
        meltano_environment=raw["meltano_environment"],
        loader=raw["loader"],
        dbt_target=raw["dbt_target"],
        extractors=tuple(raw["extractors"]),
        env_defaults=env,
        description=raw.get("description", ""),
        warehouse_uri=raw.get("warehouse_uri") or "",
        warehouse_pool=raw.get("warehouse_pool") or None,
        airflow={str(k): str(v) for k, v in (raw.get("airflow") or {}).items()},
    )


def load_profile(name: str | None = None, path: str | Path | None = None) -> Profile:
    resolved = config_path(path)
    return profile_from_config(load_yaml(resolved), resolved, name)
