"""YAML files as the orchestrator reads them: the top-level mapping, or a ConfigError naming the
file, the line and the key. The loader is alerting's (alerting/routing/yaml_file.py), shared by
every configuration file: a key written twice, an alias bomb, a byte-order mark, bytes that are
not UTF-8 all read one way."""

from __future__ import annotations

from pathlib import Path

from alerting.routing.yaml_file import YamlFileError, read_yaml

from .errors import ConfigError


def load_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping; ConfigError naming the file for any problem."""
    try:
        data = read_yaml(path)
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
