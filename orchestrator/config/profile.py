"""The active profile: which Meltano environment, extractors, loader and dbt target run.

A profile is its validated `profiles.<name>` section of orchestration.yml (schema.ProfileSchema:
every key, typed, with its documented default) plus what resolving it adds: its name, and its
`env` and `paths` as the variables Meltano and dbt read (`paths` relative to the config file).
The active one is `$PIPELINE_PROFILE`, else the file's `default_profile`, else its only profile.
The process environment always overrides a profile's variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from .. import settings
from .errors import ConfigError
from .locations import resolve_path
from .schema import OrchestrationFile, ProfileSchema


class Profile(ProfileSchema):
    """`profiles.<name>`, validated, with its name and its variables resolved."""

    _name: str = PrivateAttr("")
    _env_defaults: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def of(cls, section: ProfileSchema, name: str, env_defaults: Mapping[str, str]) -> Profile:
        """The validated `section` (not validated again: it runs at every DAG-file parse) as a profile."""
        profile = cls.model_construct(section.model_fields_set, **dict(section))
        profile._name, profile._env_defaults = name, dict(env_defaults)
        return profile

    @property
    def name(self) -> str:
        return self._name

    @property
    def env_defaults(self) -> Mapping[str, str]:
        """`env` (as strings) and `paths` (resolved): the defaults of the variables Meltano and dbt read."""
        return self._env_defaults

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment for Meltano and dbt: defaults, then `base` (default os.environ) on top."""
        base = os.environ if base is None else base
        env = {**self._env_defaults, **base}
        env[settings.PIPELINE_PROFILE.name] = self.name
        if self.dbt_target:  # a profiles.yml may pick its target from it (the demo's does)
            env["DBT_TARGET"] = base.get("DBT_TARGET", self.dbt_target)
        env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        return env

    def airflow_settings(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """executor, workers, metadata_db_url, broker_url: the profile's `airflow`, then ORCHESTRATOR_AIRFLOW_*."""
        out = {key: str(value) for key, value in self.airflow.model_dump().items()}
        for key in out:
            if value := settings.airflow_override(key, env):
                out[key] = value
        return out


def active_profile(file: OrchestrationFile, path: Path, name: str | None = None) -> Profile:
    """The profile `name`, else `$PIPELINE_PROFILE`, else the file's `default_profile`, else its only one."""
    profiles = file.profiles
    name = (
        name
        or settings.PIPELINE_PROFILE.get()
        or file.default_profile
        or (next(iter(profiles)) if len(profiles) == 1 else "embedded")
    )
    if name not in profiles:
        raise ConfigError(f"{path}: no profile {name!r} (known: {', '.join(sorted(profiles)) or 'none'})")
    section = profiles[name]
    env = {k: _env_value(v) for k, v in section.env.items()}
    for var, value in env.items():  # a relative SQLite database in a URL is relative to the config file too
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            env[var] = f"sqlite:///{resolve_path(path.parent, value[len('sqlite:///') :])}"
    env.update({var: resolve_path(path.parent, value) for var, value in section.paths.items()})
    return Profile.of(section, name, env)


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
