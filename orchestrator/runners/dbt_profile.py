"""Which dbt profile and target a dbt project runs with, found by dbt's own rules, and what kind of
warehouse that is (the adapter `type`), without importing dbt (it takes seconds). The runners and
`orchestrator init` both read it here.

profiles.yml: `dbt.profiles_dir` in orchestration.yml (or `--dbt-profiles-dir`), else
`$DBT_PROFILES_DIR`, else the dbt project's folder when it holds a profiles.yml (dbt looks in its
working directory, which is where people keep it), else `~/.dbt`. The profile: `profile:` of
dbt_project.yml. The target: the one asked for, else the profile's `target:` (rendered: it may be
`{{ env_var('DBT_TARGET', 'dev') }}`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .. import settings
from ..config import ConfigError, OrchestrationConfig, load_yaml


class DbtProfileError(ConfigError):
    """The dbt profile or target cannot be found or rendered; the message names the file."""


@dataclass(frozen=True)
class DbtTarget:
    project_dir: Path
    profiles_dir: Path
    profile: str
    name: str
    type: str  # the adapter: duckdb, postgres, snowflake...
    settings: dict[str, Any] = field(default_factory=dict)  # rendered (secrets included: do not log)
    project: dict[str, Any] = field(default_factory=dict)  # dbt_project.yml

    @property
    def profiles_file(self) -> Path:
        return self.profiles_dir / "profiles.yml"

    def duckdb_path(self, project_dir: Path | None = None) -> Path | None:
        """The DuckDB file, relative paths being relative to the dbt project (dbt runs there)."""
        if self.type != "duckdb":
            return None
        path = str(self.settings.get("path") or "")
        if not path or path == ":memory:" or "://" in path:
            return None
        base = project_dir or self.project_dir
        return Path(path) if os.path.isabs(path) else (base / path).resolve()

    def postgres_url(self) -> Any:
        """The SQLAlchemy URL of a postgres target (host, port, user, password/pass, dbname/database)."""
        import sqlalchemy as sa  # only a PostgreSQL warehouse needs it, not every dbt task

        s = self.settings
        return sa.URL.create(
            "postgresql+psycopg2",
            username=s.get("user") or None,
            password=s.get("password") or s.get("pass") or None,
            host=s.get("host") or None,
            port=int(s["port"]) if s.get("port") else None,
            database=s.get("dbname") or s.get("database") or None,
        )


class ProfileRenderer:
    """Render profiles.yml values as dbt does (`env_var(name[, default])` and its filters).

    strict: an `env_var()` without a default whose variable is unset is an error (what dbt does at
    run time); else its lower-cased name stands in, and it is recorded (what `init` needs to write
    placeholders). Every `env_var()` without a default is recorded in `without_default`."""

    def __init__(self, env: Mapping[str, str], where: str, strict: bool = True):
        self.env, self.where, self.strict = env, where, strict
        self.without_default: dict[str, list[str]] = {}  # variable -> the keys that read it
        self.stand_ins: list[str] = []
        self._place = ""
        self._errors = (jinja2.TemplateError,)
        self.jinja = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
        self.jinja.globals.update(env_var=self._env_var)
        for name in ("as_number", "as_bool", "as_text", "as_native"):
            self.jinja.filters[name] = lambda v: v

    def _env_var(self, name: str, default: Any = None) -> Any:
        if default is None:
            places = self.without_default.setdefault(name, [])
            if self._place not in places:
                places.append(self._place)
        if name in self.env:
            return self.env[name]
        if default is not None:
            return default
        if self.strict:
            raise DbtProfileError(
                f"{self.where}: {self._place}: env_var({name!r}) has no default and {name} is not "
                "set: set it in the environment or in the orchestration profile's `env`"
            )
        if name not in self.stand_ins:
            self.stand_ins.append(name)
        return name.lower()

    def __call__(self, value: Any, place: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self(v, f"{place}.{k}" if place else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v, f"{place}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            self._place = place
            try:
                return self.jinja.from_string(value).render()
            except self._errors as exc:
                raise DbtProfileError(f"{self.where}: {place}: cannot render {value!r}: {exc}") from None
        return value


def find_profiles_dir(project_dir: Path, given: Path | None, env: Mapping[str, str]) -> Path:
    """dbt's rules: the given folder, $DBT_PROFILES_DIR, the project's folder if it has one, ~/.dbt."""
    if given is not None:
        return given
    if given_by_env := settings.DBT_PROFILES_DIR.get(env):
        return Path(given_by_env).expanduser().resolve()
    if (project_dir / "profiles.yml").exists():
        return project_dir
    return Path("~/.dbt").expanduser()


def read_target(
    project_dir: Path,
    profiles_dir: Path | None,
    target: str | None,
    env: Mapping[str, str],
    renderer: ProfileRenderer | None = None,
) -> DbtTarget:
    """The dbt project's profile and target, rendered with `env` (a strict renderer by default)."""
    project_file = project_dir / "dbt_project.yml"
    if not project_file.exists():
        raise DbtProfileError(f"{project_file}: file not found: not a dbt project (it has no dbt_project.yml)")
    project = load_yaml(project_file)
    folder = find_profiles_dir(project_dir, profiles_dir, env)
    path = folder / "profiles.yml"
    if not path.exists():
        raise DbtProfileError(
            f"{path}: file not found: dbt's profiles.yml is looked for in dbt.profiles_dir, then "
            "$DBT_PROFILES_DIR, then the dbt project's folder, then ~/.dbt"
        )
    profiles = load_yaml(path)
    render = renderer or ProfileRenderer(env, str(path))
    profile_name = render(project.get("profile"), "profile")
    if not isinstance(profile_name, str) or not profile_name:
        raise DbtProfileError(f"{project_file}: `profile:` must name the dbt profile (in profiles.yml)")
    profile = profiles.get(profile_name)
    if not isinstance(profile, dict) or not isinstance(profile.get("outputs"), dict) or not profile["outputs"]:
        known = ", ".join(sorted(k for k, v in profiles.items() if isinstance(v, dict))) or "none"
        raise DbtProfileError(
            f"{path}: no profile {profile_name!r} with `outputs` (dbt_project.yml names it; profiles here: {known})"
        )
    chosen = target or str(render(profile.get("target") or "default", f"{profile_name}.target"))
    output = profile["outputs"].get(chosen)
    if not isinstance(output, dict):
        known = ", ".join(sorted(profile["outputs"]))
        raise DbtProfileError(f"{path}: profile {profile_name!r} has no target {chosen!r} (its targets: {known})")
    settings = render(output, f"{profile_name}.outputs.{chosen}")
    adapter = str(settings.get("type") or "")
    if not adapter:
        raise DbtProfileError(f"{path}: {profile_name}.outputs.{chosen}: `type` (the adapter) is missing")
    return DbtTarget(
        project_dir=project_dir,
        profiles_dir=folder,
        profile=profile_name,
        name=chosen,
        type=adapter,
        settings=settings,
        project=project,
    )


def profiles_dir(config: OrchestrationConfig, env: Mapping[str, str]) -> Path:
    return find_profiles_dir(config.dbt_project_dir, config.dbt_profiles_dir, env)


def resolve_target(config: OrchestrationConfig, env: Mapping[str, str]) -> DbtTarget:
    """The configured project's target: the profile's `dbt_target`, else the one dbt picks."""
    return read_target(config.dbt_project_dir, config.dbt_profiles_dir, config.profile.dbt_target, env)


def default_target(config: OrchestrationConfig, env: Mapping[str, str]) -> str | None:
    """The target dbt would pick on its own (the profile's `target:`), or None if it cannot tell."""
    try:
        return read_target(
            config.dbt_project_dir,
            config.dbt_profiles_dir,
            None,
            env,
            ProfileRenderer(env, "profiles.yml", strict=False),
        ).name
    except ConfigError:
        return None
