"""The one YAML loader of every configuration file: alerting.yml here, and orchestration.yml,
meltano.yml, dbt_project.yml and profiles.yml through orchestrator's `load_yaml` (alerting never
imports orchestrator, so the shared piece lives on this side).

A file is read one way, whoever reads it: UTF-8 with or without a byte-order mark (one leading
BOM is dropped), PyYAML's safe loader (libyaml's when installed: files are read at every DAG
parse), and every problem is `YamlFileError`, one line naming the file, the line and column and,
where there is one, the key path:

    orchestration.yml: line 7, column 3: dbt.mode: key appears twice (first on line 5)

Refused, besides what is not YAML or not UTF-8: a key given twice in one mapping (PyYAML keeps the
last), aliases that expand a value by more than `EXPANSION_MAX` nodes (a 352-byte "billion laughs"
file expands to hundreds of millions; anything that walks it, a schema or a repr, would hang),
an alias inside the value it names, nesting deeper than `DEPTH_MAX` (libyaml's composer recurses
in C and crashes the process on a few thousand levels), more than `NODES_MAX` values (a schema
would report each wrong one), integers too long for Python to read and files larger than
`FILE_MAX`. The document is scanned as events first, a pass that allocates no
document, so a refusal costs what the file's text costs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXPANSION_MAX = 10_000  # nodes that aliases and merge keys may add to any one value
DEPTH_MAX = 64  # nested mappings and sequences; real configuration files stay under 15
NODES_MAX = 20_000  # values in one file, as written: a large meltano.yml has a few thousand
FILE_MAX = 16 * 1024 * 1024  # bytes: a configuration file is kilobytes
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFileError(ValueError):
    """A configuration file that cannot be read as YAML; `message` is the line without the file."""

    def __init__(self, source: str, message: str):
        self.source, self.message = source, message
        super().__init__(f"{source}: {message}")


def read_yaml(path: str | Path) -> Any:
    """The document of a YAML file (None when empty); YamlFileError naming the file otherwise."""
    name = str(path) if len(str(path)) <= 300 else f"{str(path)[:100]}...{str(path)[-150:]}"  # a path from a probe
    try:
        size = Path(path).stat().st_size
        if size > FILE_MAX:
            raise YamlFileError(name, f"{size:,} bytes: larger than a configuration file can be ({FILE_MAX:,})")
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise YamlFileError(name, "file not found") from None
    except OSError as exc:
        raise YamlFileError(name, f"cannot read it: {exc.strerror or type(exc).__name__}") from None
    return parse_yaml(raw, name)


def parse_yaml(data: bytes | str, source: str) -> Any:
    """The document of YAML bytes or text (None when empty); YamlFileError naming `source`."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n")
            key = _Scan(data.decode("utf-8-sig", "replace"), stop_line=line).key_near()
            raise YamlFileError(
                source,
                f"line {line + 1}: {key + ': ' if key else ''}not UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                f"{exc.start}): save the file as UTF-8",
            ) from None
    else:
        text = data[1:] if data.startswith("\ufeff") else data
    try:
        _Scan(text).run()
        return _construct(text)
    except _Refused as exc:
        raise YamlFileError(source, str(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlFileError(source, _yaml_problem(exc)) from None


class _Refused(Exception):
    """A document that parses but is refused (too deep, an alias bomb, a key twice)."""

    def __init__(self, mark: Any, path: str, problem: str):
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        if len(path) > 120:  # a path 64 levels deep: its two ends say where
            path = path[:50] + "..." + path[-67:]
        super().__init__(f"{where}{path + ': ' if path else ''}{problem}")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`line L, column C: not valid YAML: problem (context)`: PyYAML's own error, on one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}not valid YAML: {problem}".split()) + (f" ({context})" if context else "")


# ------------------------------------------------------------------ the event scan


@dataclass
class _Frame:
    """An open mapping or sequence while scanning: where it is, and what it holds so far."""

    path: str
    is_mapping: bool
    anchor: str | None = None
    size: int = 1  # nodes once every alias in it is expanded (itself included)
    written: int = 1  # nodes as written (an alias counts as one)
    expect_key: bool = True
    key: str = "?"
    index: int = 0


class _Scan:
    """One pass over the parser's events (libyaml's parser keeps its own stack: any depth is safe
    there): depth, alias expansion and recursive aliases are checked before anything is built."""

    def __init__(self, text: str, stop_line: int | None = None):
        self.text, self.stop_line = text, stop_line
        self.nodes = 0
        self.stack: list[_Frame] = []
        self.anchors: dict[str, int] = {}  # anchor -> expanded size of its value
        self.last_path = ""

    def _child_path(self) -> str:
        if not self.stack:
            return ""
        top = self.stack[-1]
        if not top.is_mapping:
            return f"{top.path}[{top.index}]"
        if top.expect_key:
            return top.path
        return f"{top.path}.{top.key}" if top.path else top.key

    def _finish(self, size: int, written: int, scalar_key: str | None = None) -> None:
        """A node is complete: count it into its parent and move the parent on."""
        self.nodes += 1
        if self.nodes > NODES_MAX and self.stop_line is None:
            where = self.stack[-1].path if self.stack else ""  # the collection that holds them
            raise _Refused(None, where, f"more than {NODES_MAX:,} values in one file: not a configuration file")
        if not self.stack:
            return
        top = self.stack[-1]
        top.size += size
        top.written += written
        if top.is_mapping:
            if top.expect_key:
                top.key = _short(scalar_key) if scalar_key is not None else "?"
            top.expect_key = not top.expect_key
        else:
            top.index += 1

    def run(self) -> None:
        loader = _Base(self.text)
        try:
            while loader.check_event():
                self._event(loader.get_event())
        finally:
            loader.dispose()

    def key_near(self) -> str | None:
        """The key path of the innermost entry that starts on or before `stop_line` (0-based)."""
        with contextlib.suppress(yaml.YAMLError, _Refused, _Stop):
            self.run()
        return self.last_path or None

    def _event(self, event: Any) -> None:
        if self.stop_line is not None and event.start_mark.line > self.stop_line:
            raise _Stop
        kind = type(event)
        if kind is yaml.ScalarEvent:  # the most common first: this pass runs at every DAG parse
            top = self.stack[-1] if self.stack else None
            if not (top is not None and top.is_mapping and top.expect_key):
                self.last_path = self._child_path()
            if event.anchor is not None:
                self.anchors[event.anchor] = 1
            self._finish(1, 1, scalar_key=event.value)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            path = self._child_path()
            self.last_path = path
            if len(self.stack) >= DEPTH_MAX:
                raise _Refused(event.start_mark, path, f"nested more than {DEPTH_MAX} levels deep")
            self.stack.append(_Frame(path, kind is yaml.MappingStartEvent, event.anchor))
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            done = self.stack.pop()
            if done.size - done.written > EXPANSION_MAX:
                raise _Refused(
                    event.start_mark,
                    done.path,
                    f"aliases expand this value to more than {EXPANSION_MAX:,} nodes (a YAML alias bomb?): "
                    "write the value out instead",
                )
            if done.anchor is not None:
                self.anchors[done.anchor] = done.size
            self._finish(done.size, done.written)
        elif kind is yaml.AliasEvent:
            self.last_path = self._child_path()
            if any(frame.anchor == event.anchor for frame in self.stack):
                raise _Refused(
                    event.start_mark, self.last_path, f"the alias *{event.anchor} is inside the value it names"
                )
            self._finish(self.anchors.get(event.anchor, 1), 1)


class _Stop(Exception):
    """The scan for `key_near` has passed its line."""


def _short(key: str, limit: int = 60) -> str:
    return key if len(key) <= limit else key[: limit - 3] + "..."


# ------------------------------------------------------------------ building the document


class _Loader(_Base):  # type: ignore[valid-type,misc]  # a C or Python loader, chosen at import
    """The safe loader, refusing a key given twice and an integer Python cannot read."""

    root: Any = None

    def no_duplicates(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base`: the merged keys are the defaults of this mapping's own
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    path = _node_path(self.root, node)
                    key_path = f"{path}.{_short(str(key))}" if path else _short(str(key))
                    raise _Refused(key_node.start_mark, key_path, f"key appears twice (first on line {seen[key]})")
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: construct_mapping says so
                pass
        return self.construct_mapping(node, deep=deep)

    def bounded_int(self, node: yaml.ScalarNode) -> int:
        try:
            return self.construct_yaml_int(node)
        except ValueError:  # Python reads at most 4300 digits
            raise _Refused(node.start_mark, _node_path(self.root, node), "an integer too long to read") from None


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.no_duplicates)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.bounded_int)


def _construct(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        loader.root = node
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _node_path(root: Any, target: Any) -> str:
    """The key path of `target` under `root` (the first one, in document order); only on an error."""
    todo: list[tuple[Any, str]] = [(root, "")]
    seen: set[int] = set()
    while todo:
        node, path = todo.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [
                (value, f"{path}.{_short(str(key.value))}" if path else _short(str(key.value)))
                for key, value in node.value
            ]
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        else:
            children = []
        todo.extend(reversed(children))
    return ""
