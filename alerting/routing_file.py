"""Reading the routing file: its YAML (bad UTF-8, bad YAML and a key given twice are errors
naming the file), the checks the typed schema cannot make (route names unique, 'default'
reserved), the ALERTING_* environment overrides, and `RoutingConfigError`, which lists every
problem at once. `RoutingConfig.from_dict` / `load` (alerting.routing) put them together.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml


class RoutingConfigError(ValueError):
    """The routing file is invalid: every problem found, each naming the file and the key path
    (`alerting.yml: routes[1].match.dbt_tags: unknown key (expected one of dbt_tag, dag_tag, dag_id)`).
    `problems` holds them as (key path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__(
            "\n".join(f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in problems)
        )


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def env_overrides(source: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Per-deployment overrides (a mail sink in dev, a test server): env over the file.
    An invalid value is an error naming the variable."""
    out: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    quiet = os.environ.get("ALERTING_QUIET")
    if quiet is not None:
        if quiet.strip().lower() in _TRUE + _FALSE:
            out["quiet"] = quiet.strip().lower() in _TRUE
        else:
            errors.append(
                ("ALERTING_QUIET (environment)", f"expected 1/0, true/false, yes/no or on/off, got {quiet!r}")
            )
    url = os.environ.get("ALERTING_SLACK_BASE_URL")
    if url:
        if re.fullmatch(r"https?://\S+", url):
            out["base_url"] = url
        else:
            errors.append(("ALERTING_SLACK_BASE_URL (environment)", "expected an http(s):// URL"))
    host = os.environ.get("ALERTING_SMTP_HOST")
    if host:
        if re.fullmatch(r"[^\s/]+", host):
            out["smtp_host"] = host
        else:
            errors.append(("ALERTING_SMTP_HOST (environment)", f"expected a host name or address, got {host!r}"))
    port = os.environ.get("ALERTING_SMTP_PORT")
    if port:
        if port.strip().isdigit() and 1 <= int(port) <= 65535:
            out["smtp_port"] = int(port)
        else:
            errors.append(("ALERTING_SMTP_PORT (environment)", f"expected a port number 1-65535, got {port!r}"))
    return out, errors


def duplicate_names(routes: Any) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i, r in enumerate(routes if isinstance(routes, list) else []):
        name = r.get("name") if isinstance(r, dict) else None
        if not isinstance(name, str):
            continue
        if name == "default":
            errors.append((f"routes[{i}].name", "'default' is reserved for the default route"))
        elif name in first:
            errors.append((f"routes[{i}].name", f"duplicate route name {name!r} (also routes[{first[name]}])"))
        else:
            first[name] = i
    return errors


def _yaml_loader() -> type[yaml.SafeLoader]:
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {seen[key]})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: construct_mapping says so
                pass
        return loader.construct_mapping(node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def parse_yaml(data: bytes | str, source: str) -> Any:
    """The YAML document, or RoutingConfigError naming the file (bad UTF-8, bad YAML)."""
    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise RoutingConfigError(
                source, [("", f"not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line})")]
            ) from None
    try:
        return yaml.load(data, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise RoutingConfigError(source, [("", f"invalid YAML: {where}{what}")]) from None
    except yaml.YAMLError as e:
        raise RoutingConfigError(source, [("", f"invalid YAML: {e}")]) from None
