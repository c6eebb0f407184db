"""Loaders with a known data-loss defect, named before they run (`check` and `init` print the plan's
warnings).

A loader is recognised by what meltano.yml says it installs (`pip_url`) and runs (`executable`):
the installed version is Meltano's business, but a `pip_url` whose requirement admits the bad
release installs it today (target-duckdb 0.8.0 is the latest release on PyPI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..config import REPO_ROOT
from .meltano_project import Plugin
from .model import Issue

FIXED_LOADER_DIR = "meltano/load/target-duckdb-fixed"  # in this repository
FIXED_LOADER_GIT = "git+<this repository's git URL>#subdirectory=" + FIXED_LOADER_DIR


@dataclass(frozen=True)
class Defect:
    package: str  # the PyPI name
    versions: str  # a specifier of the bad releases
    lost: str  # what is lost
    executable: str  # the bad package's own executable (the fixed one runs another)


DEFECTS = (
    Defect(
        "target-duckdb",
        "==0.8.0",
        "the first record of every batch of a stream whose columns are all strings (with duckdb >= 1.3: of "
        "every stream), silently: DuckDB reads it back as a CSV header",
        "target-duckdb",
    ),
)


def fixed_loader_pip_url() -> str:
    """What a user's meltano.yml installs the fixed loader from: this checkout's folder (absolute: no
    file is copied), else the repository on GitHub (an installed package has no such folder)."""
    local = REPO_ROOT / FIXED_LOADER_DIR
    return str(local) if (local / "pyproject.toml").is_file() else FIXED_LOADER_GIT


def _requirements(pip_url: str) -> list[Requirement]:
    out = []
    for word in re.split(r"\s+", pip_url.strip()):
        if not word or word.startswith("-") or "/" in word or word.startswith("."):
            continue  # an option, or a path or URL: no version to read
        try:
            out.append(Requirement(word))
        except InvalidRequirement:
            continue
    return out


def known_defect(loader: Plugin) -> tuple[Defect, str] | None:
    """The defect `loader` installs, and the requirement that admits it (None: none known)."""
    if not loader.pip_url:
        return None
    for req in _requirements(loader.pip_url):
        for defect in DEFECTS:
            if req.name.lower().replace("_", "-") != defect.package:
                continue
            bad = next(iter(Requirement(f"{defect.package}{defect.versions}").specifier)).version
            runs_it = (loader.executable or loader.name) == defect.executable  # not a patched build's
            if runs_it and req.specifier.contains(bad, prereleases=True):
                return defect, str(req)
    return None


def loader_warnings(loader: Plugin) -> list[Issue]:
    """A warning when the profile's loader installs a release with a known data-loss defect."""
    found = known_defect(loader)
    if found is None:
        return []
    defect, req = found
    where = Path(loader.file).name
    return [
        Issue(
            loader.file,
            f"loader {loader.name}",
            f"pip_url {req!r} installs {defect.package}{defect.versions}, which loses {defect.lost}; "
            f"switch to the fixed loader: in {where} set `pip_url: {fixed_loader_pip_url()}` and "
            "`executable: target-duckdb-fixed` (same name, settings and state IDs), then `meltano install`",
        )
    ]


def defect_hint(loader: Plugin) -> str | None:
    """A reconciliation mismatch's likely cause when the loader is (or runs) a known-bad release:
    by its pip_url, else by running the bad package's own executable from a path or URL install."""
    found = known_defect(loader)
    runs = loader.executable or loader.name
    stock = loader.namespace.replace("-", "_") == "target_duckdb" and runs == "target-duckdb"
    if found is None and stock:
        found = DEFECTS[0], ""
    if found is None:
        return None
    d = found[0]
    return f"{d.package}{d.versions} loses {d.lost}; switch to the fixed loader ({fixed_loader_pip_url()})"
