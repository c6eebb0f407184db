"""Which dbt profile and target the configured project runs with, found by dbt's own rules, and
what kind of warehouse that is (the adapter `type`), without importing dbt (it takes seconds).

profiles.yml: `dbt.profiles_dir` in orchestration.yml, else `$DBT_PROFILES_DIR`, else the dbt
project's folder when it holds a profiles.yml (dbt looks in its working directory, which is
where people keep it), else `~/.dbt`. The profile: `profile:` of dbt_project.yml. The target:
the orchestration profile's `dbt_target`, else the profile's `target:` (rendered: it may be
`{{ env_var('DBT_TARGET', 'dev') }}`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..plan.config import OrchestrationConfig
from ..profiles import ConfigError, load_yaml


class DbtProfileError(ConfigError):
    """The dbt profile or target cannot be found or rendered; the message names the file."""


@dataclass(frozen=True)
class DbtTarget:
    profiles_dir: Path
    profile: str
    name: str
    type: str  # the adapter: duckdb, postgres, snowflake...
    settings: dict[str, Any] = field(default_factory=dict)  # rendered (secrets included: do not log)

    def duckdb_path(self, project_dir: Path) -> Path | None:
        """The DuckDB file, relative paths being relative to the dbt project (dbt runs there)."""
        if self.type != "duckdb":
            return None
        path = str(self.settings.get("path") or "")
        if not path or path == ":memory:" or "://" in path:
            return None
        return Path(path) if os.path.isabs(path) else (project_dir / path).resolve()


def profiles_dir(config: OrchestrationConfig, env: Mapping[str, str]) -> Path:
    if config.dbt_profiles_dir:
        return config.dbt_profiles_dir
    if env.get("DBT_PROFILES_DIR"):
        return Path(env["DBT_PROFILES_DIR"]).expanduser()
    if (config.dbt_project_dir / "profiles.yml").exists():
        return config.dbt_project_dir
    return Path("~/.dbt").expanduser()


def _renderer(env: Mapping[str, str], where: str):
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    def env_var(name: str, default: Any = None) -> Any:
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise DbtProfileError(
            f"{where}: env_var({name!r}) has no default and {name} is not set: set it in "
            "the environment or in the orchestration profile's `env`"
        )

    jinja = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    jinja.globals.update(env_var=env_var)
    for name in ("as_number", "as_bool", "as_text", "as_native"):
        jinja.filters[name] = lambda v: v

    def render(value: Any) -> Any:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            try:
                return jinja.from_string(value).render()
            except jinja2.TemplateError as exc:
                raise DbtProfileError(f"{where}: cannot render {value!r}: {exc}") from None
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        return value

    return render


def resolve_target(config: OrchestrationConfig, env: Mapping[str, str]) -> DbtTarget:
    project_file = config.dbt_project_dir / "dbt_project.yml"
    project = load_yaml(project_file)
    profile_name = project.get("profile")
    if not isinstance(profile_name, str) or not profile_name:
        raise DbtProfileError(f"{project_file}: `profile:` must name the dbt profile")
    folder = profiles_dir(config, env)
    path = folder / "profiles.yml"
    profiles = load_yaml(path)
    render = _renderer(env, str(path))
    profile_name = str(render(profile_name))
    profile = profiles.get(profile_name)
    if not isinstance(profile, dict) or not isinstance(profile.get("outputs"), dict):
        raise DbtProfileError(f"{path}: no profile {profile_name!r} with `outputs` (dbt_project.yml names it)")
    target = config.profile.dbt_target or str(render(profile.get("target") or "default"))
    output = profile["outputs"].get(target)
    if not isinstance(output, dict):
        known = ", ".join(sorted(profile["outputs"]))
        raise DbtProfileError(f"{path}: profile {profile_name!r} has no target {target!r} (known: {known})")
    settings = render(output)
    adapter = str(settings.get("type") or "")
    if not adapter:
        raise DbtProfileError(f"{path}: {profile_name}.outputs.{target}: `type` (the adapter) is missing")
    return DbtTarget(profiles_dir=folder, profile=profile_name, name=target, type=adapter, settings=settings)


def default_target(config: OrchestrationConfig, env: Mapping[str, str]) -> str | None:
    """The target dbt would pick on its own (the profile's `target:`), or None if it cannot tell."""
    try:
        folder = profiles_dir(config, env)
        project = load_yaml(config.dbt_project_dir / "dbt_project.yml")
        profiles = load_yaml(folder / "profiles.yml")
        render = _renderer(env, str(folder / "profiles.yml"))
        profile = profiles.get(str(render(project.get("profile") or "")))
        return str(render(profile.get("target"))) if isinstance(profile, dict) and profile.get("target") else None
    except ConfigError:
        return None
