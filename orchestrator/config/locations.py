"""Where the configuration is, and how a path it names is read: relative to the config file's
directory, never to the current one."""

from __future__ import annotations

import os
from pathlib import Path

from .. import settings

REPO_ROOT = Path(__file__).resolve().parents[2]  # this checkout (an installed package: site-packages)
DEFAULT_CONFIG = REPO_ROOT / "orchestration.yml"


def config_path(path: str | Path | None = None) -> Path:
    """The orchestration config file: `path`, else `$ORCHESTRATION_CONFIG`, else this checkout's."""
    return Path(path or settings.ORCHESTRATION_CONFIG.get() or DEFAULT_CONFIG).resolve()


def resolve_path(base: Path, value: str) -> str:
    """A path from the config file: `~` expanded, relative ones against the file's directory."""
    expanded = os.path.expanduser(value)
    return expanded if os.path.isabs(expanded) else str((base / expanded).resolve())
