"""The code's layers hold: no import circle among the modules of orchestrator/ and alerting/,
counting every import (at the top, inside a function, under TYPE_CHECKING), and no module over
400 lines. The graph is read from the source (the AST), not from what happens to be imported."""

from __future__ import annotations

import ast
from pathlib import Path

from orchestrator.config import REPO_ROOT

PACKAGES = ("orchestrator", "alerting")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO_ROOT / package).rglob("*.py"))}


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that the module `name` (at `path`) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, the module mod
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and not _inside(name, target):
                found.add(target)
    return found


def _inside(name: str, package: str) -> bool:
    """`name` is `package` or in it: Python runs a package's __init__ before any module in it."""
    return name == package or name.startswith(package + ".")


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imported(name, path, known) for name, path in modules.items()}
    # A package's __init__ is run by importing any module inside it: importing a.b.c imports a and a.b.
    for name, targets in graph.items():
        for target in list(targets):
            parts = target.split(".")
            targets.update(
                p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in known and not _inside(name, p)
            )
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circle():
    found = circles(import_graph())
    assert found == [], "modules that import each other (directly or not): " + "; ".join(" <-> ".join(c) for c in found)


def test_the_circle_finder_finds_a_circle():
    """It can fail: a -> b -> c -> a is one circle, d alone is none."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_import_reader_sees_function_local_and_type_checking_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n"
        "def f():\n    from .b import y\n    import pkg.c\n"
    )
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.m"}
    assert _imported("pkg.m", module, known) == {"pkg.a", "pkg.b", "pkg.c"}


# orchestrator/'s layers, bottom first: the README's picture ("Where to change what").
LAYERS = ("settings", "config", "plan", "runners", "airflow", "init", "local", "check", "cli")


def _layer(module: str) -> str:
    """`orchestrator.plan.build` -> `plan`; `orchestrator.cli` -> `cli`."""
    return module.split(".")[1] if module.count(".") else module


def test_every_import_points_down_the_layers():
    """An import from a layer to one above it is refused: the layers are what the README draws."""
    graph = import_graph()
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    assert {_layer(m) for m in graph if m.startswith("orchestrator.")} == set(LAYERS)
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        if a.startswith("orchestrator.")
        for b in targets
        if b.startswith("orchestrator.") and rank[_layer(a)] < rank[_layer(b)]
    )
    assert upward == []


def test_alerting_never_imports_the_orchestrator():
    graph = import_graph()
    reached = {m: sorted(t for t in targets if t.startswith("orchestrator")) for m, targets in graph.items()}
    assert {m: t for m, t in reached.items() if m.startswith("alerting") and t} == {}


def test_no_module_is_over_400_lines():
    lines = {str(p.relative_to(REPO_ROOT)): len(p.read_text().splitlines()) for p in _modules().values()}
    assert {path: n for path, n in lines.items() if n > MAX_LINES} == {}
