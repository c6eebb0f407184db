"""Configuration and routing: the routing file (`alerting.yml`) read, validated and turned into
`RoutingConfig`, which says which routes (Slack channel, e-mail addresses) an alert goes to.

    config.py       RoutingConfig: load / from_dict, resolve an alert to its routes
    route.py        Route: matching an alert (globs on dbt tag, DAG tags, DAG id)
    schema.py       the typed schema (pydantic), strict
    checks.py       what the schema cannot check, environment overrides, RoutingConfigError
    credentials.py  Secret, the slack: and email: settings (secrets read at send time)
    yaml_file.py    the one YAML loader of every configuration file (orchestrator's too)
    messages.py     how a validation error reads, for every configuration file (orchestrator's too)

Imports are lazy: orchestrator's plan imports `messages` and `yaml_file` at every DAG parse and
must not pay for the rest.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checks import RoutingConfigError as RoutingConfigError
    from .config import RoutingConfig as RoutingConfig
    from .credentials import Secret as Secret
    from .route import Route as Route

_EXPORTS = {
    "RoutingConfig": "config",
    "Route": "route",
    "RoutingConfigError": "checks",
    "Secret": "credentials",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'alerting.routing' has no attribute {name!r}")
