"""The plan: a pure, fast computation of every DAG from the project files (no Airflow import).

plan = plan_from_config(load_config())               # every kind (orchestrator.config.load_config)
plan = plan_from_config(config, kinds=("dbt",))      # only what dags/dbt_tags.py renders

Every DAG file calls plan_from_config on each parse, and almost always the cached plan is valid:
the builder (manifest decode, graph, placement, specs; about 40 ms of imports) is imported only
when a plan must be built, and so are the names exported from it (PEP 562 `__getattr__`).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, OrchestrationConfig, load_config
from .cache import RecordingEnv, cached_errors, cached_plan, gc_paused
from .model import KINDS, DagSpec, Issue, Plan, Schedule, TaskSpec

if TYPE_CHECKING:
    from .manifest import ManifestError as ManifestError
    from .meltano_project import MeltanoProjectError as MeltanoProjectError

CONFIGURED = "configured"  # cache_dir: the config's (paths.var, ORCHESTRATOR_CACHE_DIR)

_LAZY = {"ManifestError": "manifest", "MeltanoProjectError": "meltano_project"}

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plan_from_config(
    config: OrchestrationConfig,
    kinds: Iterable[str] = KINDS,
    cache_dir: Path | str | None = CONFIGURED,
    *,
    errors_only: bool = False,
) -> Plan:
    """Build (or reuse) the plan of the given kinds. Raises ManifestError / MeltanoProjectError
    when an input the kinds need is broken; the message names the file. `errors_only`: a Plan that
    holds only the errors (what dags/plan_errors.py shows), read from a cached plan without decoding
    its DAGs and Assets."""
    kinds = tuple(sorted(set(kinds)))
    needs_meltano = bool({"meltano", "meltano_state", "dbt"} & set(kinds))
    needs_dbt = "dbt" in kinds
    # The alerting DAG uses the dbt DAGs (lateness) when it can, but its redelivery must not
    # depend on a readable manifest: broken inputs only drop the lateness check.
    optional = "alerting" in kinds and not needs_dbt

    def build() -> tuple[Plan, list[str], dict[str, str | None]]:
        from .build import assemble
        from .manifest import ManifestError, load_manifest
        from .meltano_project import MeltanoProjectError, load_meltano_project
        from .translator import load_translator, translator_file

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
    where = Path(cache_dir) if cache_dir else None
    with gc_paused():
        if errors_only:
            return Plan(errors=cached_errors(where, key, build, config.profile.environment()))
        return cached_plan(where, key, build, config.profile.environment())


def build_plan(
    config_path: str | Path | None = None,
    *,
    kinds: Iterable[str] = KINDS,
    profile: str | None = None,
    cache_dir: Path | str | None = CONFIGURED,
) -> Plan:
    return plan_from_config(load_config(config_path, profile), kinds, cache_dir)
