"""The checks of the routing file that its typed schema cannot make (route names unique,
'default' reserved), the ALERTING_* environment overrides, and `RoutingConfigError`, which lists
every problem at once. `RoutingConfig.from_dict` / `load` (routing/config.py) put them together
with the schema (routing/schema.py) and the YAML loader (routing/yaml_file.py).
"""

from __future__ import annotations

import os
import re
from typing import Any

from .messages import KEY_MAX, quote, shorten


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


def owners_differing_in_case(owners: Any) -> list[tuple[str, str]]:
    """Owners are matched without case (dbt's meta.owner is written by hand): two keys that differ
    only in case would silently be one, the later winning."""
    errors: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for key in owners if isinstance(owners, dict) else {}:
        if not isinstance(key, str):
            continue
        if key.lower() in first:
            errors.append(
                (
                    f"owners.{shorten(key, KEY_MAX)}",
                    f"the same owner as owners.{shorten(first[key.lower()], KEY_MAX)} (owners are matched "
                    "without case): keep one",
                )
            )
        else:
            first[key.lower()] = key
    return errors


# A match pattern is a glob (* ? [abc]); these are what only a regular expression would say.
_REGEX_SIGNS = re.compile(r"^\^|\$$|\.[*+?]|\\[dDwWsSbB.]|[()|+{}]")


def _as_glob(pattern: str) -> str | None:
    """The glob a simple regex meant ('^fin.*$' -> 'fin*'), or None when it is not that simple."""
    glob = pattern.removeprefix("^").removesuffix("$").replace(".*", "*").replace(".+", "?*")
    return None if _REGEX_SIGNS.search(glob) or "." in glob.replace("*", "") else glob


def _regex_patterns(routes: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        match = route.get("match") if isinstance(route, dict) else None
        for key, value in match.items() if isinstance(match, dict) else ():
            patterns = [(f"routes[{i}].match.{key}", value)] if isinstance(value, str) else []
            if isinstance(value, list):
                patterns = [(f"routes[{i}].match.{key}[{j}]", p) for j, p in enumerate(value) if isinstance(p, str)]
            for path, pattern in patterns:
                if _REGEX_SIGNS.search(pattern):
                    glob = _as_glob(pattern)
                    out.append(
                        (
                            path,
                            f"{quote(pattern)} looks like a regular expression, but match patterns are globs "
                            "(* any characters, ? one, [abc] one of them): it matches only a value spelled "
                            "exactly so" + (f"; write {quote(glob)}" if glob else ""),
                        )
                    )
    return out


def config_warnings(d: dict[str, Any], config: Any) -> list[tuple[str, str]]:
    """What is valid but probably not meant: (key path, message) pairs."""
    out = _regex_patterns(d.get("routes"))
    destinations = [config.default, *config.routes]
    if not config.quiet and not any(r.slack_channel or r.emails for r in destinations):
        out.append(
            (
                "",
                "no route and no default destination (slack_channel or emails): alerts will be recorded "
                "in the outbox and sent nowhere. Name one under default:, or set quiet: true to say so",
            )
        )
    return out
