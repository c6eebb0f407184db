"""YAML files as the orchestrator reads them: the top-level mapping, or a ConfigError naming the
file, the line and the key (a key written twice, bytes that are not UTF-8, invalid YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C: YAML is read at every parse


class _UniqueKeyLoader(_Loader):  # type: ignore[valid-type,misc]  # a C or Python loader, chosen at import
    """A key written twice in one mapping is an error, not a silent "the last one wins"."""


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(None, None, f"key appears twice (first on line {seen[key] + 1})", key_node.start_mark)
        try:
            seen[key] = key_node.start_mark.line
        except TypeError:
            continue  # an unhashable key: YAML's own error follows
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _compose(text: str) -> Any:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None


def _key_at(text: str, line: int, column: int) -> str | None:
    """The dotted path of the mapping key that starts at (line, column), 0-based."""

    def walk(node: Any, path: str) -> str | None:
        children: list[tuple[str, Any]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                here = f"{path}.{key_node.value}" if path else str(key_node.value)
                if (key_node.start_mark.line, key_node.start_mark.column) == (line, column):
                    return here
                children.append((here, value))
        elif isinstance(node, yaml.SequenceNode):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]
        return next((found for here, child in children if (found := walk(child, here))), None)

    return walk(_compose(text), "")


def _key_near(text: str, line: int) -> str | None:
    """The dotted path of the innermost entry that starts on or before `line` (0-based)."""

    def walk(node: Any, path: str) -> str | None:
        if isinstance(node, yaml.MappingNode):
            entries = [(k, v) for k, v in node.value if k.start_mark.line <= line]
            if entries:
                key_node, value = entries[-1]
                here = f"{path}.{key_node.value}" if path else str(key_node.value)
                return walk(value, here) or here
        elif isinstance(node, yaml.SequenceNode):
            items = [(i, item) for i, item in enumerate(node.value) if item.start_mark.line <= line]
            if items:
                i, item = items[-1]
                return walk(item, f"{path}[{i}]") or f"{path}[{i}]"
        return None

    return walk(_compose(text), "")


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """`line L, column C: [key.path: ]problem`, one line (PyYAML's own names no file)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if isinstance(exc, _DuplicateKey) and mark is not None:
        return f"{where}{_key_at(text, mark.line, mark.column) or 'a key'}: {problem}"
    return f"{where}not valid YAML: {problem}" + (f" ({context})" if context else "")


def load_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping; ConfigError naming the file for any problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n")
        key = _key_near(raw.decode("utf-8", "replace"), line)
        raise ConfigError(
            f"{path}: line {line + 1}: {key + ': ' if key else ''}not UTF-8 "
            f"(byte 0x{raw[exc.start]:02x} at offset {exc.start}): save the file as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_problem(exc, text)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
