"""The plan: a pure, fast computation of every DAG from the project files (no Airflow import).

    plan = build_plan()                  # every kind, this repo's defaults
    plan = build_plan(kinds=("dbt",))    # only what dags/dbt_tags.py renders
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

from ..profiles import REPO_ROOT, ConfigError, load_yaml
from .build import assemble
from .cache import cached_plan
from .config import OrchestrationConfig, load_config
from .manifest import ManifestError, load_manifest
from .meltano_project import MeltanoProjectError, load_meltano_project
from .model import KINDS, DagSpec, Issue, Plan, Schedule, TaskSpec

DEFAULT_CACHE_DIR = REPO_ROOT / "var" / "cache"

__all__ = ["ConfigError", "DagSpec", "Issue", "ManifestError", "MeltanoProjectError", "OrchestrationConfig",
           "Plan", "Schedule", "TaskSpec", "build_plan", "load_config", "plan_from_config"]


def _meltano_inputs(project_path: Path) -> list[str]:
    """meltano.yml, its include globs' files and their directories (a new file changes its directory)."""
    main = project_path / "meltano.yml" if project_path.is_dir() else project_path
    files = [str(main)]
    try:
        data = load_yaml(main)
    except ConfigError:  # the build reports the problem; here the cache just must not hit
        data = {}
    patterns = data.get("include_paths") or []
    for pattern in patterns:
        full = str(main.parent / pattern)
        files += sorted(glob.glob(full))
        files.append(os.path.dirname(full))
    return files


def plan_from_config(config: OrchestrationConfig, kinds: Iterable[str] = KINDS,
                     cache_dir: Path | None = DEFAULT_CACHE_DIR) -> Plan:
    """Build (or reuse) the plan of the given kinds. Raises ManifestError / MeltanoProjectError
    when an input the kinds need is broken; the message names the file."""
    kinds = tuple(sorted(set(kinds)))
    needs_meltano = bool({"meltano", "meltano_state", "dbt"} & set(kinds))
    needs_dbt = "dbt" in kinds

    def build() -> tuple[Plan, list[str]]:
        files = [str(config.path)]
        meltano = dbt = None
        if needs_meltano:
            files += _meltano_inputs(config.meltano_project)
            meltano = load_meltano_project(config.meltano_project, config.profile.meltano_environment)
        if needs_dbt:
            files.append(str(config.manifest))
            dbt = load_manifest(config.manifest)
        return assemble(config, kinds=kinds, meltano=meltano, dbt=dbt), files

    key = (kinds, str(config), os.environ.get("PIPELINE_PROFILE"))
    return cached_plan(cache_dir, key, build)


def build_plan(config_path: str | Path | None = None, *, kinds: Iterable[str] = KINDS, profile: str | None = None,
               cache_dir: Path | None = DEFAULT_CACHE_DIR) -> Plan:
    return plan_from_config(load_config(config_path, profile), kinds, cache_dir)
