"""The plan: a pure, fast computation of every DAG from the project files (no Airflow import).

plan = plan_from_config(load_config())               # every kind (orchestrator.config.load_config)
plan = plan_from_config(config, kinds=("dbt",))      # only what dags/dbt_tags.py renders
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..config import ConfigError, OrchestrationConfig, load_config
from .build import assemble
from .cache import RecordingEnv, cached_plan, gc_paused
from .manifest import ManifestError, load_manifest
from .meltano_project import MeltanoProjectError, load_meltano_project
from .model import KINDS, DagSpec, Issue, Plan, Schedule, TaskSpec
from .translator import load_translator, translator_file

CONFIGURED = "configured"  # cache_dir: the config's (paths.var, ORCHESTRATOR_CACHE_DIR)

__all__ = [
    "DagSpec",
    "Issue",
    "ManifestError",
    "MeltanoProjectError",
    "Plan",
    "Schedule",
    "TaskSpec",
    "build_plan",
    "plan_from_config",
]


def plan_from_config(
    config: OrchestrationConfig, kinds: Iterable[str] = KINDS, cache_dir: Path | str | None = CONFIGURED
) -> Plan:
    """Build (or reuse) the plan of the given kinds. Raises ManifestError / MeltanoProjectError
    when an input the kinds need is broken; the message names the file."""
    kinds = tuple(sorted(set(kinds)))
    needs_meltano = bool({"meltano", "meltano_state", "dbt"} & set(kinds))
    needs_dbt = "dbt" in kinds
    # The alerting DAG uses the dbt DAGs (lateness) when it can, but its redelivery must not
    # depend on a readable manifest: broken inputs only drop the lateness check.
    optional = "alerting" in kinds and not needs_dbt

    def build() -> tuple[Plan, list[str], dict[str, str | None]]:
        names = load_translator(config)
        env = RecordingEnv(config.profile.environment())
        files = [str(config.path), *filter(None, [translator_file(config)])]
        meltano = dbt = None
        try:
            if needs_meltano or optional:
                meltano = load_meltano_project(config.meltano_project, config.profile.meltano_environment)
                files += [*meltano.files, *meltano.include_dirs]
            if needs_dbt or optional:
                files.append(str(config.manifest))
                dbt = load_manifest(config.manifest)
        except (ManifestError, MeltanoProjectError, ConfigError):
            if not optional:
                raise
            files += [str(config.meltano_project / "meltano.yml"), str(config.manifest)]
            meltano = dbt = None
        plan = assemble(config, kinds=kinds, meltano=meltano, dbt=dbt, names=names, env=env)
        return plan, files, env.read

    if cache_dir == CONFIGURED:
        cache_dir = config.cache_dir()
    key = (kinds, config.fingerprint())
    with gc_paused():
        return cached_plan(Path(cache_dir) if cache_dir else None, key, build, config.profile.environment())


def build_plan(
    config_path: str | Path | None = None,
    *,
    kinds: Iterable[str] = KINDS,
    profile: str | None = None,
    cache_dir: Path | str | None = CONFIGURED,
) -> Plan:
    return plan_from_config(load_config(config_path, profile), kinds, cache_dir)
