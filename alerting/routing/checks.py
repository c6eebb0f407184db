"""The checks of the routing file that its typed schema cannot make (route names unique,
'default' reserved), the ALERTING_* environment overrides, and `RoutingConfigError`, which lists
every problem at once. `RoutingConfig.from_dict` / `load` (routing/config.py) put them together
with the schema (routing/schema.py) and the YAML loader (routing/yaml_file.py).
"""

from __future__ import annotations

import os
import re
from typing import Any

from .messages import quote


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
                ("ALERTING_QUIET (environment)", f"expected 1/0, true/false, yes/no or on/off, got {quote(quiet)}")
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
            errors.append(("ALERTING_SMTP_HOST (environment)", f"expected a host name or address, got {quote(host)}"))
    port = os.environ.get("ALERTING_SMTP_PORT")
    if port:
        if port.strip().isdigit() and 1 <= int(port) <= 65535:
            out["smtp_port"] = int(port)
        else:
            errors.append(("ALERTING_SMTP_PORT (environment)", f"expected a port number 1-65535, got {quote(port)}"))
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
            errors.append((f"routes[{i}].name", f"duplicate route name {quote(name)} (also routes[{first[name]}])"))
        else:
            first[name] = i
    return errors
