"""The README tells the truth where it can be checked mechanically."""

from __future__ import annotations

import re

from orchestrator import settings
from orchestrator.profiles import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_the_environment_variable_table_is_the_settings_module():
    assert settings.markdown_table() in README


def test_every_environment_variable_the_orchestrator_reads_is_a_setting():
    """No module reads a variable by name behind the settings module's back."""
    declared = {s.name for s in settings.ALL}
    passthrough = {"DBT_TARGET", "DBT_PROFILES_DIR", "PATH", "HOME"}  # the tools' own
    found: dict[str, str] = {}
    for path in (REPO_ROOT / "orchestrator").rglob("*.py"):
        for name in re.findall(r"""environ(?:\.get)?\(?\[?["']([A-Z][A-Z0-9_]+)["']""", path.read_text()):
            found.setdefault(name, str(path.relative_to(REPO_ROOT)))
    unknown = {n: p for n, p in found.items() if n not in declared | passthrough and not n.startswith("AIRFLOW")}
    assert unknown == {}, f"read without a Setting: {unknown}"


def test_every_test_module_is_in_the_readme_table():
    """The Tests section says what each module proves; a new module gets its row."""
    text = (REPO_ROOT / "README.md").read_text()
    table = text[text.index("## Tests") : text.index("## Benchmarks")]
    missing = sorted(p.name for p in (REPO_ROOT / "tests").glob("test_*.py") if f"`{p.name}`" not in table)
    assert missing == [], f"README's Tests table has no row for {missing}"
