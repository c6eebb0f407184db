"""Warnings about the active profile itself (orchestration.yml's `profiles.<name>`).

A relative path in `env:` is passed on as written: Meltano resolves it against the Meltano project
(where it runs) and dbt against the dbt project, so one value names two different files (two
warehouses). `paths:` resolves it once, against orchestration.yml's folder.
"""

from __future__ import annotations

import re

from ..config import OrchestrationConfig
from .model import Issue

_FILE_SUFFIX = re.compile(r"\.(duckdb|db|sqlite3?|json|jsonl|csv|ya?ml|parquet|log)$", re.IGNORECASE)


def looks_like_relative_path(value: object) -> bool:
    """A value that names a file or folder relative to the directory a tool runs in (by its shape:
    `./x`, `a/b`, `x.duckdb`; a URL, `$VAR/...` and `~/...` are not, nor is a bare word)."""
    if not isinstance(value, str) or not value or value.startswith(("/", "$", "~")) or "://" in value:
        return False
    if re.match(r"^[A-Za-z]:[\\/]", value):  # C:\ ...: absolute on Windows
        return False
    return bool(
        value.startswith(("./", "../", ".\\", "..\\"))
        or "/" in value
        or _FILE_SUFFIX.search(value)
        or value in (".", "..")
    )


def profile_warnings(config: OrchestrationConfig) -> list[Issue]:
    profile = config.profile
    return [
        Issue(
            str(config.path),
            f"profiles.{profile.name}.env.{name}",
            f"{value!r} is a relative path: Meltano resolves it against its project and dbt against its own, so it "
            f"names two different files; move it to `profiles.{profile.name}.paths` (resolved once, against "
            f"{config.path.name}'s folder) or make it absolute",
        )
        for name, value in profile.env.items()
        if looks_like_relative_path(value)
    ]
