"""The repository passes its own tests anywhere: nothing in tests/, bench/ or scripts/ reads the
`../shared` directory that sits beside the checkout in CI (issue 19). The real manifests and the
Compose schema are vendored under tests/data/ instead (tests/data/README.md says where from)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from orchestrator.config import REPO_ROOT

SCANNED = ("tests", "bench", "scripts")

# A path that leaves the checkout for a sibling `shared`: "../shared", "..\\shared", or built with
# pathlib (`.parent / "shared"`, `REPO_ROOT.parent / 'shared'`, `Path("..", "shared")`).
SIBLING_SHARED = re.compile(
    r"""\.\.[/\\]+shared\b"""
    r"""|\.parent\s*/\s*["']shared["']"""
    r"""|["']\.\.["']\s*,\s*["']shared["']""",
)


def _tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--", *SCANNED],
            capture_output=True,
            check=True,
        ).stdout.decode()
        paths = [REPO_ROOT / p for p in listed.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # an unpacked sdist: no git, scan the tree
        paths = [p for d in SCANNED for p in (REPO_ROOT / d).rglob("*") if ".meltano" not in p.parts]
    this = Path(__file__).resolve()
    return [p for p in paths if p.is_file() and p.resolve() != this and p.suffix not in {".gz", ".png", ".duckdb"}]


def offending_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if SIBLING_SHARED.search(line)]


@pytest.mark.subprocess  # git ls-files
def test_nothing_in_tests_bench_or_scripts_reads_the_sibling_shared_directory() -> None:
    files = _tracked_text_files()
    assert len(files) > 50, f"only {len(files)} files scanned: the listing is broken"
    found = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if lines := offending_lines(text):
            found[str(path.relative_to(REPO_ROOT))] = lines
    assert not found, f"these read ../shared; vendor what they need under tests/data/ instead: {found}"


@pytest.mark.parametrize(
    "line",
    [
        'MANIFEST = Path("../shared/manifests/big.json")',
        "data = REPO_ROOT.parent / 'shared' / 'compose-spec.json'",
        'os.path.join("..", "shared", "x")',
        "cat ../shared/compose-spec.json",
    ],
)
def test_the_guard_recognises_each_way_of_reaching_shared(line: str) -> None:
    assert offending_lines(line) == [line]


@pytest.mark.parametrize("line", ['assert f["shared"] == {}', "domain_0 is the shared/core domain"])
def test_the_guard_leaves_other_uses_of_the_word_alone(line: str) -> None:
    assert offending_lines(line) == []
