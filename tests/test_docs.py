"""The README tells the truth where it can be checked mechanically."""

from __future__ import annotations

import ast
import re

from orchestrator import settings
from orchestrator.config import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_the_environment_variable_table_is_the_settings_module():
    assert settings.markdown_table() in README


# The tools' own variables, which the orchestrator passes through or sets for them (not settings of ours).
PASSTHROUGH = ("AIRFLOW", "DBT_TARGET", "MELTANO_", "DEMO_", "WAREHOUSE_", "SOURCE_", "PATH", "HOME")
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _env_names(tree: ast.AST) -> dict[str, int]:
    """Every string that names an environment variable where a mapping is read or written by it:
    `x.get("N")`, `x["N"]`, `x.setdefault("N", ...)`, `x.pop("N")`, `"N" in x`, `os.getenv("N")`,
    `x.update(N=...)`, and `{"N": ...}` given to update. Each with its line."""
    found: dict[str, int] = {}

    def note(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
            found.setdefault(node.value, node.lineno)

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            note(node.slice)
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            note(node.left)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "setdefault", "pop", "getenv") and node.args:
                note(node.args[0])
            if node.func.attr == "update":
                for kw in node.keywords:
                    if kw.arg and ENV_NAME.fullmatch(kw.arg):
                        found.setdefault(kw.arg, node.lineno)
                for arg in node.args:
                    if isinstance(arg, ast.Dict):
                        for key in arg.keys:
                            note(key)
    return found


def test_every_environment_variable_the_orchestrator_reads_is_a_setting():
    """No module reads or sets one of our variables by a string of its own: a declared one is read
    through its Setting (its name appears only in settings.py), any other is a tool's own."""
    declared = {s.name for s in settings.ALL}
    by_literal: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for path in sorted((REPO_ROOT / "orchestrator").rglob("*.py")):
        if path.name == "settings.py" and path.parent.name == "orchestrator":
            continue
        where = str(path.relative_to(REPO_ROOT))
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in declared:
                by_literal.setdefault(node.value, f"{where}:{node.lineno}")
        for name, line in _env_names(tree).items():
            if name not in declared and not name.startswith(PASSTHROUGH):
                unknown.setdefault(name, f"{where}:{line}")
    assert by_literal == {}, f"read by a string, not through its Setting: {by_literal}"
    assert unknown == {}, f"read without a Setting: {unknown}"


def test_the_guard_catches_a_variable_read_by_a_string():
    tree = ast.parse(
        'env.get("DBT_RUNS_DIR")\nos.environ["NEW_VAR"]\nx = "SOME_FLAG" in env\nenv.update(OTHER_VAR="1")\n'
        'env.setdefault("ORCHESTRATOR_AIRFLOW_HOME", h)\nprint("NOT_READ")\n'
    )
    assert set(_env_names(tree)) == {"DBT_RUNS_DIR", "NEW_VAR", "SOME_FLAG", "OTHER_VAR", "ORCHESTRATOR_AIRFLOW_HOME"}


def test_every_test_module_is_in_the_readme_table():
    """The Tests section says what each module proves; a new module gets its row."""
    text = (REPO_ROOT / "README.md").read_text()
    table = text[text.index("## Tests") : text.index("## Benchmarks")]
    missing = sorted(p.name for p in (REPO_ROOT / "tests").glob("test_*.py") if f"`{p.name}`" not in table)
    assert missing == [], f"README's Tests table has no row for {missing}"
